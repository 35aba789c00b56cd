"""Distillation of a tagger: the student learns the teacher's tag distribution token by token.

Hinton's loss (:mod:`aimass.training.distill`) applied at every position of a
window instead of once per row. The teacher and the student read text with the
same tokenizer (the job checks it: a student base cut from the teacher's own base
by ``aimass bases shrink`` has it), so both see exactly the same windows and
the teacher's distribution of position ``t`` is the soft target of the student's
position ``t``; no word alignment is needed, and every sub-word learns, as it
does from its label.

The loss of one window is the sum over its positions of::

    alpha * T² * KL(teacher_T || student_T) + (1 - alpha) * CE(student, tag)

on a labelled position (every sub-word of a tagged sentence), and of the soft
term alone, ``T² * KL``, on a position of a transfer text (raw, untagged text:
its positions are labelled ``NO_LABEL``). Special tokens and padding carry no
loss. A window's loss is divided by its number of positions, as the labels'
loss is, so DP-SGD clips one sentence's gradient whatever its length.

The teacher's probabilities are computed once, by the job, before the student
trains (:class:`~aimass.training.distill.SoftTargets` ``windows``), and packed
beside the labels into one (B, T, C + 1) target tensor per batch
(:meth:`TokenDistillation.targets`), so the non-private loop, DP-SGD and
features mode all pass it where they pass the labels.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from aimass.training.distill import (
    NO_LABEL,
    SPEED_ROWS,
    SoftTargets,
    report_settings,
    timed_against_teacher,
)

if TYPE_CHECKING:
    from aimass.training.examples import Example

__all__ = ["SOFT_KEY", "TokenDistillation", "token_distillation_rows"]

# The key of an example that indexes its teacher distribution (``TokenDistillation.said``).
SOFT_KEY = "soft"


def token_distillation_rows(
    logits: torch.Tensor, packed: torch.Tensor, *, temperature: float, alpha: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-window summed loss (B,) and number of positions that carry one (B,).

    ``logits`` are the student's (B, T, C); ``packed`` the targets (B, T, C + 1): the
    teacher's log-probabilities at ``temperature``, then the position's tag index,
    ``NO_LABEL`` on a transfer text, ``IGNORE`` where no loss applies.
    """
    teacher_log, label = packed[..., :-1], packed[..., -1].long()
    student_log = F.log_softmax(logits.float() / temperature, dim=-1)
    soft = (teacher_log.exp() * (teacher_log - student_log)).sum(dim=-1) * temperature**2
    labelled = label >= 0
    counted = labelled | (label == NO_LABEL)
    hard = F.cross_entropy(
        logits.float().reshape(-1, logits.shape[-1]),
        label.clamp_min(0).reshape(-1),
        reduction="none",
    ).reshape(label.shape)
    weight = torch.where(labelled, alpha, 1.0)  # transfer positions: the soft term alone
    per_position = (weight * soft + (1.0 - alpha) * hard * labelled) * counted
    return per_position.sum(dim=1), counted.sum(dim=1)


class TokenDistillation:
    """One run's teacher distributions and the settings of its loss.

    Attributes:
        soft: What the job's teacher gives (``soft.windows``: windows → probabilities).
        temperature: Softmax temperature of both distributions.
        alpha: Weight of the soft term on labelled positions.
        max_length: Tokens per window, as the student reads them.
        said: The teacher's (T, C) log-probabilities at ``temperature`` of every
            training window, indexed by the window's ``SOFT_KEY``.
    """

    def __init__(
        self, soft: SoftTargets, *, temperature: float, alpha: float, max_length: int
    ) -> None:
        self.soft = soft
        self.temperature = temperature
        self.alpha = alpha
        self.max_length = max_length
        self.said: list[torch.Tensor] = []

    def label(self, examples: list[Example]) -> list[Example]:
        """``examples`` (the training windows and the transfer set's) with the teacher's
        distribution of each, computed once; each gains its ``SOFT_KEY``."""
        assert self.soft.windows is not None
        probabilities = self.soft.windows([e["input_ids"] for e in examples])
        labelled = []
        for example, found in zip(examples, probabilities, strict=True):
            said = torch.from_numpy(np.asarray(found, dtype=np.float32))
            # log p / T renormalised is log softmax(z / T) of the teacher's logits z.
            self.said.append(F.log_softmax(said.clamp_min(1e-12).log() / self.temperature, -1))
            labelled.append({**example, SOFT_KEY: [len(self.said) - 1]})
        return labelled

    def targets(
        self,
        examples: Sequence[Example],
        labels: torch.Tensor,
        inputs: dict[str, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """The packed (B, T, C + 1) targets of a batch whose padded labels are ``labels``
        (the teacher labelled each window beforehand: ``inputs`` are not needed)."""
        width = self.said[0].shape[-1]
        teacher = torch.zeros((*labels.shape, width), dtype=torch.float32)
        for row, example in enumerate(examples):
            said = self.said[example[SOFT_KEY][0]]
            teacher[row, : said.shape[0]] = said
        return torch.cat([teacher.to(labels.device), labels.unsqueeze(-1).float()], dim=-1)

    def rows(self, logits: torch.Tensor, packed: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """:func:`token_distillation_rows` at this run's settings."""
        return token_distillation_rows(
            logits, packed, temperature=self.temperature, alpha=self.alpha
        )

    def report(
        self,
        *,
        student_scores: dict[str, Any],
        teacher_scores: dict[str, Any],
        agreement: float | None,
        train_rows: int,
        student: Callable[[list[str]], Any],
        test_texts: Sequence[str],
    ) -> dict[str, Any]:
        """The ``distillation`` block of a tagger's metrics: teacher, settings, the test
        split's entity F1 of both and the share of words tagged alike, and the speed of
        ``student`` (texts → tag probabilities) beside the teacher's."""
        soft = self.soft
        report = report_settings(
            soft, temperature=self.temperature, alpha=self.alpha, train_rows=train_rows
        )
        if student_scores and teacher_scores:
            student_f1, teacher_f1 = float(student_scores["f1"]), float(teacher_scores["f1"])
            report.update(
                test_rows=int(student_scores.get("count", 0)),
                teacher_f1=teacher_f1,
                student_f1=student_f1,
                f1_ratio=student_f1 / teacher_f1 if teacher_f1 else None,
                agreement=agreement,
                per_type={
                    kind: {
                        "teacher_f1": teacher_scores["per_type"][kind]["f1"],
                        "student_f1": scores["f1"],
                    }
                    for kind, scores in student_scores.get("per_type", {}).items()
                    if kind in teacher_scores.get("per_type", {})
                },
            )
        if soft.teacher_scores is not None and test_texts:
            texts = list(test_texts[:SPEED_ROWS])
            report.update(timed_against_teacher(soft.teacher_scores, student, texts))
        return report
