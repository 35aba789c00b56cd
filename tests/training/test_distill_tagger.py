"""Distilling a tagger: a tiny NER teacher's tag distributions teach a one-layer student."""

import json
import shutil

import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from aimass.cli import app
from aimass.data.importer import ImportOptions
from aimass.errors import InvalidArgument
from aimass.jobs.train import TrainSpec
from aimass.settings import Settings
from aimass.training.config import TrainConfig
from aimass.training.distill import NO_LABEL
from aimass.training.examples import IGNORE
from aimass.training.token_distill import token_distillation_rows
from aimass.workspace import Workspace
from tests.conftest import ner_rows, write_jsonl

TAGGER = {"task": "token-classification", "lr": 3e-3}
# Four labelled sentences and two epochs are too little for the student on its labels
# alone; the teacher's distributions on 400 raw sentences are enough to follow it.
STUDENT = {**TAGGER, "epochs": 2, "max_train_rows": 4}


def _typed(ws, rows, name, tmp):
    ws.datasets.import_file(
        write_jsonl(tmp / f"{name}.jsonl", rows), name=name, options=ImportOptions(kind="tokens")
    )


@pytest.fixture(scope="module")
def ws(lm_home, tmp_path_factory):
    """The LM home plus teacher 'tagger' (the tiny BERT on 'ner'), the student base
    'small' (that BERT cut to one layer), 'raw' (400 untagged sentences), 'ner2' (other
    tagged sentences), 'orgs' (another entity type) and 'pairs-raw' (a pairs dataset)."""
    root = tmp_path_factory.mktemp("distill-tagger")
    shutil.copytree(lm_home, root / "home")
    ws = Workspace(Settings(home=root / "home", device="cpu"))
    ws.jobs.train(TrainSpec("ner", "bert", "tagger", {**TAGGER, "epochs": 4}))
    ws.bases.shrink("bert", name="small", layers=1)
    raw = [{"text": " ".join(r["tokens"])} for r in ner_rows(400, seed=5)]
    ws.datasets.import_file(write_jsonl(root / "raw.jsonl", raw), name="raw")
    _typed(ws, ner_rows(120, seed=7), "ner2", root)
    orgs = [{"tokens": ["Acme", "hired", "me"], "tags": ["B-ORG", "O", "O"]}] * 40
    _typed(ws, orgs, "orgs", root)
    yield ws
    ws.close()


@pytest.fixture(scope="module")
def students(ws):
    """The distilled student and the same student trained on its four labels alone."""
    distilled = ws.jobs.train(
        TrainSpec(
            "ner", "small", "distilled", {**STUDENT, "teacher": "tagger", "unlabelled": "raw"}
        )
    )
    hard = ws.jobs.train(TrainSpec("ner", "small", "hard", STUDENT))
    return distilled, hard


def test_the_student_tags_like_its_teacher_where_labels_alone_fall_short(ws, students):
    distilled, hard = students
    record = distilled.metrics["distillation"]
    assert record["teacher"] == "tagger@1" and record["transfer_set"] == "raw@1"
    assert record["transfer_rows"] == 400 and record["labelled_rows"] == 4
    assert record["teacher_f1"] == ws.models.get("tagger@1").metrics["test"]["f1"]
    assert record["student_f1"] == distilled.metrics["test"]["f1"]
    assert record["f1_ratio"] == pytest.approx(record["student_f1"] / record["teacher_f1"])
    assert record["agreement"] >= 0.95
    assert set(record["per_type"]) == {"LOC", "PER"}
    assert record["speed_ratio"] > 0 and record["speed_rows"] == record["test_rows"]
    assert distilled.metrics["test"]["f1"] >= hard.metrics["test"]["f1"] + 0.2, (
        distilled.metrics["test"],
        hard.metrics["test"],
    )
    [found] = ws.serving.predict(distilled.ref, ["Alice Smith went to Rome"])
    assert {(e["label"], e["text"]) for e in found["entities"]} == {
        ("PER", "Alice Smith"),
        ("LOC", "Rome"),
    }
    card = ws.models.card(distilled.ref)
    assert "test entity F1" in card and "of the words of the" in card
    assert "sentences/s (test split, batch 64)" in card


@pytest.mark.parametrize("mode", ["finetune", "features"])
def test_a_private_student_and_a_head_alone_learn_from_the_teacher(ws, mode):
    # 'ner2' is not the teacher's data, so a DP student may learn from it.
    config = {**TAGGER, "epochs": 2, "mode": mode, "teacher": "tagger", "unlabelled": "raw"}
    if mode == "features":
        config["lr"] = 1e-2
    version = ws.jobs.train(
        TrainSpec("ner2", "small", f"dp-{mode}", config, privacy={"target_epsilon": 50.0})
    )
    assert 0 < version.privacy["epsilon"] <= 50.0
    assert version.metrics["distillation"]["agreement"] >= 0.9


def test_a_student_with_another_tokenizer_is_refused(ws):
    # 'llama' is another architecture with the same tokenizer: accepted by the check;
    # a BERT of its own tokenizer is not.
    ws.bases.train_tokenizer("corpus", name="tok2", vocab_size=200, min_frequency=1)
    ws.bases.create_scratch("bert2", architecture="bert", tokenizer="tok2", preset="tiny")
    with pytest.raises(InvalidArgument, match="another tokenizer") as err:
        ws.jobs.train(TrainSpec("ner", "bert2", "x", {**STUDENT, "teacher": "tagger"}))
    assert err.value.details["field"] == "teacher"


def test_a_dataset_of_other_entity_types_is_refused(ws):
    with pytest.raises(InvalidArgument, match="same entity types"):
        ws.jobs.train(TrainSpec("orgs", "small", "x", {**STUDENT, "teacher": "tagger"}))


def test_a_transfer_set_of_another_kind_and_layer_matching_are_refused(ws):
    with pytest.raises(InvalidArgument, match=r"of kind 'pairs'.*text or tokens"):
        ws.jobs.submit_training(
            TrainSpec("ner", "small", "x", {**STUDENT, "teacher": "tagger", "unlabelled": "pairs"})
        )
    with pytest.raises(InvalidArgument, match="position by position") as err:
        TrainConfig(task="token-classification", teacher="tagger", match_hidden=10).resolved()
    assert err.value.details["field"] == "match_hidden"


def test_the_loss_is_hintons_at_every_position():
    torch.manual_seed(0)
    logits, teacher = torch.randn(2, 4, 3), torch.randn(2, 4, 3)
    labels = torch.tensor([[IGNORE, 0, 2, IGNORE], [IGNORE, NO_LABEL, NO_LABEL, IGNORE]])
    temperature = 2.0
    teacher_log = F.log_softmax(teacher / temperature, -1)
    packed = torch.cat([teacher_log, labels.unsqueeze(-1).float()], -1)
    sums, counts = token_distillation_rows(logits, packed, temperature=temperature, alpha=0.3)
    assert counts.tolist() == [2, 2]
    kl = (
        F.kl_div(
            F.log_softmax(logits / temperature, -1), teacher_log, log_target=True, reduction="none"
        )
        .sum(-1)
        .mul(temperature**2)
    )
    ce = F.cross_entropy(logits[0, 1:3], labels[0, 1:3], reduction="sum")
    assert sums[0] == pytest.approx(float(0.3 * kl[0, 1:3].sum() + 0.7 * ce), rel=1e-5)
    assert sums[1] == pytest.approx(float(kl[1, 1:3].sum()), rel=1e-5)  # the soft term alone
    same = torch.cat([F.log_softmax(logits / temperature, -1), labels.unsqueeze(-1).float()], -1)
    sums, _ = token_distillation_rows(logits, same, temperature=temperature, alpha=1.0)
    assert sums.abs().max() < 1e-5


def test_cli_distills_a_tagger(ws, monkeypatch):
    monkeypatch.setenv("AIMASS_HOME", str(ws.settings.home))
    monkeypatch.setenv("AIMASS_DEVICE", "cpu")
    args = ["distill", "--teacher", "tagger@1", "--student", "small", "--dataset", "ner"]
    args += ["--unlabelled", "raw", "--name", "cli-tagger"]
    args += ["--epochs", "1", "--max-train-rows", "8", "--lr", "3e-3"]
    result = CliRunner().invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["metrics"]["distillation"]["teacher"] == "tagger@1"
    # Without --task the student takes its teacher's.
    assert out["lineage"]["config"]["task"] == "token-classification"
    again = CliRunner().invoke(app, [*args, "--reuse"])
    assert again.exit_code == 0, again.output
    assert "test entity F1" in again.output and "words tagged alike" in again.output
