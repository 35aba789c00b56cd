"""DP-SGD through the one training loop: records, budget, bad input, unsupported models."""

import json

import pytest
import torch
from torch import nn

from aimass.errors import InvalidArgument, PrivacyBudgetExceeded, UnsupportedModel
from aimass.jobs.train import TrainSpec
from aimass.privacy import DPConfig, DPEngine, epsilon_spent, find_problems, require_supported

FEATURES = {"mode": "features", "epochs": 15, "lr": 1e-2, "batch_size": 32}
FINETUNE = {"mode": "finetune", "epochs": 2, "lr": 1e-3, "batch_size": 16}
RDP8 = {"target_epsilon": 8, "accountant": "rdp"}


def spec(config, privacy, model="m"):
    return TrainSpec(dataset="s", base="tiny", model=model, config=config, privacy=privacy)


@pytest.mark.parametrize(
    ("config", "mode"), [(FEATURES, "hooks"), (FINETUNE, "ghost")], ids=["features", "finetune"]
)
def test_private_training_records_its_budget(ready, config, mode):
    version = ready.jobs.train(spec(config, RDP8))
    record = version.privacy
    assert record["accountant"] == "rdp" and record["grad_sample_mode"] == mode
    assert record["training_examples"] == 320
    assert record["delta"] == 1e-4  # default: a power of ten below 1 / (10 N)
    assert record["sample_rate"] == pytest.approx(1 / -(-320 // config["batch_size"]))
    assert 0 < record["steps"] <= record["planned_steps"]
    # The recorded epsilon is what Opacus's accountant says for the recorded run.
    assert record["epsilon"] == pytest.approx(
        epsilon_spent(
            noise_multiplier=record["noise_multiplier"],
            sample_rate=record["sample_rate"],
            steps=record["steps"],
            delta=record["delta"],
            accountant="rdp",
        ),
        abs=1e-3,
    )
    assert record["epsilon"] <= 8
    manifest = ready.artifacts.resolve(version.uri) / "aimass.json"
    assert '"privacy"' in manifest.read_text()
    card = ready.models.card(version.ref)
    assert "Trained with differential privacy" in card and "noise_multiplier" in card
    assert ready.serving.predict(version.ref, ["good great film"])[0]["label"] in ("pos", "neg")


@pytest.mark.slow  # trains to convergence under DP (~15 s)
def test_features_mode_learns_under_dp(ready):
    version = ready.jobs.train(spec({**FEATURES, "epochs": 30}, {"target_epsilon": 8}))
    assert version.privacy["accountant"] == "prv"
    assert version.metrics["test"]["accuracy"] >= 0.8


def test_dp_and_plain_runs_are_different_models(ready):
    plain = ready.jobs.train(spec(FEATURES, None))
    private = ready.jobs.train(spec(FEATURES, RDP8))
    assert plain.privacy is None and private.version == plain.version + 1
    assert ready.jobs.find_trained(spec(FEATURES, RDP8)).version == private.version
    assert ready.jobs.find_trained(spec(FEATURES, {**RDP8, "target_epsilon": 3})) is None


def test_private_runs_are_reproducible(ready):
    # Same seed, same Poisson batches and same noise: same weights (not secure_mode).
    weights = []
    for _ in range(2):
        version = ready.jobs.train(spec(FEATURES, RDP8))
        manifest = json.loads((ready.artifacts.resolve(version.uri) / "aimass.json").read_text())
        weights.append(manifest["files"]["model.safetensors"]["sha256"])
    assert weights[0] == weights[1]


@pytest.mark.parametrize(
    ("privacy", "match"),
    [
        ({"target_epsilon": 0}, "target_epsilon=0"),
        ({"target_epsilon": -1}, "target_epsilon=-1"),
        ({"target_epsilon": float("nan")}, "target_epsilon"),
        ({"target_epsilon": 8, "delta": 0.01}, "not below 1/N"),
        ({"target_epsilon": 8, "delta": 1 / 320}, "not below 1/N"),
        ({"target_epsilon": 8, "max_grad_norm": 0}, "max_grad_norm"),
        ({"target_epsilon": 8, "accountant": "moments"}, "accountant"),
        ({"target_epsilon": 8, "epsilon": 3}, "unknown differential privacy options"),
        ({"delta": 1e-5}, "needs a target epsilon"),
        ({"target_epsilon": 8, "clipping": "layer"}, "clipping='layer'"),
        (
            {"target_epsilon": 8, "clipping": "per-layer", "grad_sample_mode": "ghost"},
            "cannot be 'ghost' with per-layer clipping",
        ),
    ],
)
def test_bad_privacy_options_fail_before_a_job_exists(ready, privacy, match):
    with pytest.raises(InvalidArgument, match=match):
        ready.jobs.submit_training(spec(FEATURES, privacy))
    assert ready.store.jobs.list("default") == []
    assert ready.store.registry.list_models("default") == []


def test_a_fixed_noise_that_overspends_is_refused_before_training(ready):
    too_little_noise = {**RDP8, "noise_multiplier": 0.3}
    with pytest.raises(PrivacyBudgetExceeded, match="would spend epsilon") as err:
        ready.jobs.submit_training(spec(FEATURES, too_little_noise))
    assert err.value.code == "PRIVACY_BUDGET"
    assert ready.store.jobs.list("default") == []
    enough = ready.jobs.train(spec(FEATURES, {**RDP8, "noise_multiplier": 3.0}))
    assert enough.privacy["noise_multiplier"] == 3.0 and enough.privacy["epsilon"] < 8


def test_the_step_past_the_budget_is_refused():
    torch.manual_seed(0)
    head = nn.Linear(4, 2)
    engine = DPEngine(DPConfig(target_epsilon=2, accountant="rdp"))
    x, y = torch.randn(100, 4), torch.randint(0, 2, (100,))
    optimizer = torch.optim.SGD(head.parameters(), lr=0.1)
    loss = nn.functional.cross_entropy
    with engine.make_private(
        head,
        optimizer=optimizer,
        num_examples=100,
        phases=[(20, 1)],
        phase=0,
        loss=loss,
        finetune=False,
    ) as run:
        for idx in run.batches(0):
            run.loss(head(x[idx]), y[idx]).backward()
            run.optimizer.step()
            run.optimizer.zero_grad()
        with pytest.raises(PrivacyBudgetExceeded, match="budget allows 5 steps"):
            run.loss(head(x[:3]), y[:3])
    assert engine.steps_taken() == 5
    assert engine.summary()["epsilon"] <= 2
    assert not hasattr(head, "autograd_grad_sample_hooks"), "hooks are removed afterwards"


@pytest.mark.parametrize("clipping", ["flat", "per-layer"])
def test_per_layer_clipping_bounds_each_tensor_by_its_share(clipping):
    # Every row the same and far too large: each example's gradient is clipped, and the
    # batch mean is one example's clipped gradient (no noise to speak of).
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 16), nn.Linear(16, 2))
    bound = 1.0
    config = DPConfig(
        target_epsilon=1e30,
        accountant="rdp",
        noise_multiplier=1e-9,
        max_grad_norm=bound,
        clipping=clipping,
    )
    engine = DPEngine(config)
    x = torch.full((50, 4), 1e3) * torch.tensor([1.0, -2.0, 3.0, 0.5])
    with torch.no_grad():  # the wrong class: even the last bias's gradient is over its bound
        y = 1 - model(x).argmax(dim=1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    with engine.make_private(
        model,
        optimizer=optimizer,
        num_examples=50,
        phases=[(50, 1)],
        phase=0,
        loss=nn.functional.cross_entropy,
        finetune=True,
    ) as run:
        idx = next(iter(run.batches(0)))
        run.loss(model(x[idx]), y[idx]).backward()
        run.optimizer.step()
        norms = torch.stack([p.grad.norm() for p in model.parameters()]) * 50 / len(idx)
    record = engine.summary()
    assert record["clipping"] == clipping and record["clipped_tensors"] == 4
    # Ghost clipping, fine-tuning's default, bounds the whole gradient only.
    assert record["grad_sample_mode"] == ("hooks" if clipping == "per-layer" else "ghost")
    # Either way the whole gradient is bounded by C, so the noise is calibrated alike.
    assert float(norms.norm()) == pytest.approx(bound, rel=1e-3)
    if clipping == "per-layer":
        assert norms.tolist() == pytest.approx([bound / 2] * 4, rel=1e-3)
    else:
        assert max(norms) - min(norms) > 0.1, "flat clipping keeps the tensors' proportions"


def test_per_layer_clipping_fine_tunes_with_hooks_and_records_it(ready):
    version = ready.jobs.train(spec(FINETUNE, {**RDP8, "clipping": "per-layer"}))
    record = version.privacy
    assert (record["clipping"], record["grad_sample_mode"]) == ("per-layer", "hooks")
    assert 0 < record["epsilon"] <= 8
    # Every trained tensor of the encoder's layers and the head, each with its own bound.
    assert record["clipped_tensors"] > 10
    assert "per-layer" in ready.models.card(version.ref)


@pytest.mark.filterwarnings("ignore:Full backward hook is firing")
def test_explicit_ids_give_exact_per_example_gradients(tiny_bert_dir):
    # transformers-5 BERT broadcasts (1, T) position/type buffers; with explicit (B, T)
    # ids, Opacus's per-example gradients sum to the batch gradient.
    from opacus.grad_sample import GradSampleModule

    from aimass.models.hf import load_pretrained
    from aimass.models.sequence import SequenceHeadConfig, SequenceModel

    torch.manual_seed(0)
    encoder = load_pretrained(tiny_bert_dir, family="encoder")
    model = SequenceModel(encoder, SequenceHeadConfig(task="classification", num_outputs=2))
    model.encoder.pooler.requires_grad_(False)
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = 0.0
    model.train()
    model.explicit_ids = True
    ids = torch.randint(5, 40, (4, 7))
    mask = torch.ones_like(ids)
    mask[1, 5:] = 0
    y = torch.tensor([0, 1, 1, 0])
    gsm = GradSampleModule(model, loss_reduction="sum")
    nn.functional.cross_entropy(
        gsm(input_ids=ids, attention_mask=mask), y, reduction="sum"
    ).backward()
    for name, param in model.named_parameters():
        if param.requires_grad:
            assert param.grad_sample.shape[0] == 4, name
            torch.testing.assert_close(param.grad_sample.sum(0), param.grad, atol=1e-5, rtol=1e-4)
    gsm._close()


class WithBatchNorm(nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(8, 8)
        self.norm = nn.BatchNorm1d(8)
        self.attn = nn.MultiheadAttention(8, 2)
        self.rnn = nn.LSTM(8, 8)


def test_unsupported_layers_are_listed_with_reason_and_alternative():
    problems = find_problems(WithBatchNorm())
    assert [(p.layer, p.kind) for p in problems] == [
        ("norm", "BatchNorm1d"),
        ("attn", "MultiheadAttention"),
        ("rnn", "LSTM"),
    ]
    assert "mixes the examples" in problems[0].reason
    assert "GroupNorm" in problems[0].alternative
    assert "DPMultiheadAttention" in problems[1].alternative
    with pytest.raises(UnsupportedModel, match=r"norm \(BatchNorm1d\).*attn.*rnn") as err:
        require_supported(WithBatchNorm())
    assert len(err.value.details["problems"]) == 3
    frozen = WithBatchNorm().requires_grad_(False)
    assert find_problems(frozen) == []


def test_an_unsupported_model_trains_nothing():
    engine = DPEngine(DPConfig(target_epsilon=8))
    model = WithBatchNorm()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(UnsupportedModel):
        engine.check_module(model)
    assert engine.steps_taken() == 0
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def _word_embeddings(ws, uri):
    from safetensors.torch import load_file

    weights = load_file(ws.artifacts.resolve(uri) / "model.safetensors")
    return next(v for k, v in weights.items() if k.endswith("word_embeddings.weight"))


@pytest.mark.parametrize("train_embeddings", [False, True], ids=["frozen", "trained"])
def test_dp_finetune_freezes_token_embeddings_unless_asked(ready, train_embeddings):
    privacy = {**RDP8, "train_embeddings": True} if train_embeddings else RDP8
    version = ready.jobs.train(spec({**FINETUNE, "epochs": 1}, privacy))
    assert version.privacy["trained_embeddings"] is train_embeddings
    same = torch.equal(
        _word_embeddings(ready, version.uri), _word_embeddings(ready, ready.bases.get("tiny").uri)
    )
    assert same is not train_embeddings
