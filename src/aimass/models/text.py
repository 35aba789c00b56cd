"""Text → tensors: tokenisation, length-bucketed batches and dynamic padding.

Shared by training and serving so both see identical inputs. Batches group
examples of similar length, and each batch is padded only to its own longest
example, which on short texts is several times faster than padding every batch
to ``max_length``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedTokenizerBase

__all__ = [
    "Encoded",
    "bucketed_batches",
    "collate",
    "encode_texts",
    "text_windows",
    "vocabulary_batch",
    "window_probabilities",
    "window_stride",
]

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


def window_probabilities(
    forward: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    windows: Sequence[Sequence[int]],
    pad_id: int,
    batch_size: int,
    *,
    columns: Sequence[int] | None = None,
) -> list[torch.Tensor]:
    """(T, C) probabilities of every window of token ids, in order, from a tagger's
    ``forward(input_ids, attention_mask) -> (B, T, C)`` logits on the CPU.

    Windows are batched by length (longest first), so a batch pads its short
    windows to a length near their own, not to the longest of all. With
    ``columns``, only those classes' probabilities are kept (a language model's
    few tokens out of its vocabulary): (T, len(columns)) each.
    """
    import torch

    out: dict[int, torch.Tensor] = {}
    for chunk in bucketed_batches([len(w) for w in windows], batch_size, shuffle=False):
        width = len(windows[chunk[0]])  # longest first
        ids = torch.full((len(chunk), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for row, index in enumerate(chunk):
            ids[row, : len(windows[index])] = torch.tensor(windows[index])
            mask[row, : len(windows[index])] = 1
        with torch.inference_mode():
            probs = forward(ids, mask).float().softmax(-1)
            if columns is not None:
                probs = probs[..., list(columns)].cpu()
        for row, index in enumerate(chunk):
            out[index] = probs[row, : len(windows[index])]
    return [out[index] for index in range(len(windows))]


def vocabulary_batch(longest: int, vocabulary: int, *, floats: int = 1 << 25) -> int:
    """Sequences per forward pass whose (B, T, vocabulary) probabilities stay under
    ``floats`` values (128 MB of float32 by default), between 1 and 32."""
    return max(1, min(32, floats // max(longest * vocabulary, 1)))


def text_windows(
    tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], max_length: int
) -> list[tuple[int, list[int], list[int | None]]]:
    """``(text index, token ids, word of each position)`` of every window of raw
    ``texts``, read as a tagger is served: ``max_length`` tokens a window, consecutive
    windows of one text sharing :func:`window_stride` tokens (special tokens: word ``None``)."""
    if not texts:
        return []
    out = tokenizer(
        list(texts),
        truncation=True,
        max_length=max_length,
        stride=window_stride(max_length),
        return_overflowing_tokens=True,
    )
    return [
        (int(row), list(out["input_ids"][window]), list(out.word_ids(window)))
        for window, row in enumerate(out["overflow_to_sample_mapping"])
    ]
