"""LP-FT: a linear probe trains the head on frozen features before fine-tuning starts."""

import pytest

from aimass.errors import InvalidArgument
from aimass.jobs.train import TrainSpec
from aimass.training.config import TrainConfig

# A fine-tuning step far too small to grow a random head in one epoch: what the
# run learns, it learns from the probe.
CREEP = {"mode": "finetune", "epochs": 1, "lr": 1e-6, "batch_size": 16, "warmup_ratio": 0.0}
PROBE = {"probe_epochs": 15, "probe_lr": 5e-2}


def spec(config, model):
    return TrainSpec(dataset="s", base="tiny", model=model, config=config)


def test_a_probe_gives_the_fine_tune_a_trained_head(ready):
    probed = ready.jobs.train(spec({**CREEP, **PROBE}, "probed"))
    cold = ready.jobs.train(spec(CREEP, "cold"))
    probe = probed.metrics["training"]["probe"]
    assert probe["epochs"] == 15
    assert probe["lr"] == 5e-2
    assert probe["validation"]["accuracy"] >= 0.8
    assert probed.metrics["test"]["accuracy"] >= 0.8
    assert cold.metrics["test"]["accuracy"] < probed.metrics["test"]["accuracy"] - 0.2
    assert "probe" not in cold.metrics["training"]
    assert probed.lineage.config["probe_epochs"] == 15


def test_the_default_probe_step_and_an_unchanged_digest_without_a_probe():
    resolved = TrainConfig(mode="finetune", probe_epochs=3).resolved()
    assert resolved.probe_lr == 1e-2
    assert resolved.phases() == [(16, 3), (16, 3)]
    plain = TrainConfig(mode="finetune").resolved()
    assert plain.phases() == [(16, 3)]
    assert "probe_epochs" not in plain.to_dict()
    assert "probe_lr" not in plain.to_dict()


@pytest.mark.parametrize(
    ("config", "match"),
    [
        ({"mode": "features", "probe_epochs": 3}, "--probe-epochs 3 needs --mode finetune"),
        ({"mode": "finetune", "probe_lr": 1e-2}, "--probe-lr set without --probe-epochs"),
        ({"mode": "finetune", "probe_epochs": -1}, "--probe-epochs -1 is out of range"),
        ({"mode": "finetune", "probe_epochs": 2, "probe_lr": 2.0}, "--probe-lr 2.0 must be"),
        (
            {"mode": "finetune", "probe_epochs": 2, "teacher": "t@1", "match_hidden": 1.0},
            "with --match-hidden",
        ),
    ],
)
def test_bad_probe_options_are_refused(config, match):
    with pytest.raises(InvalidArgument, match=match):
        TrainConfig(**config).resolved()


def test_a_task_without_a_head_to_probe_refuses_one(ready):
    config = {"task": "masked-lm", "epochs": 1, "probe_epochs": 2}
    with pytest.raises(InvalidArgument, match="task 'masked-lm' has no head to probe"):
        ready.jobs.submit_training(spec(config, "mlm"))
    assert ready.store.jobs.list("default") == []


def test_a_fine_tune_that_only_hurts_keeps_the_probes_weights(ready):
    wrecked = ready.jobs.train(spec({**CREEP, **PROBE, "lr": 0.5}, "wrecked"))
    assert wrecked.metrics["training"]["best_epoch"] == 0
    assert wrecked.metrics["validation"]["accuracy"] == pytest.approx(
        wrecked.metrics["training"]["probe"]["validation"]["accuracy"]
    )
    assert wrecked.metrics["test"]["accuracy"] >= 0.8
