"""Knowledge distillation: a student learns a teacher's soft targets (Hinton et al., 2015).

The jobs layer runs the teacher (``training`` does not import ``serving``): it
labels the training rows and the transfer set once, before the student's loop,
and hands the probabilities over as :class:`SoftTargets` in the task's
:class:`~aimass.training.tasks.TrainInputs`. The task then trains through the
one loop with :func:`distillation_loss` in place of its own; nothing else about
the loop changes, so DP-SGD, checkpoints and both training modes work as they do.

For a classifier, the loss of one row with a label ``y`` is::

    alpha * T² * KL(teacher_T || student_T) + (1 - alpha) * CE(student, y)

and of a transfer row (no label) the soft term alone, ``T² * KL``. ``_T`` is
the softmax at temperature ``T``; ``T²`` keeps the soft term's gradients on
the scale of the hard term's whatever ``T`` is (Hinton et al., section 2).

A regressor's teacher says one value per row, so there is no temperature: the
soft term is the squared distance to the teacher's value, the hard term the
squared distance to the label, both on the student's standardised scale::

    alpha * (student - teacher)² + (1 - alpha) * (student - y)²

With intermediate-layer matching (``match_hidden`` = β; patient knowledge
distillation, Sun et al. 2019) every row's loss gains a term that pulls each
student layer's mean-pooled hidden state towards the teacher layer it maps to,
both L2-normalised (so only directions matter, whatever the layers' scales)::

    β * mean over matched layers of ‖h_s/‖h_s‖ − h_t/‖h_t‖‖²

The teacher's states are computed once with its soft targets; the student's come
from the same forward pass as its outputs (``SequenceModel.forward_with_layers``).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F

from aimass.training.private import LossFunction

__all__ = [
    "NO_LABEL",
    "SPEED_ROUNDS",
    "SPEED_ROWS",
    "PositionDistillation",
    "SoftTargets",
    "distillation_loss",
    "distillation_report",
    "interleaved_seconds",
    "layer_map",
    "layer_matching_loss",
    "pack_targets",
    "regression_distillation_loss",
    "report_settings",
    "student_loss",
    "timed_against_teacher",
]

# The label column of a transfer row, which has only the teacher's soft target.
NO_LABEL = -1


@dataclass(frozen=True)
class SoftTargets:
    """What the teacher said, computed once by the job before the student trains.

    A classifier's probabilities are at temperature 1, columns in the student's class
    order; a regressor's values (one column) are in the labels' units.

    Attributes:
        teacher: ``NAME@VERSION`` of the teacher (``pipeline:NAME@VERSION`` of a pipeline).
        teacher_digest: Its bundle digest (a pipeline's: its pinned spec's).
        temperature: Softmax temperature of the soft-target term (``None`` for regression).
        alpha: Weight of the soft-target term on labelled rows.
        train: (N, C) teacher probabilities (or (N, 1) values) of the training rows.
        transfer_texts: Extra rows without labels (the transfer set).
        transfer: (M, C) teacher probabilities (or values) of those rows.
        test: (K, C) teacher probabilities (or values) of the test split.
        teacher_scores: The teacher again, for timing it beside the student once the
            student has trained: texts → its outputs (loaded when first called).
        transfer_set: ``NAME@VERSION`` of the transfer set, if any.
        teacher_privacy: The teacher's own DP record, if it was trained privately.
        task: ``classification`` or ``regression``.
        layers: Intermediate-layer matching: ``(student layer, teacher layer)`` pairs
            (``hidden_states`` indices); empty when it is off.
        hidden: (N + M, L·H) the teacher's L2-normalised, mean-pooled states of those
            layers for the training rows and the transfer set (``None`` when off).
        hidden_weight: β, the weight of the matching term.
        windows: A tagger's teacher: windows (token ids, the student's tokenizer's) →
            each one's (T, C) tag probabilities, columns in the student's tag order.
            ``train``, ``transfer`` and ``test`` are then empty: the student's task
            labels its own windows (:mod:`aimass.training.token_distill`).
        token_logits: A language model's teacher: what the student reads of a batch
            (ids and masks) → its logits (B, T, V) (a causal LM's for the next token, a
            masked LM's for the token at each position, a seq2seq model's for each
            target token), run beside the student on every batch
            (:mod:`aimass.training.lm_distill`); ``train``, ``transfer`` and ``test``
            are then empty.
        transfer_targets: A seq2seq teacher's transfer set: the targets of
            ``transfer_texts`` (teacher forcing reads them).
        decoded: Sequence-level distillation (a seq2seq model, a causal LM on pairs):
            what the teacher wrote for each training source or prompt, the student's
            targets in place of the references (``transfer_targets`` are then its
            outputs too); ``None`` when off.
        sequence_beams: The beam width those outputs were decoded with (0: off).
        decode_seconds: How long the teacher took to decode them.
    """

    teacher: str
    teacher_digest: str
    temperature: float | None
    alpha: float
    train: np.ndarray
    transfer_texts: list[str]
    transfer: np.ndarray
    test: np.ndarray
    teacher_scores: Callable[[list[str]], Any] | None = None
    transfer_set: str | None = None
    teacher_privacy: dict[str, Any] | None = None
    task: str = "classification"
    layers: tuple[tuple[int, int], ...] = ()
    hidden: np.ndarray | None = None
    hidden_weight: float = 0.0
    windows: Callable[[list[list[int]]], list[Any]] | None = None
    token_logits: Callable[[dict[str, torch.Tensor]], torch.Tensor] | None = None
    transfer_targets: list[str] | None = None
    decoded: list[str] | None = None
    sequence_beams: int = 0
    decode_seconds: float = 0.0


class PositionDistillation(Protocol):
    """A teacher that speaks at every token position (a tagger's, a language model's):
    what :class:`~aimass.training.examples.ExampleTask` packs and scores."""

    def targets(
        self,
        examples: Sequence[Any],
        labels: torch.Tensor,
        inputs: dict[str, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """The packed (B, T, C + 1) targets of a batch whose padded labels are ``labels``;
        ``inputs`` are what the student reads of the batch (its ids and masks: a masked
        LM's ids are masked, a seq2seq batch has the decoder's), where there is one."""
        ...

    def rows(self, logits: torch.Tensor, packed: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-sequence summed loss (B,) and the number of positions that carry one (B,)."""
        ...


def layer_map(student_layers: int, teacher_layers: int) -> tuple[tuple[int, int], ...]:
    """``(student, teacher)`` layer pairs of the uniform mapping: student layer ``i`` of
    ``n`` ↔ teacher layer ``round(i·m/n)`` of ``m`` (1-based, as ``hidden_states`` counts
    them after the embeddings), so a student's last layer meets the teacher's last."""
    return tuple(
        (i, max(1, round(i * teacher_layers / student_layers)))
        for i in range(1, student_layers + 1)
    )


def pack_targets(
    soft: SoftTargets, labels: torch.Tensor, *, scale: tuple[float, float] = (0.0, 1.0)
) -> torch.Tensor:
    """Training targets, one tensor indexed by the batch, as the loop and the DP engine
    expect of targets.

    A classifier's are (N + M, C + 1): the teacher's log-probabilities at the
    temperature, then the class index of the label (``NO_LABEL`` for the transfer rows).
    A regressor's are (N + M, 3): the teacher's value and the label, both standardised
    as the student's targets are (``scale`` is their mean and standard deviation, and
    ``labels`` are standardised already), then 1 for a labelled row, 0 for a transfer row.
    With intermediate-layer matching the teacher's states (L·H columns) follow.
    """
    packed = _pack_outputs(soft, labels, scale=scale)
    if soft.hidden is None:
        return packed
    return torch.cat([packed, torch.from_numpy(soft.hidden).float()], dim=-1)


def _pack_outputs(
    soft: SoftTargets, labels: torch.Tensor, *, scale: tuple[float, float]
) -> torch.Tensor:
    """The packed targets of the outputs' term (see :func:`pack_targets`)."""
    said = torch.from_numpy(np.concatenate([soft.train, soft.transfer])).float()  # (N+M, C)
    if soft.task == "regression":
        labelled = torch.cat([torch.ones(len(soft.train)), torch.zeros(len(soft.transfer))])
        mean, std = scale
        teacher = (said[:, :1] - mean) / std
        hard = torch.cat([labels.cpu().float(), torch.zeros(len(soft.transfer))])
        return torch.cat([teacher, hard.unsqueeze(-1), labelled.unsqueeze(-1)], dim=-1)
    assert soft.temperature is not None
    # log p / T, renormalised, is log softmax(z / T) for the teacher's logits z.
    teacher_log = F.log_softmax(said.clamp_min(1e-12).log() / soft.temperature, dim=-1)
    hard = torch.cat(
        [labels.cpu().float(), torch.full((len(soft.transfer),), float(NO_LABEL))]
    ).unsqueeze(-1)  # (N+M, 1)
    return torch.cat([teacher_log, hard], dim=-1)


def distillation_loss(
    outputs: torch.Tensor,
    targets: torch.Tensor,
    *,
    temperature: float,
    alpha: float,
    reduction: str = "mean",
) -> torch.Tensor:
    """Hinton's loss of student logits (B, C) against packed targets (B, C + 1).

    ``reduction`` is ``mean``, ``sum`` or ``none`` (one value per row, for DP-SGD).
    """
    teacher_log, label = targets[:, :-1], targets[:, -1].long()  # (B, C), (B,)
    student_log = F.log_softmax(outputs / temperature, dim=-1)
    soft = (teacher_log.exp() * (teacher_log - student_log)).sum(dim=-1) * temperature**2
    labelled = label != NO_LABEL
    hard = F.cross_entropy(outputs, label.clamp_min(0), reduction="none") * labelled
    soft_weight = torch.where(labelled, alpha, 1.0)  # transfer rows: the soft term alone
    per_row = soft_weight * soft + (1.0 - alpha) * hard  # (B,)
    return _reduce(per_row, reduction)


def regression_distillation_loss(
    outputs: torch.Tensor, targets: torch.Tensor, *, alpha: float, reduction: str = "mean"
) -> torch.Tensor:
    """The squared-error mix of student values (B, 1) against packed targets (B, 3)."""
    student = outputs[:, 0]
    teacher, label, labelled = targets[:, 0], targets[:, 1], targets[:, 2]
    soft = (student - teacher) ** 2
    hard = (student - label) ** 2 * labelled
    soft_weight = labelled * alpha + (1.0 - labelled)  # transfer rows: the soft term alone
    return _reduce(soft_weight * soft + (1.0 - alpha) * hard, reduction)


def _reduce(per_row: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "none":
        return per_row
    return per_row.sum() if reduction == "sum" else per_row.mean()


def layer_matching_loss(student: torch.Tensor, teacher: torch.Tensor, layers: int) -> torch.Tensor:
    """Per-row (B,) mean over ``layers`` of the squared distance between the student's
    L2-normalised pooled states (B, L·H) and the teacher's, normalised already."""
    batch = student.shape[0]
    normalised = F.normalize(student.reshape(batch, layers, -1).float(), dim=-1)
    return ((normalised - teacher.reshape(batch, layers, -1)) ** 2).sum(dim=-1).mean(dim=-1)


def student_loss(task_loss: LossFunction, soft: SoftTargets | None, config: Any) -> LossFunction:
    """``task_loss``, or the distillation loss when a teacher's ``soft`` targets are
    given (with ``config.temperature`` and ``config.distill_alpha``), plus the
    intermediate-layer term when ``soft`` carries the teacher's states."""
    if soft is None:
        return task_loss
    outputs_loss = _outputs_loss(soft, config)
    if soft.hidden is None:
        return outputs_loss
    layers, weight = len(soft.layers), float(soft.hidden_weight)
    outputs_width = 1 if soft.task == "regression" else soft.train.shape[1]
    packed_width = 3 if soft.task == "regression" else outputs_width + 1

    def with_layers(
        outputs: torch.Tensor, targets: torch.Tensor, *, reduction: str = "mean"
    ) -> torch.Tensor:
        said = outputs_loss(outputs[:, :outputs_width], targets[:, :packed_width], reduction="none")
        matched = layer_matching_loss(outputs[:, outputs_width:], targets[:, packed_width:], layers)
        return _reduce(said + weight * matched, reduction)

    return with_layers


def _outputs_loss(soft: SoftTargets, config: Any) -> LossFunction:
    """Hinton's loss (or the regression mix) on the student's outputs alone."""
    assert config.distill_alpha is not None
    alpha = float(config.distill_alpha)
    if soft.task == "regression":

        def regression(
            outputs: torch.Tensor, targets: torch.Tensor, *, reduction: str = "mean"
        ) -> torch.Tensor:
            return regression_distillation_loss(outputs, targets, alpha=alpha, reduction=reduction)

        return regression
    assert config.temperature is not None
    temperature = float(config.temperature)

    def loss(
        outputs: torch.Tensor, targets: torch.Tensor, *, reduction: str = "mean"
    ) -> torch.Tensor:
        return distillation_loss(
            outputs, targets, temperature=temperature, alpha=alpha, reduction=reduction
        )

    return loss


def report_settings(
    soft: SoftTargets, *, temperature: float | None, alpha: float, train_rows: int
) -> dict[str, Any]:
    """The start of every ``distillation`` block: the teacher, the loss's settings, the
    rows the student learned from, and the teacher's own DP record if it has one."""
    report: dict[str, Any] = {
        "teacher": soft.teacher,
        "teacher_digest": soft.teacher_digest,
        "temperature": temperature,
        "alpha": alpha,
        "transfer_set": soft.transfer_set,
        "labelled_rows": train_rows,
        "transfer_rows": len(soft.transfer_texts),
    }
    if soft.decoded is not None:
        report["sequence_level"] = {
            "beams": soft.sequence_beams,
            "decoded_rows": len(soft.decoded) + len(soft.transfer_texts),
            "decode_seconds": round(soft.decode_seconds, 2),
        }
    if soft.teacher_privacy:
        report["teacher_privacy"] = {
            k: v for k, v in soft.teacher_privacy.items() if not isinstance(v, dict | list)
        }
    return report


def distillation_report(
    soft: SoftTargets,
    *,
    student_test: torch.Tensor,
    test_labels: torch.Tensor,
    train_rows: int,
    student: Callable[[list[str]], Any],
    test_texts: Sequence[str],
) -> dict[str, Any]:
    """The ``distillation`` block of the student's metrics: teacher, settings, and the
    student's quality, agreement and speed relative to the teacher on the test split.

    ``student_test`` and ``test_labels`` are a classifier's logits and class indices,
    or a regressor's predicted and true values in the labels' units: quality is then
    RMSE (``rmse_ratio`` is student ÷ teacher, lower is better) and agreement the
    correlation of the student's values with the teacher's. ``student`` (texts →
    outputs) is timed beside the teacher on up to ``SPEED_ROWS`` of ``test_texts``.
    """
    report = report_settings(
        soft, temperature=soft.temperature, alpha=soft.alpha, train_rows=train_rows
    )
    if soft.hidden is not None:
        report["layer_matching"] = {
            "weight": soft.hidden_weight,
            "layers": [list(pair) for pair in soft.layers],
        }
    if len(test_labels) and len(soft.test) and soft.task == "regression":
        report.update(_regression_quality(soft, student_test, test_labels))
    elif len(test_labels) and len(soft.test):
        teacher_pred = torch.from_numpy(soft.test).argmax(dim=-1)
        student_pred = student_test.argmax(dim=-1)
        teacher_acc = _accuracy(teacher_pred, test_labels)
        student_acc = _accuracy(student_pred, test_labels)
        report.update(
            test_rows=len(test_labels),
            teacher_accuracy=teacher_acc,
            student_accuracy=student_acc,
            accuracy_ratio=student_acc / teacher_acc if teacher_acc else None,
            agreement=_accuracy(student_pred, teacher_pred),
        )
    if soft.teacher_scores is not None and len(test_texts):
        texts = list(test_texts[:SPEED_ROWS])
        report.update(timed_against_teacher(soft.teacher_scores, student, texts))
    return report


SPEED_ROWS = 512  # test rows each model predicts per timing round
SPEED_ROUNDS = 3


def timed_against_teacher(
    teacher: Callable[[Any], Any],
    student: Callable[[Any], Any],
    texts: Sequence[Any],
    *,
    rounds: int = SPEED_ROUNDS,
) -> dict[str, Any]:
    """Predictions/s of teacher and student on the same ``texts``, in interleaved rounds.

    Each round times both once, in an order that alternates, so that a change in the
    machine's load (other work on shared cores) falls on both alike instead of on
    whichever ran during it; timing the teacher while it labelled the data, minutes
    before the student, made the ratio follow the load of those two moments. A
    warm-up call of each comes first. Speeds are medians of the rounds; the ratio is
    the median of the per-round ratios.
    """
    seconds = interleaved_seconds({"teacher": teacher, "student": student}, texts, rounds)
    ratios = [t / s for t, s in zip(seconds["teacher"], seconds["student"], strict=True)]
    return {
        "teacher_rows_per_second": round(len(texts) / statistics.median(seconds["teacher"]), 2),
        "student_rows_per_second": round(len(texts) / statistics.median(seconds["student"]), 2),
        "speed_ratio": round(statistics.median(ratios), 3),
        "speed_rows": len(texts),
        "speed_rounds": rounds,
    }


def interleaved_seconds(
    runners: dict[str, Callable[[Any], Any]], texts: Sequence[Any], rounds: int
) -> dict[str, list[float]]:
    """Seconds each runner takes over ``texts``, once per round, after one warm-up call.

    The order rotates from round to round (with two runners, it alternates), so that a
    change in the machine's load falls on every runner alike.
    """
    names = list(runners)
    for run in runners.values():
        run(texts[:8])
    seconds: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(rounds):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            started = time.perf_counter()
            runners[name](texts)
            seconds[name].append(max(time.perf_counter() - started, 1e-9))
    return seconds


def _regression_quality(
    soft: SoftTargets, student: torch.Tensor, truth: torch.Tensor
) -> dict[str, Any]:
    teacher = np.asarray(soft.test, dtype=np.float64)[:, 0]
    values = student.reshape(-1).double().cpu().numpy()
    true = truth.reshape(-1).double().cpu().numpy()
    teacher_rmse = float(np.sqrt(np.mean((teacher - true) ** 2)))
    student_rmse = float(np.sqrt(np.mean((values - true) ** 2)))
    spread = float(np.std(teacher) * np.std(values))
    correlation = float(np.mean((teacher - teacher.mean()) * (values - values.mean())) / spread)
    return {
        "test_rows": len(true),
        "teacher_rmse": teacher_rmse,
        "student_rmse": student_rmse,
        "rmse_ratio": student_rmse / teacher_rmse if teacher_rmse else None,
        "correlation": correlation if spread > 0 else None,
    }


def _accuracy(predicted: torch.Tensor, expected: torch.Tensor | Sequence[int]) -> float:
    expected = torch.as_tensor(expected)
    return float((predicted.cpu() == expected.cpu()).float().mean()) if len(expected) else 0.0
