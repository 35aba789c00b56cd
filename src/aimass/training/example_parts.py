"""The parts of the token-level recipe (:mod:`aimass.training.examples`) that need no
task: what an example is, the validation trackers, and small helpers on batches,
losses, tokenizers and state dicts. :mod:`aimass.training.examples` re-exports them.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

__all__ = [
    "IGNORE",
    "Example",
    "LabelAccuracy",
    "Tracker",
    "dedupe_tied",
    "model_inputs",
    "padding_id",
    "perplexity",
    "scratch_base",
]

Example = dict[str, list[int]]
IGNORE = -100  # label of positions that carry no loss (padding, prompts, specials)


def scratch_base(provenance: dict[str, Any]) -> bool:
    """Whether a base was randomly initialised (``aimass bases scratch``)."""
    return provenance.get("source") == "scratch"


def dedupe_tied(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop later keys that share storage with an earlier one (tied embeddings), as HF saves."""
    seen: set[tuple[int, tuple[int, ...]]] = set()
    kept = {}
    for name, tensor in state.items():
        key = (tensor.untyped_storage().data_ptr(), tuple(tensor.shape))
        if key in seen:
            continue
        seen.add(key)
        kept[name] = tensor
    return kept


class Tracker:
    """Accumulates a task's own validation numbers over batches (default: nothing)."""

    def update(self, examples: list[Example], batch: dict[str, torch.Tensor], logits: Any) -> None:
        """See one evaluated batch: its examples, tensors and logits (B, T, V)."""

    def result(self) -> dict[str, Any]:
        """The numbers, once every batch is seen."""
        return {}


class LabelAccuracy(Tracker):
    """Share of labelled positions whose most likely token is the label (reported as ``name``)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.correct = 0
        self.total = 0

    def update(self, examples: list[Example], batch: dict[str, torch.Tensor], logits: Any) -> None:
        labelled = batch["labels"] != IGNORE
        self.correct += int((logits.argmax(-1)[labelled] == batch["labels"][labelled]).sum())
        self.total += int(labelled.sum())

    def result(self) -> dict[str, Any]:
        return {self.name: self.correct / max(self.total, 1)}


def perplexity(loss: float) -> float:
    """``exp(loss)`` of a mean per-token loss (capped so a diverged model gives a finite number)."""
    return math.exp(min(loss, 50.0))


def model_inputs(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """What a model reads of a batch: every key but the labels (ids and masks; a
    masked LM's ids carry the batch's masks, a seq2seq batch's the decoder's too)."""
    return {k: v for k, v in batch.items() if k != "labels"}


def padding_id(tokenizer: PreTrainedTokenizerBase) -> int:
    """The id a batch is padded with: the pad token, else end-of-sequence (masked out)."""
    for candidate in (tokenizer.pad_token_id, tokenizer.eos_token_id, 0):
        if candidate is not None:
            return int(candidate)
    return 0
