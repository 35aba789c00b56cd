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

Sequence-level distillation (``sequence_beams``; Kim and Rush 2016) of a seq2seq
model or of a causal LM on prompt/response pairs: the job has the teacher write an
output for every source or prompt first (:attr:`SoftTargets.decoded`), and those
outputs replace the references as the targets; a transfer set is then sources or
prompts alone, the teacher writing theirs too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from aimass.data.tables import SplitData
from aimass.training.distill import (
    SPEED_ROWS,
    SoftTargets,
    report_settings,
    timed_against_teacher,
)
from aimass.training.distill_options import LM_POSITIONS
from aimass.training.examples import IGNORE, ExampleTask, model_inputs, perplexity

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from aimass.training.examples import Example, Tracker
    from aimass.training.tasks import TrainInputs

__all__ = ["LMDistillation", "WordByWordTask", "lm_distillation_rows"]


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


class LMDistillation:
    """One run's teacher and the settings of its loss.

    Attributes:
        soft: What the job hands over (``soft.token_logits``: what the student reads
            of a batch → the teacher's logits (B, T, V)).
        temperature: Softmax temperature of both distributions.
        alpha: Weight of the soft term.
        positions: What a position predicts (``LM_POSITIONS``): ``next`` shifts the
            labels by one, ``masked`` and ``target`` do not.
    """

    def __init__(
        self,
        soft: SoftTargets,
        *,
        temperature: float,
        alpha: float,
        positions: str = "next",
    ):
        self.soft = soft
        self.temperature = temperature
        self.alpha = alpha
        self.positions = positions

    @classmethod
    def of(cls, task: ExampleTask, inputs: TrainInputs) -> LMDistillation:
        """The run of ``task`` distilling from what the job handed over
        (``inputs.distillation``)."""
        soft = inputs.distillation
        assert soft is not None
        assert soft.temperature is not None
        return cls(
            soft,
            temperature=soft.temperature,
            alpha=soft.alpha,
            positions=LM_POSITIONS[task.name],
        )

    @property
    def shift(self) -> bool:
        """Whether position ``t`` predicts the label of ``t + 1`` (a causal LM)."""
        return self.positions == "next"

    def teacher_logits(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """The teacher's logits (B, T, V) of what the student reads of a batch, on its
        device."""
        assert self.soft.token_logits is not None
        return self.soft.token_logits(inputs).to(inputs["input_ids"].device)

    def targets(
        self,
        examples: Sequence[Example],
        labels: torch.Tensor,
        inputs: dict[str, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """The packed (B, T, V + 1) targets of a batch whose padded labels are ``labels``;
        the teacher reads ``inputs``, what the student reads (a masked LM's ids carry
        this batch's masks, a seq2seq batch the decoder's ids)."""
        assert inputs is not None, "a language model's teacher reads the student's batch"
        said = self.teacher_logits({k: v.to(labels.device) for k, v in inputs.items()})
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
            shift=self.shift,
        )

    @torch.inference_mode()
    def report(
        self,
        task: ExampleTask,
        student: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        test: list[Example],
        inputs: TrainInputs,
    ) -> dict[str, Any]:
        """The ``distillation`` block of a language model's metrics: teacher, settings,
        both models' perplexity on the test split, how often their most likely token
        agrees (the next one; a masked LM's at each masked position; a seq2seq
        model's at each target position), and their speed (forward passes over the
        same test examples, interleaved).

        Both models read the ``test`` examples as ``task``'s test evaluation did (its
        batches and masks), so the student's perplexity here is its test perplexity.
        """
        report = report_settings(
            self.soft, temperature=self.temperature, alpha=self.alpha, train_rows=len(inputs.train)
        )
        if not test:
            return report
        was_training = student.training
        student.eval()
        losses = {"teacher": 0.0, "student": 0.0}
        agreed = tokens = 0
        cut = 1 if self.shift else 0
        held_out = task.eval_batches(
            test, tokenizer, seed=task.held_out_seed(inputs), device=inputs.device
        )
        for *_, batch in held_out:
            reads = model_inputs(batch)
            labels = batch["labels"][:, cut:]
            width = labels.shape[1]
            said = {
                "teacher": self.teacher_logits(reads)[:, :width].float(),
                "student": student(**reads).logits[:, :width].float(),
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
            positions=self.positions,
            test_tokens=tokens,
            teacher_perplexity=teacher_ppl,
            student_perplexity=student_ppl,
            perplexity_ratio=student_ppl / teacher_ppl,
            agreement=agreed / max(tokens, 1),
        )

        def forward(
            run: Callable[[dict[str, torch.Tensor]], Any],
        ) -> Callable[[list[Example]], None]:
            def over(examples: list[Example]) -> None:
                with torch.inference_mode():
                    for *_, batch in task.eval_batches(
                        examples, tokenizer, seed=0, device=inputs.device
                    ):
                        run(model_inputs(batch))

            return over

        timed = timed_against_teacher(
            forward(self.teacher_logits),
            forward(lambda reads: student(**reads).logits),
            test[:SPEED_ROWS],
        )
        return {**report, **timed}


class WordByWordTask(ExampleTask):
    """A language-model task that distils word by word (causal, masked, seq2seq): the
    teacher runs beside the student on every batch (:class:`LMDistillation`); each task
    says how it reads a transfer set (:meth:`transfer_examples`)."""

    supports_distillation = True

    def __init__(self) -> None:
        self.distillation: LMDistillation | None = None

    def transfer_examples(
        self,
        soft: SoftTargets,
        tokenizer: PreTrainedTokenizerBase,
        max_length: int,
        first_row: int,
    ) -> list[Example]:
        """The transfer set's examples (``soft.transfer_texts``), encoded as the task
        encodes its training rows; an example that names its dataset row counts from
        ``first_row`` (after the training rows: DP counts rows).

        Here: a set of pairs, sources or prompts with ``soft.transfer_targets`` (a
        seq2seq set's own, or what the teacher wrote for them); a task whose transfer
        set is plain text reads it itself."""
        pairs = SplitData(
            texts=soft.transfer_texts, labels=None, extras={}, targets=soft.transfer_targets
        )
        return self.encode(pairs, tokenizer, max_length)

    def distil(
        self,
        inputs: TrainInputs,
        train: list[Example],
        tokenizer: PreTrainedTokenizerBase,
        max_length: int,
    ) -> list[Example]:
        self.distillation = LMDistillation.of(self, inputs)
        soft = self.distillation.soft
        if soft.decoded is not None:  # sequence-level: what the teacher wrote is the target
            train = self.encode(replace(inputs.train, targets=soft.decoded), tokenizer, max_length)
        if not soft.transfer_texts:
            return train
        return train + self.transfer_examples(soft, tokenizer, max_length, len(inputs.train))

    def distilled(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        test: list[Example],
        tested: Tracker,
        inputs: TrainInputs,
    ) -> dict[str, Any]:
        assert self.distillation is not None
        return self.distillation.report(self, model, tokenizer, test, inputs)
