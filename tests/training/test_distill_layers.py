"""Distillation with intermediate-layer matching (``--match-hidden``): the student's layers
are pulled towards the teacher layers they map to, where the shapes allow it."""

import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from aimass.cli import app
from aimass.errors import InvalidArgument
from aimass.jobs.train import TrainSpec
from aimass.models.hf import load_tokenizer
from aimass.models.sequence import SequenceHeadConfig
from aimass.models.text import collate, encode_texts
from aimass.serving.sequence import build_sequence_model
from aimass.training.config import TrainConfig
from aimass.training.distill import (
    NO_LABEL,
    SoftTargets,
    distillation_loss,
    layer_map,
    layer_matching_loss,
    student_loss,
)
from tests.conftest import import_few_and_pool, make_tiny_bert, sentiment_rows, trained_workspace

STUDENT = {"mode": "finetune", "epochs": 3, "lr": 1e-3, "batch_size": 16}


@pytest.fixture(scope="module")
def ws(tmp_path_factory, tiny_bert_dir):
    """Teacher 'm' (2 layers, hidden 32) on 's'; student bases 'one' (1 layer, hidden 32)
    and 'narrow' (hidden 16); 'few' (40 labelled rows) and 'pool' (400 without labels)."""
    root = tmp_path_factory.mktemp("distill-layers")
    ws = trained_workspace(root / "home", tiny_bert_dir, root / "data")
    ws.bases.import_(str(make_tiny_bert(root / "one", seed=1, layers=1)), name="one")
    ws.bases.import_(str(make_tiny_bert(root / "narrow", seed=1, hidden=16)), name="narrow")
    import_few_and_pool(ws, root)
    yield ws
    ws.close()


def _distil(ws, model, base="one", **config):
    config = {**STUDENT, "teacher": "m@1", "unlabelled": "pool", **config}
    return ws.jobs.train(TrainSpec(dataset="few", base=base, model=model, config=config))


def test_layers_map_uniformly_and_last_meets_last():
    assert layer_map(1, 4) == ((1, 4),)
    assert layer_map(2, 6) == ((1, 3), (2, 6))
    assert layer_map(3, 12) == ((1, 4), (2, 8), (3, 12))
    assert layer_map(4, 4) == ((1, 1), (2, 2), (3, 3), (4, 4))


def test_matching_loss_compares_directions_layer_by_layer():
    torch.manual_seed(0)
    teacher = F.normalize(torch.randn(5, 2, 8), dim=-1)
    same = teacher * torch.tensor([3.0, 0.5]).reshape(1, 2, 1)  # same directions, any scale
    loss = layer_matching_loss(same.reshape(5, -1), teacher.reshape(5, -1), layers=2)
    assert torch.allclose(loss, torch.zeros(5), atol=1e-6)
    student = torch.randn(5, 2, 8)
    expected = ((F.normalize(student, dim=-1) - teacher) ** 2).sum(-1).mean(-1)
    got = layer_matching_loss(student.reshape(5, -1), teacher.reshape(5, -1), layers=2)
    assert torch.allclose(got, expected)
    opposite = layer_matching_loss(-teacher.reshape(5, -1), teacher.reshape(5, -1), layers=2)
    assert torch.allclose(opposite, torch.full((5,), 4.0))


def test_student_loss_adds_the_weighted_matching_term():
    torch.manual_seed(1)
    logits, teacher_log = torch.randn(4, 2), F.log_softmax(torch.randn(4, 2) / 2.0, dim=-1)
    labels = torch.tensor([0, 1, NO_LABEL, 1], dtype=torch.float).unsqueeze(-1)
    student_states = torch.randn(4, 8)
    teacher_states = F.normalize(torch.randn(4, 8), dim=-1)
    soft = SoftTargets(
        teacher="m@1",
        teacher_digest="d",
        temperature=2.0,
        alpha=0.5,
        train=torch.rand(3, 2).numpy(),
        transfer_texts=[],
        transfer=torch.rand(1, 2).numpy(),
        test=torch.rand(0, 2).numpy(),
        layers=((1, 2),),
        hidden=teacher_states.numpy(),
        hidden_weight=10.0,
    )
    config = TrainConfig(teacher="m@1", temperature=2.0, distill_alpha=0.5, match_hidden=10.0)
    loss = student_loss(lambda *a, **k: None, soft, config)
    outputs = torch.cat([logits, student_states], dim=-1)
    targets = torch.cat([teacher_log, labels, teacher_states], dim=-1)
    hinton = distillation_loss(
        logits, torch.cat([teacher_log, labels], -1), temperature=2.0, alpha=0.5, reduction="none"
    )
    matching = layer_matching_loss(student_states, teacher_states, layers=1)
    assert torch.allclose(loss(outputs, targets, reduction="none"), hinton + 10.0 * matching)
    assert torch.allclose(loss(outputs, targets), (hinton + 10.0 * matching).mean())


def _final_states(ws, ref, texts):
    """Mean-pooled last-layer states of a registered classifier on ``texts``."""
    version = ws.models.get(ref)
    directory = ws.artifacts.resolve(version.uri)
    from aimass.artifacts.bundle import verify_bundle

    manifest = verify_bundle(directory)
    model = build_sequence_model(directory, SequenceHeadConfig.from_dict(manifest.task_config))
    encoded = encode_texts(load_tokenizer(directory), texts, max_length=64)
    last = int(model.encoder.config.num_hidden_layers)
    with torch.inference_mode():
        said = model.forward_with_layers([last], **collate(encoded, range(len(texts)), "cpu"))
    return said[:, model.head_config.num_outputs :]


def test_matched_student_layers_point_where_the_teachers_do(ws):
    matched = _distil(ws, "matched", match_hidden=100.0)
    plain = _distil(ws, "plain")
    record = matched.metrics["distillation"]
    assert record["layer_matching"] == {"weight": 100.0, "layers": [[1, 2]]}
    assert matched.lineage.config["match_hidden"] == 100.0
    assert "match_hidden" not in plain.lineage.config  # digests of older runs stay put
    texts = [r["text"] for r in sentiment_rows(100, seed=3)]  # held out from every set
    teacher = _final_states(ws, "m@1", texts)
    similarity = {
        v.name: float(F.cosine_similarity(_final_states(ws, v.ref, texts), teacher).mean())
        for v in (matched, plain)
    }
    assert similarity["matched"] > 0.9, similarity
    assert similarity["matched"] > similarity["plain"] + 0.2, similarity
    assert "Intermediate-layer matching, weight 100: student layer → teacher layer 1→2" in (
        ws.models.card(matched.ref)
    )


def test_matching_needs_the_teachers_width(ws):
    with pytest.raises(InvalidArgument, match="hidden size is 16 but teacher m@1's is 32"):
        _distil(ws, "narrow-student", base="narrow", match_hidden=10.0)


def test_matching_options_are_checked():
    with pytest.raises(InvalidArgument, match="without a teacher"):
        TrainConfig(match_hidden=10.0).resolved()
    with pytest.raises(InvalidArgument, match=r"match_hidden=-1"):
        TrainConfig(teacher="m", mode="finetune", match_hidden=-1.0).resolved()
    with pytest.raises(InvalidArgument, match="needs --mode finetune"):
        TrainConfig(teacher="m", mode="features", match_hidden=10.0).resolved()
    with pytest.raises(InvalidArgument, match="a pipeline has no hidden layers"):
        TrainConfig(teacher="pipeline:p@1", mode="finetune", match_hidden=10.0).resolved()
    assert "match_hidden" not in TrainConfig(teacher="m", match_hidden=0.0).resolved().to_dict()


def test_a_private_student_matches_layers_under_dp_sgd(ws):
    # The teacher saw 's', not 'few' or 'pool': DP-SGD covers the student's rows.
    version = ws.jobs.train(
        TrainSpec(
            dataset="few",
            base="one",
            model="private-matched",
            config={**STUDENT, "teacher": "m@1", "match_hidden": 10.0},
            privacy={"target_epsilon": 8.0},
        )
    )
    assert 0 < version.privacy["epsilon"] <= 8.0
    assert version.metrics["distillation"]["layer_matching"]["layers"] == [[1, 2]]


def test_cli_distills_with_matching_and_prints_the_pairs(ws, monkeypatch):
    monkeypatch.setenv("AIMASS_HOME", str(ws.settings.home))
    monkeypatch.setenv("AIMASS_DEVICE", "cpu")
    args = ["distill", "--teacher", "m@1", "--student", "one", "--dataset", "few"]
    args += ["--name", "cli-matched", "--epochs", "1", "--match-hidden", "50"]
    runner = CliRunner()
    refused = runner.invoke(app, [*args, "--mode", "features"])
    assert refused.exit_code != 0
    assert "--match-hidden needs --mode finetune" in refused.output
    result = runner.invoke(app, [*args, "--mode", "finetune"])
    assert result.exit_code == 0, result.output
    assert "intermediate-layer matching (weight 50.0): 1→2" in result.output
