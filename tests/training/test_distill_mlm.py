"""Distilling a masked language model: a tiny BERT teacher's distributions at the masked
positions of the student's own batches teach a one-layer student (DistilBERT's recipe)."""

import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from aimass.errors import InvalidArgument
from aimass.jobs.train import TrainSpec
from aimass.settings import Settings
from aimass.training.config import TrainConfig
from aimass.training.distill import SoftTargets
from aimass.training.examples import IGNORE
from aimass.training.lm_distill import LMDistillation, lm_distillation_rows
from aimass.workspace import Workspace
from tests.conftest import text_rows, write_jsonl
from tests.training.test_distill_lm import assert_scored_as_each_evaluated

FILLER = {"task": "masked-lm", "lr": 3e-3, "batch_size": 16}
# The soft term alone (alpha 1): what the student knows of the texts it has from the teacher.
STUDENT = {**FILLER, "epochs": 3, "max_train_rows": 8, "distill_alpha": 1.0}


@pytest.fixture(scope="module")
def ws(lm_home, tmp_path_factory):
    """The LM home plus teacher 'filler' (the tiny BERT as a masked LM on 'text'), the
    student base 'small' (that BERT cut to one layer) and 'raw' (300 other texts)."""
    root = tmp_path_factory.mktemp("distill-mlm")
    shutil.copytree(lm_home, root / "home")
    ws = Workspace(Settings(home=root / "home", device="cpu"))
    ws.jobs.train(TrainSpec("text", "bert", "filler", {**FILLER, "epochs": 8}))
    ws.bases.shrink("bert", name="small", layers=1)
    ws.datasets.import_file(write_jsonl(root / "raw.jsonl", text_rows(300, seed=5)), name="raw")
    yield ws
    ws.close()


@pytest.fixture(scope="module")
def distilled(ws):
    return ws.jobs.train(
        TrainSpec(
            "text", "small", "distilled", {**STUDENT, "teacher": "filler", "unlabelled": "raw"}
        )
    )


def test_the_student_learns_what_the_teacher_fills_in(ws, distilled):
    record = distilled.metrics["distillation"]
    teacher = ws.models.get("filler@1")
    assert record["positions"] == "masked" and record["teacher"] == "filler@1"
    assert record["transfer_rows"] == 300 and record["labelled_rows"] == 8
    # The masks of the student's test evaluation are the teacher's own (same seed, texts).
    assert_scored_as_each_evaluated(record, teacher, distilled)
    start = distilled.metrics["initial_validation"]["perplexity"]
    assert record["student_perplexity"] < start / 3, (start, record)
    assert record["perplexity_ratio"] <= 1.5, record
    assert record["agreement"] >= 0.6, record
    card = ws.models.card(distilled.ref)
    assert "token at a masked position is the teacher's" in card


def test_a_student_alone_on_the_same_rows_learns_less(ws, distilled):
    alone = ws.jobs.train(TrainSpec("text", "small", "alone", {**STUDENT, "distill_alpha": None}))
    learnt = distilled.metrics["test"]["perplexity"]
    assert learnt < alone.metrics["test"]["perplexity"] * 0.8, (learnt, alone.metrics["test"])


def test_the_teacher_reads_the_masked_batch_the_student_reads():
    seen = []

    def token_logits(inputs):
        seen.append(inputs["input_ids"].clone())
        return torch.zeros((*inputs["input_ids"].shape, 7))

    nothing = np.zeros((0, 0))
    soft = SoftTargets(
        teacher="t@1",
        teacher_digest="d",
        temperature=2.0,
        alpha=0.5,
        train=nothing,
        transfer_texts=[],
        transfer=nothing,
        test=nothing,
        task="masked-lm",
        token_logits=token_logits,
    )
    distillation = LMDistillation(soft, temperature=2.0, alpha=0.5, positions="masked")
    examples = [{"input_ids": [5, 6, 4]}, {"input_ids": [5, 6]}]
    masked = torch.tensor([[5, 3, 4], [3, 6, 0]])
    labels = torch.tensor([[IGNORE, 6, IGNORE], [5, IGNORE, IGNORE]])
    packed = distillation.targets(
        examples, labels, {"input_ids": masked, "attention_mask": (masked > 0).long()}
    )
    assert torch.equal(seen[0], masked) and packed.shape == (2, 3, 8)
    assert torch.equal(packed[..., -1].long(), labels)
    with pytest.raises(AssertionError, match=r"reads the student.s batch"):
        distillation.targets(examples, labels)


def test_the_loss_is_hintons_at_each_masked_position():
    generator = torch.Generator().manual_seed(0)
    student = torch.randn(2, 4, 5, generator=generator)
    teacher = torch.randn(2, 4, 5, generator=generator)
    labels = torch.tensor([[IGNORE, 1, 2, IGNORE], [3, IGNORE, IGNORE, 4]])
    temperature, alpha = 2.0, 0.3
    packed = torch.cat(
        [F.log_softmax(teacher / temperature, -1), labels.unsqueeze(-1).float()], dim=-1
    )
    sums, counts = lm_distillation_rows(
        student, packed, temperature=temperature, alpha=alpha, shift=False
    )
    expected = []
    for row in range(2):
        total = 0.0
        for t in range(4):  # a masked position predicts its own token
            label = int(labels[row, t])
            if label == IGNORE:
                continue
            p = F.softmax(teacher[row, t] / temperature, -1)
            q = F.log_softmax(student[row, t] / temperature, -1)
            kl = float((p * (p.log() - q)).sum()) * temperature**2
            ce = float(F.cross_entropy(student[row, t : t + 1], torch.tensor([label])))
            total += alpha * kl + (1 - alpha) * ce
        expected.append(total)
    assert sums.tolist() == pytest.approx(expected, rel=1e-5)
    assert counts.tolist() == [2, 2]


def test_a_private_student_counts_each_transfer_text_as_a_row(ws):
    # 'corpus' is not the teacher's dataset, so a DP student may learn from it.
    version = ws.jobs.train(
        TrainSpec(
            "corpus",
            "small",
            "dp-student",
            {**FILLER, "epochs": 1, "max_train_rows": 40, "teacher": "filler", "unlabelled": "raw"},
            privacy={"target_epsilon": 50.0},
        )
    )
    assert 0 < version.privacy["epsilon"] <= 50.0
    # Every training row and every transfer text is one privacy unit: none is merged.
    assert version.privacy["training_examples"] == 40 + 300
    assert version.metrics["distillation"]["student_perplexity"] > 0


def test_layer_matching_and_a_causal_teacher_are_refused(ws):
    with pytest.raises(InvalidArgument, match="masked-lm student learns the teacher's") as err:
        TrainConfig(task="masked-lm", teacher="filler", match_hidden=10).resolved()
    assert err.value.details["field"] == "match_hidden"
    ws.jobs.train(TrainSpec("text", "llama", "writer", {"task": "causal-lm", "epochs": 1}))
    with pytest.raises(InvalidArgument, match="is a causal-lm model but the student is trained"):
        ws.jobs.submit_training(TrainSpec("text", "small", "x", {**STUDENT, "teacher": "writer"}))
