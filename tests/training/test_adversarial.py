"""Adversarial training (FGM): each batch trains again on embeddings moved against it."""

import pytest
import torch
from torch import nn

from aimass.errors import InvalidArgument
from aimass.jobs.train import TrainSpec
from aimass.training.adversarial import EmbeddingAdversary
from aimass.training.config import TrainConfig
from tests.conftest import write_jsonl

FINETUNE = {"mode": "finetune", "epochs": 4, "lr": 3e-3, "batch_size": 16}


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"adversarial_epsilon": -1.0}, "use a number in"),
        ({"adversarial_epsilon": "1"}, "use a number in"),
        ({"adversarial_epsilon": float("nan")}, "use a number in"),
        ({"adversarial_epsilon": 1.0, "mode": "features"}, "add --mode finetune"),
        ({"adversarial_epsilon": 1.0, "task": "masked-lm"}, "tasks that do"),
    ],
)
def test_bad_values_are_refused(config, message):
    with pytest.raises(InvalidArgument, match=message):
        TrainConfig(**config).resolved()


def test_off_keeps_the_config_digest():
    assert "adversarial_epsilon" not in TrainConfig().resolved().to_dict()
    on = TrainConfig(adversarial_epsilon=1.0).resolved()
    assert on.to_dict()["adversarial_epsilon"] == 1.0


class _Tiny(nn.Module):
    def __init__(self, frozen: bool) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embeddings = nn.Embedding(10, 4)
        self.embeddings.requires_grad_(not frozen)
        self.out = nn.Linear(4, 1)

    def forward(self, ids: torch.Tensor, delta: torch.Tensor | None = None) -> torch.Tensor:
        embedded = self.embeddings(ids)
        return self.out(embedded if delta is None else embedded + delta).pow(2).sum()


@pytest.mark.parametrize("frozen", [False, True])
def test_the_second_pass_moves_the_embeddings_epsilon_along_the_gradient(frozen):
    model, ids = _Tiny(frozen), torch.tensor([[1, 2, 3], [4, 5, 5]])
    # The reference, by hand: the gradient at the embedding output, normalised over
    # the whole batch, times epsilon, added to the output; the two gradients add up.
    embedded = model.embeddings(ids).detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(model.out(embedded).pow(2).sum(), embedded)
    delta = grad * (0.5 / grad.norm())
    model.zero_grad()
    model(ids).backward()
    model(ids, delta).backward()
    expected = [p.grad.clone() for p in model.parameters() if p.requires_grad]
    model.zero_grad()

    adversary = EmbeddingAdversary(model.embeddings, 0.5)
    with adversary.watch():
        model(ids).backward()
    with adversary.attack():
        model(ids).backward()
    torch.testing.assert_close([p.grad for p in model.parameters() if p.requires_grad], expected)
    assert not model.embeddings._forward_hooks  # the layer is left as it was
    assert model.embeddings.weight.requires_grad is not frozen


def test_an_attack_without_a_watched_pass_is_an_error():
    with (
        pytest.raises(RuntimeError, match="watch"),
        EmbeddingAdversary(nn.Embedding(2, 2), 1).attack(),
    ):
        pass


# LoRA trains adapters under a frozen token table: the step moves its output instead.
@pytest.mark.parametrize(("extra", "epsilon"), [({}, 1.0), ({"lora_rank": 8, "lr": 2e-2}, 0.1)])
def test_a_classifier_trains_adversarially(ready, extra, epsilon):
    versions = {}
    for value in (0.0, epsilon):
        config = {**FINETUNE, **extra, "adversarial_epsilon": value}
        versions[value] = ready.jobs.train(
            TrainSpec(dataset="s", base="tiny", model=f"a{int(value * 10)}", config=config)
        )
        assert versions[value].metrics["test"]["accuracy"] > 0.9
    assert versions[epsilon].lineage.config["adversarial_epsilon"] == epsilon
    assert "adversarial_epsilon" not in versions[0.0].lineage.config
    # The same seed and batches: only the adversarial pass tells the two runs apart.
    before = versions[0.0].metrics["test"]["loss"]
    assert versions[epsilon].metrics["test"]["loss"] != pytest.approx(before, rel=1e-6)


def test_a_regressor_trains_adversarially(ready, tmp_path):
    rows = [{"text": f"{'good ' * (i % 5)}film", "label": float(i % 5)} for i in range(150)]
    ready.datasets.import_file(write_jsonl(tmp_path / "r.jsonl", rows), name="r")
    config = {**FINETUNE, "task": "regression", "epochs": 6, "adversarial_epsilon": 1.0}
    version = ready.jobs.train(TrainSpec(dataset="r", base="tiny", model="reg", config=config))
    assert version.lineage.config["adversarial_epsilon"] == 1.0
    assert version.metrics["test"]["r2"] > 0.5


def test_a_tagger_trains_adversarially(ready_with_tags):
    config = {**FINETUNE, "task": "token-classification", "epochs": 8}
    versions = [
        ready_with_tags.jobs.train(
            TrainSpec(dataset="n", base="tiny", model=f"t{i}", config={**config, **extra})
        )
        for i, extra in enumerate([{}, {"adversarial_epsilon": 0.1}])
    ]
    learnt = versions[1].metrics
    assert learnt["validation"]["f1"] > learnt["initial_validation"]["f1"]
    plain, moved = (v.metrics["test"]["loss"] for v in versions)
    assert moved != pytest.approx(plain, rel=1e-6)
    assert versions[1].lineage.config["adversarial_epsilon"] == 0.1


def test_dp_refuses_it(ready):
    config = {**FINETUNE, "adversarial_epsilon": 1.0}
    spec = TrainSpec(
        dataset="s", base="tiny", model="dp", config=config, privacy={"target_epsilon": 8.0}
    )
    with pytest.raises(InvalidArgument, match="cannot be combined with --dp"):
        ready.jobs.train(spec)


def test_it_implies_finetune_mode():
    assert TrainConfig(adversarial_epsilon=1.0).resolved().mode == "finetune"
