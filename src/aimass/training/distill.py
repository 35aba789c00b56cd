"""Knowledge distillation: a student learns a teacher's soft targets (Hinton et al., 2015).

The jobs layer runs the teacher (``training`` does not import ``serving``): it
labels the training rows and the transfer set once, before the student's loop,
and hands the probabilities over as :class:`SoftTargets` in the task's
:class:`~aimass.training.tasks.TrainInputs`. The task then trains through the
one loop with :func:`distillation_loss` in place of its own; nothing else about
the loop changes, so DP-SGD, checkpoints and both training modes work as they do.

The loss of one row with a label ``y`` is::

    alpha * T² * KL(teacher_T || student_T) + (1 - alpha) * CE(student, y)

and of a transfer row (no label) the soft term alone, ``T² * KL``. ``_T`` is
the softmax at temperature ``T``; ``T²`` keeps the soft term's gradients on
the scale of the hard term's whatever ``T`` is (Hinton et al., section 2).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from aimass.training.private import LossFunction

__all__ = [
    "NO_LABEL",
    "SoftTargets",
    "distillation_loss",
    "distillation_report",
    "pack_targets",
    "student_loss",
]

# The label column of a transfer row, which has only the teacher's soft target.
NO_LABEL = -1


@dataclass(frozen=True)
class SoftTargets:
    """What the teacher said, computed once by the job before the student trains.

    Probabilities are at temperature 1, columns in the student's class order.

    Attributes:
        teacher: ``NAME@VERSION`` of the teacher.
        teacher_digest: Its bundle digest.
        temperature: Softmax temperature of the soft-target term.
        alpha: Weight of the soft-target term on labelled rows.
        train: (N, C) teacher probabilities of the training rows, in their order.
        transfer_texts: Extra rows without labels (the transfer set).
        transfer: (M, C) teacher probabilities of those rows.
        test: (K, C) teacher probabilities of the test split (agreement, accuracy).
        teacher_rows_per_second: The teacher's predictions/s on the test split.
        transfer_set: ``NAME@VERSION`` of the transfer set, if any.
        teacher_privacy: The teacher's own DP record, if it was trained privately.
    """

    teacher: str
    teacher_digest: str
    temperature: float
    alpha: float
    train: np.ndarray
    transfer_texts: list[str]
    transfer: np.ndarray
    test: np.ndarray
    teacher_rows_per_second: float | None = None
    transfer_set: str | None = None
    teacher_privacy: dict[str, Any] | None = None


def pack_targets(soft: SoftTargets, labels: torch.Tensor, *, temperature: float) -> torch.Tensor:
    """Training targets (N + M, C + 1): the teacher's log-probabilities at ``temperature``,
    then the class index of the label (``NO_LABEL`` for the transfer rows).

    One tensor indexed by the batch, as the loop and the DP engine expect of targets.
    """
    probs = torch.from_numpy(np.concatenate([soft.train, soft.transfer])).float()  # (N+M, C)
    # log p / T, renormalised, is log softmax(z / T) for the teacher's logits z.
    teacher_log = F.log_softmax(probs.clamp_min(1e-12).log() / temperature, dim=-1)
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
    if reduction == "none":
        return per_row
    return per_row.sum() if reduction == "sum" else per_row.mean()


def student_loss(task_loss: LossFunction, soft: SoftTargets | None, config: Any) -> LossFunction:
    """``task_loss``, or Hinton's distillation loss when a teacher's ``soft`` targets
    are given (with ``config.temperature`` and ``config.distill_alpha``)."""
    if soft is None:
        return task_loss
    assert config.temperature is not None
    assert config.distill_alpha is not None
    temperature, alpha = float(config.temperature), float(config.distill_alpha)

    def loss(
        outputs: torch.Tensor, targets: torch.Tensor, *, reduction: str = "mean"
    ) -> torch.Tensor:
        return distillation_loss(
            outputs, targets, temperature=temperature, alpha=alpha, reduction=reduction
        )

    return loss


def distillation_report(
    soft: SoftTargets,
    *,
    student_test: torch.Tensor,
    test_labels: torch.Tensor,
    train_rows: int,
    student_rows_per_second: float | None,
) -> dict[str, Any]:
    """The ``distillation`` block of the student's metrics: teacher, settings, and the
    student's accuracy, agreement and speed relative to the teacher on the test split."""
    report: dict[str, Any] = {
        "teacher": soft.teacher,
        "teacher_digest": soft.teacher_digest,
        "temperature": soft.temperature,
        "alpha": soft.alpha,
        "transfer_set": soft.transfer_set,
        "labelled_rows": train_rows,
        "transfer_rows": len(soft.transfer_texts),
    }
    if soft.teacher_privacy:
        report["teacher_privacy"] = {
            k: v for k, v in soft.teacher_privacy.items() if not isinstance(v, dict | list)
        }
    if len(test_labels) and len(soft.test):
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
    teacher_speed = soft.teacher_rows_per_second
    if teacher_speed and student_rows_per_second:
        report.update(
            teacher_rows_per_second=round(teacher_speed, 2),
            student_rows_per_second=round(student_rows_per_second, 2),
            speed_ratio=round(student_rows_per_second / teacher_speed, 3),
        )
    return report


def _accuracy(predicted: torch.Tensor, expected: torch.Tensor | Sequence[int]) -> float:
    expected = torch.as_tensor(expected)
    return float((predicted.cpu() == expected.cpu()).float().mean()) if len(expected) else 0.0
