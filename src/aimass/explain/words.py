"""Words and tokens: one segmentation of the original text that every method shares.

Scores are shown on *words* so that the three methods — which see tokens,
attention positions or whole words — can be compared on the same spans. A word
is a run of letters/digits, a single CJK ideograph (BERT-style tokenizers split
those one character at a time) or a single other non-space character
(punctuation). Token scores are mapped to words through the fast tokenizer's
character offsets: a token belongs to the word its span overlaps first.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from aimass.errors import UnsupportedModel
from aimass.explain.base import Network, TokenScore, WordScore

__all__ = [
    "EncodedText",
    "baseline_note",
    "encode_with_offsets",
    "overlapping_words",
    "pad_baseline",
    "split_words",
    "token_scores",
    "token_words",
]

# CJK ideograph blocks, as BERT's basic tokenizer defines them (_is_chinese_char).
_CJK = (
    "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
    "\U00020000-\U0002a6df\U0002a700-\U0002b73f\U0002b740-\U0002b81f"
    "\U0002b820-\U0002ceaf\U0002f800-\U0002fa1f"
)
_WORD = re.compile(rf"[{_CJK}]|[^\W{_CJK}]+|[^\w\s]")


def split_words(text: str) -> list[tuple[int, int]]:
    """Character spans ``(start, end)`` of the words of ``text``, in order."""
    return [m.span() for m in _WORD.finditer(text)]


def overlapping_words(
    spans: Sequence[tuple[int, int]], starts: Sequence[int], start: int, end: int
) -> Iterator[int]:
    """Indexes of the words (``spans``, their ``starts``) that the character span
    ``[start, end)`` overlaps, in order; an empty span counts its first character."""
    end = max(end, start + 1)
    i = max(bisect.bisect_right(starts, start) - 1, 0)
    while i < len(spans) and spans[i][0] < end:
        if spans[i][1] > start:
            yield i
        i += 1


def token_words(text: str, tokens: Sequence[TokenScore]) -> list[WordScore]:
    """Sum token scores into the words of ``text`` (special tokens are skipped).

    Words no token covers (beyond truncation) score 0.
    """
    spans = split_words(text)
    starts = [s for s, _e in spans]
    totals = [0.0] * len(spans)
    for token in tokens:
        if token.special or token.start is None or token.end is None:
            continue
        # The word holding the token's start, or the next one it overlaps.
        first = next(overlapping_words(spans, starts, token.start, token.end), None)
        if first is not None:
            totals[first] += token.score
    return [
        WordScore(word=text[s:e], start=s, end=e, score=float(total))
        for (s, e), total in zip(spans, totals, strict=True)
    ]


@dataclass(frozen=True)
class EncodedText:
    """One text tokenised for a network method, with offsets.

    Attributes:
        batch: ``input_ids``, ``attention_mask`` (and ``token_type_ids``), each (1, T).
        tokens: Token strings.
        offsets: Character span of each token; ``None`` for special tokens.
        special: Whether each token is a special token ([CLS], [SEP], ...).
        truncated: Whether the text had more tokens than ``max_length``.
    """

    batch: dict[str, Any]
    tokens: list[str]
    offsets: list[tuple[int, int] | None]
    special: list[bool]
    truncated: bool


def encode_with_offsets(network: Network, text: str) -> EncodedText:
    """Tokenise ``text`` like serving does (same truncation), keeping offsets."""
    tokenizer = network.tokenizer
    if not getattr(tokenizer, "is_fast", False):
        raise UnsupportedModel(
            "explanations need a fast (Rust) tokenizer to map tokens back to the text; this "
            "model's tokenizer has no offset mapping"
        )
    with network.tokenize_lock:
        out = tokenizer(
            text,
            truncation=True,
            max_length=network.max_length,
            return_offsets_mapping=True,
            return_special_tokens_mask=True,
            return_tensors="pt",
        )
    offsets_raw = out.pop("offset_mapping")[0].tolist()
    special = [bool(s) for s in out.pop("special_tokens_mask")[0].tolist()]
    ids = out["input_ids"][0].tolist()
    batch = {k: v.to(network.device) for k, v in out.items()}
    return EncodedText(
        batch=batch,
        tokens=tokenizer.convert_ids_to_tokens(ids),
        offsets=[
            None if sp else (int(s), int(e))
            for (s, e), sp in zip(offsets_raw, special, strict=True)
        ],
        special=special,
        # The Rust encoding keeps what truncation cut off.
        truncated=bool(out.encodings[0].overflowing),
    )


def pad_baseline(ids: Any, special: Any, pad_id: int | None) -> Any:
    """Integrated gradients' baseline: ``ids`` (B, T) with every non-special token
    replaced by [PAD] (token id 0 when the tokenizer has none; :func:`baseline_note`)."""
    import torch

    return torch.where(special, ids, torch.full_like(ids, pad_id or 0))


def baseline_note(pad_id: int | None) -> str:
    """What :func:`pad_baseline` put in place of the text, for an explanation's details."""
    if pad_id is None:
        return "token id 0 for every non-special token (the tokenizer has no [PAD])"
    return "[PAD] for every non-special token; special tokens kept"


def token_scores(encoded: EncodedText, scores: Sequence[float]) -> list[TokenScore]:
    """Pair each token of ``encoded`` with its score."""
    return [
        TokenScore(
            token=token,
            start=None if span is None else span[0],
            end=None if span is None else span[1],
            score=float(score),
            special=special,
        )
        for token, span, special, score in zip(
            encoded.tokens, encoded.offsets, encoded.special, scores, strict=True
        )
    ]
