"""Distilling a seq2seq model: a tiny BART teacher's distributions at every target
position, both teacher-forced on the same target, teach a one-layer student."""

import shutil

import pytest

from aimass.errors import InvalidArgument
from aimass.jobs.train import TrainSpec
from aimass.settings import Settings
from aimass.workspace import Workspace
from tests.conftest import pair_rows, write_jsonl
from tests.training.test_distill_lm import assert_scored_as_each_evaluated

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
    with pytest.raises(InvalidArgument, match=r"of kind 'text'.*transfer set is of kind pairs"):
        ws.jobs.submit_training(
            TrainSpec(
                "pairs", "small", "x", {**STUDENT, "teacher": "rewriter", "unlabelled": "text"}
            )
        )
