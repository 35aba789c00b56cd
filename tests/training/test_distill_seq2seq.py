"""Distilling a seq2seq model: a tiny BART teacher's distributions at every target
position, both teacher-forced on the same target, teach a one-layer student; with
sequence-level distillation the teacher's own outputs are the targets."""

import json
import shutil

import pytest
from typer.testing import CliRunner

from aimass.cli import app
from aimass.errors import InvalidArgument
from aimass.jobs.train import TrainSpec
from aimass.settings import Settings
from aimass.workspace import Workspace
from tests.conftest import pair_rows, write_jsonl
from tests.training.test_distill_lm import (
    assert_greedy_outputs_are_served,
    assert_scored_as_each_evaluated,
)

REWRITER = {"task": "seq2seq", "lr": 3e-3, "batch_size": 16}
# The soft term alone (alpha 1): what the student knows of the targets it has from the teacher.
STUDENT = {**REWRITER, "epochs": 3, "max_train_rows": 8, "distill_alpha": 1.0}


@pytest.fixture(scope="module")
def ws(lm_home, tmp_path_factory):
    """The LM home plus teacher 'rewriter' (the tiny BART on 'pairs'), the student base
    'small' (one encoder and one decoder layer, the same tokenizer) and 'more' (240
    other pairs, imported as pairs)."""
    from aimass.data.importer import ImportOptions

    root = tmp_path_factory.mktemp("distill-seq2seq")
    shutil.copytree(lm_home, root / "home")
    ws = Workspace(Settings(home=root / "home", device="cpu"))
    ws.jobs.train(TrainSpec("pairs", "bart", "rewriter", {**REWRITER, "epochs": 8}))
    ws.bases.create_scratch(
        "small",
        architecture="bart",
        tokenizer="tok",
        preset="tiny",
        overrides={"encoder_layers": 1, "decoder_layers": 1},
    )
    more = write_jsonl(root / "more.jsonl", pair_rows(240))
    ws.datasets.import_file(more, name="more", options=ImportOptions(kind="pairs"))
    yield ws
    ws.close()


def test_the_student_learns_the_teachers_target_words(ws):
    distilled = ws.jobs.train(
        TrainSpec(
            "pairs", "small", "distilled", {**STUDENT, "teacher": "rewriter", "unlabelled": "more"}
        )
    )
    record = distilled.metrics["distillation"]
    teacher = ws.models.get("rewriter@1")
    assert record["positions"] == "target" and record["transfer_rows"] == 240
    # Both scored teacher-forced on the test targets, as their own test evaluations were.
    assert_scored_as_each_evaluated(record, teacher, distilled)
    start = distilled.metrics["initial_validation"]["perplexity"]
    assert record["student_perplexity"] < start / 5, (start, record)
    assert record["perplexity_ratio"] <= 1.5 and record["agreement"] >= 0.8, record
    assert "target token is the teacher's" in ws.models.card(distilled.ref)
    alone = ws.jobs.train(TrainSpec("pairs", "small", "alone", {**STUDENT, "distill_alpha": None}))
    assert record["student_perplexity"] < alone.metrics["test"]["perplexity"] * 0.8


def test_a_text_transfer_set_is_refused(ws):
    found = r"of kind 'text'.*transfer set is of kind pairs.*or add --sequence-beams N"
    with pytest.raises(InvalidArgument, match=found):
        ws.jobs.submit_training(
            TrainSpec(
                "pairs", "small", "x", {**STUDENT, "teacher": "rewriter", "unlabelled": "text"}
            )
        )


def test_sequence_level_the_student_learns_what_the_teacher_writes(ws, tmp_path):
    """Pairs whose references are all 'no': with sequence-level distillation (and no
    word-level term, alpha 0) the student's only targets are the teacher's outputs
    ('X X'), so it writes in the teacher's form, a word twice, and never 'no'; sources
    alone (a text dataset) are a transfer set."""
    from aimass.data.importer import ImportOptions

    rows = [{**row, "response": "no"} for row in pair_rows(240)]
    ws.datasets.import_file(
        write_jsonl(tmp_path / "odd.jsonl", rows), name="odd", options=ImportOptions(kind="pairs")
    )
    sources = write_jsonl(tmp_path / "sources.jsonl", [{"text": r["prompt"]} for r in rows[:24]])
    ws.datasets.import_file(sources, name="sources")
    hard = {**STUDENT, "max_train_rows": 48, "epochs": 6, "distill_alpha": 0.0}
    config = {**hard, "teacher": "rewriter", "sequence_beams": 2, "unlabelled": "sources"}
    student = ws.jobs.train(TrainSpec("odd", "small", "seq-kd", config))
    record = student.metrics["distillation"]
    assert record["sequence_level"]["beams"] == 2
    assert record["sequence_level"]["decoded_rows"] == record["labelled_rows"] + 24
    assert record["transfer_rows"] == 24
    teacher = ws.serving.predict("rewriter@1", ["repeat cat", "repeat park"])
    written = ws.serving.predict(student.ref, ["repeat cat", "repeat park"])
    assert [w["generated_text"] for w in teacher] == ["cat cat", "park park"]
    # One layer copies no word in 6 epochs here, but its every target had the form.
    for text in (w["generated_text"] for w in written):
        first, second = text.split()
        assert first == second, written
    assert "Sequence-level distillation" in ws.models.card(student.ref)
    # The references alone teach the other answer: the targets above were the teacher's.
    alone = ws.jobs.train(TrainSpec("odd", "small", "odd-alone", {**hard, "distill_alpha": None}))
    assert ws.serving.predict(alone.ref, ["repeat cat"])[0]["generated_text"] == "no"


def test_greedy_outputs_are_the_served_ones(ws):
    """Beam 1 decodes as the served model generates: the student learns what users see."""
    texts = ["repeat dog", "repeat the cat sat", "repeat", "repeat mat and city"]
    assert_greedy_outputs_are_served(ws, "rewriter@1", texts, max_length=32)


@pytest.mark.parametrize(
    ("config", "match"),
    [
        ({"sequence_beams": 2}, r"--sequence-beams.*without a teacher"),
        ({"teacher": "rewriter", "sequence_beams": 17}, r"--sequence-beams 17.*1 \(greedy\) to 16"),
        ({"teacher": "rewriter", "sequence_beams": True}, r"--sequence-beams True"),
    ],
)
def test_sequence_beams_are_checked(ws, config, match):
    with pytest.raises(InvalidArgument, match=match):
        ws.jobs.submit_training(TrainSpec("pairs", "small", "x", {**STUDENT, **config}))


def test_sequence_level_is_for_models_that_write():
    from aimass.training.config import TrainConfig

    config = TrainConfig(task="masked-lm", teacher="lm@1", sequence_beams=4)
    with pytest.raises(InvalidArgument, match="not of task 'masked-lm'"):
        config.resolved(modes=("finetune",))


def test_cli_distils_sequence_level(ws, monkeypatch):
    monkeypatch.setenv("AIMASS_HOME", str(ws.settings.home))
    monkeypatch.setenv("AIMASS_DEVICE", "cpu")
    args = ["distill", "--teacher", "rewriter@1", "--student", "small", "--dataset", "pairs"]
    args += ["--name", "cli-seq", "--epochs", "1", "--max-train-rows", "8", "--sequence-beams", "1"]
    result = CliRunner().invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["lineage"]["config"]["sequence_beams"] == 1
    assert out["metrics"]["distillation"]["sequence_level"]["decoded_rows"] == 8
    again = CliRunner().invoke(app, [*args, "--reuse"])
    assert again.exit_code == 0, again.output
    assert "targets: the teacher's outputs, beam 1 (8 inputs decoded" in again.output


def test_a_config_without_sequence_level_keeps_its_digest():
    """Off (0), the field is left out of the recorded config, so runs recorded before it
    existed are still found by --reuse; on, it is recorded."""
    from aimass.training.config import TrainConfig

    modes = ("finetune",)
    off = TrainConfig(task="seq2seq", teacher="rewriter@1").resolved(modes=modes).to_dict()
    on = TrainConfig(task="seq2seq", teacher="rewriter@1", sequence_beams=3).resolved(modes=modes)
    assert "sequence_beams" not in off
    assert on.to_dict()["sequence_beams"] == 3
    assert "sequence_beams" not in TrainConfig(task="seq2seq").resolved(modes=modes).to_dict()
