"""Text → tensors: tokenisation, length-bucketed batches and dynamic padding.

Shared by training and serving so both see identical inputs. Batches group
examples of similar length, and each batch is padded only to its own longest
example, which on short texts is several times faster than padding every batch
to ``max_length``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedTokenizerBase

__all__ = ["Encoded", "bucketed_batches", "collate", "encode_texts", "window_stride"]

WINDOW_STRIDE = 32  # tokens shared by consecutive windows of a text longer than max_length


def window_stride(max_length: int) -> int:
    """Tokens that consecutive ``max_length`` windows of one long text share.

    Token classification reads a long text in overlapping windows, in training,
    evaluation and serving alike, so every word is tagged with some context on
    both sides and the scores measure what the served model does.
    """
    return min(WINDOW_STRIDE, max_length // 4)


@dataclass(frozen=True)
class Encoded:
    """Token ids per example (special tokens included, truncated), unpadded."""

    input_ids: list[list[int]]
    token_type_ids: list[list[int]] | None
    pad_id: int

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def lengths(self) -> list[int]:
        """Token count of each example."""
        return [len(ids) for ids in self.input_ids]


def encode_texts(
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    *,
    max_length: int,
    chunk: int = 2048,
) -> Encoded:
    """Tokenise ``texts`` (in chunks, with the fast tokenizer's batch path)."""
    ids: list[list[int]] = []
    types: list[list[int]] = []
    has_types = True
    for start in range(0, len(texts), chunk):
        out = tokenizer(
            list(texts[start : start + chunk]),
            truncation=True,
            max_length=max_length,
            padding=False,
            return_attention_mask=False,
        )
        ids.extend(out["input_ids"])
        if "token_type_ids" in out:
            types.extend(out["token_type_ids"])
        else:
            has_types = False
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    return Encoded(input_ids=ids, token_type_ids=types if has_types else None, pad_id=pad_id)


def bucketed_batches(
    lengths: Sequence[int],
    batch_size: int,
    *,
    shuffle: bool,
    seed: int = 0,
    window: int = 50,
) -> list[list[int]]:
    """Index batches whose members have similar lengths.

    With ``shuffle``, examples are permuted (from ``seed``), cut into windows of
    ``window × batch_size``, sorted by length inside each window, batched, and
    the batch order permuted again: random batches of near-equal lengths (what
    Hugging Face calls ``group_by_length``). Without it, everything is sorted
    longest first (inference: the first batch shows the peak memory).
    """
    n = len(lengths)
    if not shuffle:
        order = sorted(range(n), key=lambda i: -lengths[i])
        return [order[i : i + batch_size] for i in range(0, n, batch_size)]
    rng = np.random.Generator(np.random.PCG64(seed))
    perm = rng.permutation(n).tolist()
    size = window * batch_size
    batches: list[list[int]] = []
    for start in range(0, n, size):
        block = sorted(perm[start : start + size], key=lambda i: -lengths[i])
        batches.extend(block[i : i + batch_size] for i in range(0, len(block), batch_size))
    return [batches[i] for i in rng.permutation(len(batches)).tolist()]


def collate(
    encoded: Encoded, indices: Sequence[int], device: torch.device | str
) -> dict[str, torch.Tensor]:
    """Pad the examples at ``indices`` to their longest; tensors of shape (B, T)."""
    import torch

    width = max(len(encoded.input_ids[i]) for i in indices)
    batch = len(indices)
    input_ids = torch.full((batch, width), encoded.pad_id, dtype=torch.long)
    attention = torch.zeros((batch, width), dtype=torch.long)
    types = torch.zeros((batch, width), dtype=torch.long)
    for row, i in enumerate(indices):
        ids = encoded.input_ids[i]
        input_ids[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        attention[row, : len(ids)] = 1
        if encoded.token_type_ids is not None:
            types[row, : len(ids)] = torch.tensor(encoded.token_type_ids[i], dtype=torch.long)
    out = {"input_ids": input_ids, "attention_mask": attention}
    if encoded.token_type_ids is not None:
        out["token_type_ids"] = types
    return {k: v.to(device) for k, v in out.items()}
