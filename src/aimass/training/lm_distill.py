"""Distillation of a language model: the student learns the teacher's word at each position.

Hinton's loss (:mod:`aimass.training.distill`) at every position that predicts a
token: the teacher's distribution over the whole vocabulary is the soft target of
the student's, beside the token the text really has::

    alpha * T² * KL(teacher_T || student_T) + (1 - alpha) * CE(student, token)

For a causal LM the token is the next one, at every position whose next token
carries a label (every token of a text, a pair's response). For a masked LM it is
the hidden token at each masked position (DistilBERT's recipe, Sanh et al. 2019,
without its hidden-state term): both models read the same masked batch, so the
teacher says what it would fill in where the student must. The sum is divided by
the positions, as the labels' loss is.

A tagger's teacher is run once before its student trains and its few tags per
position are kept; a vocabulary of tens of thousands of words per position
cannot be kept for a whole corpus (49,152 floats per token for SmolLM2: 25 GB for
a million tokens). The teacher therefore runs beside the student, one forward
pass per batch (:meth:`LMDistillation.targets`), and its log-probabilities are
packed beside the labels into one (B, T, V + 1) target tensor, so the plain loop
and DP-SGD pass it where they pass the labels. Both read text with the same
tokenizer (the job checks it: a base cut from the teacher's own by
``aimass bases shrink`` has it).

A transfer set (``--unlabelled``, a ``text`` dataset) is more text to learn from:
a text is its own label for a language model, so its positions take both terms.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from aimass.training.distill import (
    SPEED_ROWS,
    SoftTargets,
    report_settings,
    timed_against_teacher,
)
from aimass.training.examples import IGNORE, padding_id, perplexity

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from aimass.training.examples import Example, ExampleTask
    from aimass.training.tasks import TrainInputs

__all__ = ["LMDistillation", "lm_distillation_rows", "padded_ids"]

_BATCH = 16  # sequences per forward pass when the report times both models


def lm_distillation_rows(
    logits: torch.Tensor,
    packed: torch.Tensor,
    *,
    temperature: float,
    alpha: float,
    shift: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sequence summed loss (B,) and the number of positions that carry one (B,).

    ``logits`` are the student's (B, T, V); ``packed`` the targets (B, T, V + 1): the
    teacher's log-probabilities at ``temperature`` at each position, then the
    position's token label (``IGNORE`` where none). With ``shift`` (a causal LM)
    position ``t`` predicts the label of ``t + 1``, for the teacher as for the
    student; without (a masked LM) its own label.
    """
    cut = 1 if shift else 0
    teacher_log = packed[:, : packed.shape[1] - cut, :-1]
    label = packed[:, cut:, -1].long()
    logits = logits[:, : logits.shape[1] - cut].float()
    labelled = label != IGNORE
    student_log = F.log_softmax(logits / temperature, dim=-1)
    soft = (teacher_log.exp() * (teacher_log - student_log)).sum(dim=-1) * temperature**2
    hard = F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), label.clamp_min(0).reshape(-1), reduction="none"
    ).reshape(label.shape)
    per_position = (alpha * soft + (1.0 - alpha) * hard) * labelled
    return per_position.sum(dim=1), labelled.sum(dim=1)


def padded_ids(
    examples: Sequence[Example], width: int, pad_id: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The examples' token ids right-padded to ``width`` (B, width), and their mask."""
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for row, example in enumerate(examples):
        tokens = example["input_ids"][:width]
        ids[row, : len(tokens)] = torch.tensor(tokens, dtype=torch.long)
        mask[row, : len(tokens)] = 1
    return ids, mask


class LMDistillation:
    """One run's teacher and the settings of its loss.

    Attributes:
        soft: What the job hands over (``soft.token_logits``: ids, mask → the
            teacher's logits (B, T, V)).
        temperature: Softmax temperature of both distributions.
        alpha: Weight of the soft term.
        pad_id: The id that pads a batch (the mask hides it from the teacher).
        masked: A masked LM (each position predicts its own token), else a causal one
            (each position predicts the next).
    """

    def __init__(
        self,
        soft: SoftTargets,
        *,
        temperature: float,
        alpha: float,
        pad_id: int,
        masked: bool = False,
    ):
        self.soft = soft
        self.temperature = temperature
        self.alpha = alpha
        self.pad_id = pad_id
        self.masked = masked

    @classmethod
    def of(
        cls, inputs: TrainInputs, tokenizer: PreTrainedTokenizerBase, *, masked: bool
    ) -> LMDistillation:
        """The run's distillation from what the job handed over (``inputs.distillation``)."""
        soft = inputs.distillation
        assert soft is not None
        assert soft.temperature is not None
        return cls(
            soft,
            temperature=soft.temperature,
            alpha=soft.alpha,
            pad_id=padding_id(tokenizer),
            masked=masked,
        )

    def teacher_logits(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The teacher's logits (B, T, V) of a batch, on the batch's device."""
        assert self.soft.token_logits is not None
        return self.soft.token_logits(ids, mask).to(ids.device)

    def targets(
        self,
        examples: Sequence[Example],
        labels: torch.Tensor,
        inputs: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """The packed (B, T, V + 1) targets of a batch whose padded labels are ``labels``;
        the teacher reads ``inputs`` (the student's ids and mask: a masked LM's carry
        this batch's masks), or the examples' own ids where a caller has no batch."""
        if inputs is None:
            # Only a causal LM's batch is its examples' ids as they are.
            assert not self.masked, "a masked LM's teacher must read the masked batch"
            inputs = padded_ids(examples, labels.shape[1], self.pad_id)
        ids, mask = (t.to(labels.device) for t in inputs)
        said = self.teacher_logits(ids, mask)
        teacher_log = F.log_softmax(said.float() / self.temperature, dim=-1)
        # Token ids (below 2**24 in every vocabulary there is) are exact as float32.
        return torch.cat([teacher_log, labels.unsqueeze(-1).float()], dim=-1)

    def rows(self, logits: torch.Tensor, packed: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """:func:`lm_distillation_rows` at this run's settings."""
        return lm_distillation_rows(
            logits,
            packed,
            temperature=self.temperature,
            alpha=self.alpha,
            shift=not self.masked,
        )

    def report_for(
        self,
        task: ExampleTask,
        student: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        test: list[Example],
        inputs: TrainInputs,
    ) -> dict[str, Any]:
        """:meth:`report` on the ``test`` examples batched and masked as ``task``'s test
        evaluation read them."""
        held_out = task.eval_batches(
            test, tokenizer, seed=task.held_out_seed(inputs), device=inputs.device
        )
        return self.report(
            student=student,
            tokenizer=tokenizer,
            test=test,
            batches=(batch for *_, batch in held_out),
            device=inputs.device,
            train_rows=len(inputs.train),
        )

    @torch.inference_mode()
    def report(
        self,
        *,
        student: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        test: list[Example],
        batches: Iterable[dict[str, torch.Tensor]],
        device: Any,
        train_rows: int,
    ) -> dict[str, Any]:
        """The ``distillation`` block of a language model's metrics: teacher, settings,
        both models' perplexity on the test split, how often their most likely token
        agrees (the next one; a masked LM's at each masked position), and their speed
        (forward passes over the same texts, interleaved).

        ``batches`` are the ``test`` examples as the student's task scores them (its
        test evaluation's batches and masks), so the student's perplexity here is its
        test perplexity."""
        soft = self.soft
        report = report_settings(
            soft, temperature=self.temperature, alpha=self.alpha, train_rows=train_rows
        )
        if not test:
            return report
        was_training = student.training
        student.eval()
        losses = {"teacher": 0.0, "student": 0.0}
        agreed = tokens = 0
        cut = 0 if self.masked else 1  # a causal position predicts the next label
        for batch in batches:
            ids, mask = batch["input_ids"], batch["attention_mask"]
            labels = batch["labels"][:, cut:]
            width = ids.shape[1] - cut
            said = {
                "teacher": self.teacher_logits(ids, mask)[:, :width].float(),
                "student": student(input_ids=ids, attention_mask=mask).logits[:, :width].float(),
            }
            labelled = labels != IGNORE
            for name, logits in said.items():
                losses[name] += float(
                    F.cross_entropy(logits[labelled], labels[labelled], reduction="sum")
                )
            picks = [logits.argmax(-1)[labelled] for logits in said.values()]
            agreed += int((picks[0] == picks[1]).sum())
            tokens += int(labelled.sum())
        student.train(was_training)
        teacher_ppl, student_ppl = (perplexity(losses[n] / max(tokens, 1)) for n in losses)
        report.update(
            positions="masked" if self.masked else "next",
            test_tokens=tokens,
            teacher_perplexity=teacher_ppl,
            student_perplexity=student_ppl,
            perplexity_ratio=student_ppl / teacher_ppl,
            agreement=agreed / max(tokens, 1),
        )
        decoded = (str(tokenizer.decode(e["input_ids"], skip_special_tokens=True)) for e in test)
        texts = [text for text in decoded if text.strip()][:SPEED_ROWS]
        if texts:
            report.update(
                timed_against_teacher(
                    self._forward(tokenizer, device, self.teacher_logits),
                    self._forward(
                        tokenizer,
                        device,
                        lambda i, m: student(input_ids=i, attention_mask=m).logits,
                    ),
                    texts,
                )
            )
        return report

    def _forward(
        self,
        tokenizer: PreTrainedTokenizerBase,
        device: Any,
        run: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    ) -> Callable[[list[str]], None]:
        """Texts → one forward pass per batch of ``run`` (what timing one model reads)."""

        def forward(texts: list[str]) -> None:
            with torch.inference_mode():
                for start in range(0, len(texts), _BATCH):
                    found = tokenizer(texts[start : start + _BATCH])["input_ids"]
                    chunk = [{"input_ids": ids} for ids in found]
                    ids, mask = padded_ids(chunk, max(len(i) for i in found), self.pad_id)
                    run(ids.to(device), mask.to(device))

        return forward
