"""Distilling a causal language model: a tiny Llama teacher's next-token distributions
teach a one-layer student."""

import json
import shutil

import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from aimass.cli import app
from aimass.errors import InvalidArgument
from aimass.jobs.train import TrainSpec
from aimass.settings import Settings
from aimass.training.config import TrainConfig
from aimass.training.examples import IGNORE
from aimass.training.lm_distill import lm_distillation_rows
from aimass.workspace import Workspace
from tests.conftest import text_rows, write_jsonl

WRITER = {"task": "causal-lm", "lr": 3e-3}
# The soft term alone (alpha 1): the student learns nothing from the texts' own tokens,
# so what it knows of them it has from the teacher.
STUDENT = {**WRITER, "epochs": 2, "max_train_rows": 8, "distill_alpha": 1.0}


@pytest.fixture(scope="module")
def ws(lm_home, tmp_path_factory):
    """The LM home plus teacher 'writer' (the tiny Llama on 'text'), the student base
    'small' (that Llama cut to one layer) and 'raw' (300 other texts)."""
    root = tmp_path_factory.mktemp("distill-lm")
    shutil.copytree(lm_home, root / "home")
    ws = Workspace(Settings(home=root / "home", device="cpu"))
    ws.jobs.train(TrainSpec("text", "llama", "writer", {**WRITER, "epochs": 4}))
    ws.bases.shrink("llama", name="small", layers=1)
    ws.datasets.import_file(write_jsonl(root / "raw.jsonl", text_rows(300, seed=5)), name="raw")
    yield ws
    ws.close()


@pytest.fixture(scope="module")
def distilled(ws):
    return ws.jobs.train(
        TrainSpec(
            "text", "small", "distilled", {**STUDENT, "teacher": "writer", "unlabelled": "raw"}
        )
    )


def assert_scored_as_each_evaluated(record, teacher, student):
    """Both models of a language model's distillation report were scored on the test
    positions (and masks) their own test evaluations read: each as its card says."""
    assert record["test_tokens"] == teacher.metrics["test"]["tokens"]
    assert record["test_tokens"] == student.metrics["test"]["tokens"]
    assert record["teacher_perplexity"] == pytest.approx(
        teacher.metrics["test"]["perplexity"], rel=1e-4
    )
    assert record["student_perplexity"] == pytest.approx(
        student.metrics["test"]["perplexity"], rel=1e-4
    )


def test_the_student_learns_the_teachers_next_words(ws, distilled):
    record = distilled.metrics["distillation"]
    teacher = ws.models.get("writer@1")
    assert record["teacher"] == "writer@1" and record["transfer_set"] == "raw@1"
    assert record["transfer_rows"] == 300 and record["labelled_rows"] == 8
    assert record["alpha"] == 1.0 and record["temperature"] == 2.0
    assert_scored_as_each_evaluated(record, teacher, distilled)
    # From the teacher alone the student comes close to it, far from where it started.
    start = distilled.metrics["initial_validation"]["perplexity"]
    assert record["student_perplexity"] < start / 10, (start, record)
    assert record["perplexity_ratio"] <= 1.3, record
    assert record["agreement"] >= 0.85, record
    assert record["speed_ratio"] > 0 and record["speed_rounds"] > 0
    card = ws.models.card(distilled.ref)
    assert "test perplexity (lower is better)" in card
    assert "next token is the teacher's" in card and "at every position" in card


def test_the_loss_is_hintons_at_every_position_that_predicts_a_token():
    generator = torch.Generator().manual_seed(0)
    student = torch.randn(2, 4, 5, generator=generator)
    teacher = torch.randn(2, 4, 5, generator=generator)
    labels = torch.tensor([[IGNORE, 1, 2, IGNORE], [3, 0, IGNORE, 4]])
    temperature, alpha = 2.0, 0.3
    packed = torch.cat(
        [F.log_softmax(teacher / temperature, -1), labels.unsqueeze(-1).float()], dim=-1
    )
    sums, counts = lm_distillation_rows(student, packed, temperature=temperature, alpha=alpha)
    expected_sums, expected_counts = [], []
    for row in range(2):
        total, n = 0.0, 0
        for t in range(3):  # position t predicts the label of t + 1
            label = int(labels[row, t + 1])
            if label == IGNORE:
                continue
            p = F.softmax(teacher[row, t] / temperature, -1)
            q = F.log_softmax(student[row, t] / temperature, -1)
            kl = float((p * (p.log() - q)).sum()) * temperature**2
            ce = float(F.cross_entropy(student[row, t : t + 1], torch.tensor([label])))
            total += alpha * kl + (1 - alpha) * ce
            n += 1
        expected_sums.append(total)
        expected_counts.append(n)
    assert sums.tolist() == pytest.approx(expected_sums, rel=1e-5)
    assert counts.tolist() == expected_counts == [2, 2]
    same = torch.cat([F.log_softmax(student / temperature, -1), labels.unsqueeze(-1).float()], -1)
    zero, _ = lm_distillation_rows(student, same, temperature=temperature, alpha=1.0)
    assert zero.abs().max() < 1e-5


def test_a_private_student_learns_from_the_teacher(ws):
    # 'corpus' is not the teacher's dataset, so a DP student may learn from it.
    version = ws.jobs.train(
        TrainSpec(
            "corpus",
            "small",
            "dp-student",
            {**WRITER, "epochs": 1, "teacher": "writer"},
            privacy={"target_epsilon": 50.0},
        )
    )
    assert 0 < version.privacy["epsilon"] <= 50.0
    assert version.metrics["distillation"]["student_perplexity"] > 0


def test_a_student_with_another_tokenizer_is_refused(ws):
    ws.bases.train_tokenizer("corpus", name="tok2", vocab_size=200, min_frequency=1)
    ws.bases.create_scratch("llama2", architecture="llama", tokenizer="tok2", preset="tiny")
    with pytest.raises(InvalidArgument, match="another tokenizer") as err:
        ws.jobs.train(TrainSpec("text", "llama2", "x", {**STUDENT, "teacher": "writer"}))
    assert err.value.details["field"] == "teacher"


def test_other_transfer_sets_layer_matching_and_other_lm_tasks_are_refused(ws):
    with pytest.raises(InvalidArgument, match=r"of kind 'pairs'.*transfer set is of kind text"):
        ws.jobs.submit_training(
            TrainSpec("text", "small", "x", {**STUDENT, "teacher": "writer", "unlabelled": "pairs"})
        )
    with pytest.raises(InvalidArgument, match="causal-lm student learns the teacher's") as err:
        TrainConfig(task="causal-lm", teacher="writer", match_hidden=10).resolved()
    assert err.value.details["field"] == "match_hidden"
    with pytest.raises(InvalidArgument, match="is a causal-lm model but the student is"):
        ws.jobs.submit_training(
            TrainSpec("pairs", "bart", "x", {"task": "seq2seq", "teacher": "writer", "epochs": 1})
        )


def test_cli_distills_a_language_model(ws, monkeypatch):
    monkeypatch.setenv("AIMASS_HOME", str(ws.settings.home))
    monkeypatch.setenv("AIMASS_DEVICE", "cpu")
    args = ["distill", "--teacher", "writer@1", "--student", "small", "--dataset", "text"]
    args += ["--name", "cli-writer", "--epochs", "1", "--max-train-rows", "8", "--lr", "3e-3"]
    result = CliRunner().invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["metrics"]["distillation"]["teacher"] == "writer@1"
    # Without --task the student takes its teacher's.
    assert out["lineage"]["config"]["task"] == "causal-lm"
    again = CliRunner().invoke(app, [*args, "--reuse"])
    assert again.exit_code == 0, again.output
    assert "test perplexity" in again.output and "next tokens alike" in again.output


def test_greedy_outputs_of_a_decoder_are_the_served_ones(ws):
    """Prompts of different lengths share a left-padded batch, and each is decoded as the
    served model generates it alone."""
    prompts = ["the cat", "a dog ran to the park and", "city", "the mat and the dog sat on"]
    said = assert_greedy_outputs_are_served(ws, "writer@1", prompts, max_length=12)
    assert len(set(said)) > 1  # the prompts were read, not only the padding


def assert_greedy_outputs_are_served(ws, ref, texts, *, max_length):
    """Beam-1 sequence-level outputs of teacher ``ref`` for ``texts`` (decoded together)
    equal what the served model generates for each alone; returns them."""
    from aimass.jobs.token_teachers import teacher_outputs
    from aimass.serving.predictor import load_predictor
    from aimass.training.callbacks import CallbackList

    teacher = ws.models.get(ref)
    predictor = load_predictor(ws.artifacts.resolve(teacher.uri), device="cpu")
    said = teacher_outputs(
        teacher, predictor, texts, beams=1, max_length=max_length, callbacks=CallbackList([])
    )
    served = [predictor.generate(t, max_new_tokens=max_length)["text"] for t in texts]
    assert said == served
    return said


def test_sequence_level_a_causal_student_learns_the_teachers_responses(ws, tmp_path):
    """A teacher instruction-tuned on 'repeat X' → 'X X'; pairs whose responses are all
    'no'. With sequence-level distillation (alpha 0) the student's targets are the
    teacher's responses, so it answers in the teacher's form; prompts alone (a text
    dataset) are a transfer set."""
    from aimass.data.importer import ImportOptions
    from tests.conftest import pair_rows

    ws.jobs.train(TrainSpec("pairs", "llama", "repeater", {**WRITER, "epochs": 8}))
    rows = [{**row, "response": "no"} for row in pair_rows(240)]
    odd = write_jsonl(tmp_path / "odd.jsonl", rows)
    ws.datasets.import_file(odd, name="odd", options=ImportOptions(kind="pairs"))
    prompts = write_jsonl(tmp_path / "prompts.jsonl", [{"text": r["prompt"]} for r in rows[:24]])
    ws.datasets.import_file(prompts, name="prompts")
    hard = {**WRITER, "epochs": 6, "max_train_rows": 48, "distill_alpha": 0.0}
    config = {**hard, "teacher": "repeater", "sequence_beams": 2, "unlabelled": "prompts"}
    student = ws.jobs.train(TrainSpec("odd", "small", "seq-kd", config))
    record = student.metrics["distillation"]
    assert record["sequence_level"]["beams"] == 2
    assert record["sequence_level"]["decoded_rows"] == record["labelled_rows"] + 24
    taught = ws.serving.predict("repeater@1", ["repeat cat"])[0]["generated_text"]
    assert taught.split() == ["cat", "cat"], taught
    for written in ws.serving.predict(student.ref, ["repeat cat", "repeat park"]):
        first, second = written["generated_text"].split()[:2]
        assert first == second, written
    with pytest.raises(InvalidArgument, match="needs a pairs dataset") as err:
        ws.jobs.submit_training(TrainSpec("text", "small", "x", config))
    assert err.value.details["field"] == "sequence_beams"
