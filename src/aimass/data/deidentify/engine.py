"""The de-identification engine: find PII with recognizers, then mask, redact or pseudonymize.

::

    text ──recognizers (by script run)──▶ spans ──resolve overlaps──▶ replace (mode) ──▶ text
                                                    └──────────▶ report (counts, examples)

Modes are registered by name (``mask`` → ``<PERSON>``, ``redact`` → removed,
``pseudonymize`` → ``<PERSON_1f3a9c0b2e>``). Pseudonyms are an HMAC-SHA256 of
the entity type and the normalised value under the project's key: the same
name always maps to the same pseudonym in that project, and without the key
the mapping can neither be reversed nor recomputed.

Each recognizer sees only the script it reads: a ``zh`` recognizer (LAC) the
Han runs of a text, an ``en`` one (Presidio) the stretches between them, a
script-free one (patterns) the whole text; offsets are mapped back
(:func:`script_runs`). A record mixing Chinese and English so gets both.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from aimass.data.deidentify.recognizers import (
    CN_MOBILE_PREFIXES,
    Recognizer,
    Span,
    create_recognizer,
)
from aimass.data.readers import Record
from aimass.errors import FailedPrecondition, InvalidArgument

__all__ = [
    "DEFAULT_RECOGNIZERS",
    "MODES",
    "DeidReport",
    "Deidentifier",
    "deidentify_records",
    "join_tokens",
    "key_fingerprint",
    "script_runs",
]

DEFAULT_RECOGNIZERS = (
    "email",
    "url",
    "ip-address",
    "iban",
    "cn-resident-id",
    "bank-card",
    "cn-mobile",
    "phone",
    "date-of-birth",
    "cn-credit-code",
    "hk-id",
    "tw-id",
    "cn-passport",
    "cn-landline",
    "cn-plate",
    "presidio-en",
    "lac-zh",
)
MAX_EXAMPLES = 5
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
# Chinese punctuation (，。、；：！？）」》…): CJK symbols, full-width and vertical forms.
_CJK_PUNCT = re.compile(
    r"[\u3000-\u303f\ufe10-\ufe1f\ufe30-\ufe4f\uff01-\uff0f\uff1a-\uff20\uff3b-\uff40\uff5b-\uff65]*"
)
_LETTER = re.compile(r"[^\W\d_]")
_DIGIT_ENTITIES = frozenset(
    [
        "PHONE_NUMBER",
        "BANK_CARD",
        "CN_RESIDENT_ID",
        "IBAN_CODE",
        "CN_CREDIT_CODE",
        "HK_ID",
        "TW_ID",
        "PASSPORT",
        "VEHICLE_PLATE",
    ]
)


def script_runs(text: str) -> dict[str, list[tuple[int, int]]]:
    """``(start, end)`` of the Han runs (``zh``) and of the stretches between them that
    hold a letter (``en``).

    A Han run starts on a Han character and holds no other letter: digits, spaces
    and punctuation between Han characters stay in it, a Latin (or any non-Han)
    letter ends it. It ends on its last Han character and the Chinese punctuation
    right after it (``联系人孙为刚，``): without the comma LAC takes a name that
    ends the run for a shorter name and a verb (孙为|刚).
    """
    han: list[tuple[int, int]] = []
    start = last = -1
    for i, ch in enumerate(text):
        if _CJK.match(ch):
            start = i if start < 0 else start
            last = i
        elif start >= 0 and ch.isalpha():
            han.append((start, _punctuation_end(text, last + 1)))
            start = -1
    if start >= 0:
        han.append((start, _punctuation_end(text, last + 1)))
    other, pos = [], 0
    for begin, end in [*han, (len(text), len(text))]:
        if _LETTER.search(text, pos, begin):
            other.append((pos, begin))
        pos = end
    return {"zh": han, "en": other}


def _punctuation_end(text: str, pos: int) -> int:
    """Where the Chinese punctuation starting at ``pos`` ends (``pos`` if there is none)."""
    match = _CJK_PUNCT.match(text, pos)
    return match.end() if match else pos


def _pieces(
    recognizer: Recognizer, text: str, runs: dict[str, list[tuple[int, int]]]
) -> list[tuple[int, int]]:
    """The parts of ``text`` a recognizer reads: all of it, its Han runs or the rest."""
    wanted = set(recognizer.languages or ())
    if not wanted or ("zh" in wanted and len(wanted) > 1):
        return [(0, len(text))]
    return runs["zh"] if "zh" in wanted else runs["en"]


def key_fingerprint(key: bytes) -> str:
    """A public identifier of a key (an HMAC of a constant, not a hash of the key)."""
    return hmac.new(key, b"aimass pii key id", hashlib.sha256).hexdigest()[:16]


def _national_phone(digits: str) -> str:
    # +86 138... and 138... are the same mobile; +1 415... and 415... the same NANP number.
    if len(digits) == 13 and digits.startswith("861"):
        return digits[2:]
    if len(digits) == 11 and digits[0] == "1" and int(digits[:3]) not in CN_MOBILE_PREFIXES:
        return digits[1:]
    return digits


def _normalise(entity: str, value: str) -> str:
    if entity == "PHONE_NUMBER":
        return _national_phone("".join(ch for ch in value if ch.isdigit()))
    if entity in _DIGIT_ENTITIES:
        return "".join(ch for ch in value if ch.isalnum()).upper()
    return " ".join(unicodedata.normalize("NFKC", value).casefold().split())


Operator = Callable[[Span, str, bytes | None], str]


def _mask(span: Span, value: str, key: bytes | None) -> str:
    return f"<{span.entity}>"


def _redact(span: Span, value: str, key: bytes | None) -> str:
    return ""


def _pseudonymize(span: Span, value: str, key: bytes | None) -> str:
    assert key is not None
    message = f"{span.entity}\0{_normalise(span.entity, value)}".encode()
    return f"<{span.entity}_{hmac.new(key, message, hashlib.sha256).hexdigest()[:10]}>"


MODES: dict[str, Operator] = {"mask": _mask, "redact": _redact, "pseudonymize": _pseudonymize}


@dataclass
class DeidReport:
    """What a de-identification run found and did; never holds an original value.

    Attributes:
        mode: ``mask``, ``redact`` or ``pseudonymize``.
        recognizers: Descriptions of the recognizers used.
        texts: Texts scanned.
        texts_changed: Texts that held at least one entity.
        counts: Findings per entity type.
        by_recognizer: Findings per recognizer.
        examples: A few de-identified excerpts (output text only).
        key_id: Fingerprint of the pseudonymization key, if any.
    """

    mode: str
    recognizers: list[dict[str, object]]
    texts: int = 0
    texts_changed: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    by_recognizer: dict[str, int] = field(default_factory=dict)
    examples: list[str] = field(default_factory=list)
    key_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain data (stored in the dataset version's provenance)."""
        return {
            "mode": self.mode,
            "recognizers": self.recognizers,
            "texts": self.texts,
            "texts_changed": self.texts_changed,
            "counts": dict(sorted(self.counts.items())),
            "by_recognizer": dict(sorted(self.by_recognizer.items())),
            "examples": self.examples,
            "key_id": self.key_id,
        }


def resolve_overlaps(spans: Iterable[Span]) -> list[Span]:
    """Keep the best of overlapping findings (score, then length), in text order."""
    kept: list[Span] = []
    for span in sorted(spans, key=lambda s: (-s.score, -len(s), s.start)):
        if all(span.end <= k.start or span.start >= k.end for k in kept):
            kept.append(span)
    return sorted(kept, key=lambda s: s.start)


class Deidentifier:
    """Finds and replaces PII in texts.

    Args:
        recognizers: Recognizer instances or registered names (default: all built-in).
        mode: ``mask``, ``redact`` or ``pseudonymize``.
        key: The project's secret key; required by ``pseudonymize``.
        min_score: Findings below this score are ignored.
    """

    def __init__(
        self,
        recognizers: Sequence[Recognizer | str] | None = None,
        *,
        mode: str = "mask",
        key: bytes | None = None,
        min_score: float = 0.5,
    ) -> None:
        if mode not in MODES:
            raise InvalidArgument(
                f"unknown de-identification mode {mode!r}; modes: {', '.join(MODES)}", mode=mode
            )
        if mode == "pseudonymize" and not key:
            raise FailedPrecondition(
                "pseudonymize needs the project's secret key and none was given; create one with "
                "'aimass pii key create --project NAME' (it stays in AIMASS_HOME/keys, mode 0600)"
            )
        chosen = recognizers if recognizers is not None else DEFAULT_RECOGNIZERS
        self.recognizers = [create_recognizer(r) if isinstance(r, str) else r for r in chosen]
        if not self.recognizers:
            raise InvalidArgument("give at least one PII recognizer")
        self.mode = mode
        self.key = key
        self.min_score = min_score
        self.report = DeidReport(
            mode=mode,
            recognizers=[r.describe() for r in self.recognizers],
            key_id=key_fingerprint(key) if key else None,
        )

    def scan(self, texts: Sequence[str]) -> list[list[Span]]:
        """Resolved findings per text (no replacement, no report)."""
        runs = [script_runs(t) for t in texts]
        found: list[list[Span]] = [[] for _ in texts]
        for recognizer in self.recognizers:
            # (text index, start, end) of every piece of text this recognizer reads
            picked = [
                (i, start, end)
                for i, text in enumerate(texts)
                for start, end in _pieces(recognizer, text, runs[i])
            ]
            if not picked:
                continue
            results = recognizer.find_batch([texts[i][start:end] for i, start, end in picked])
            for (i, offset, _), spans in zip(picked, results, strict=True):
                found[i].extend(
                    replace(s, start=s.start + offset, end=s.end + offset)
                    for s in spans
                    if s.score >= self.min_score
                )
        return [resolve_overlaps(spans) for spans in found]

    def apply(self, texts: Sequence[str]) -> list[str]:
        """De-identified texts, in order; updates :attr:`report`."""
        operator = MODES[self.mode]
        out = []
        for text, spans in zip(texts, self.scan(texts), strict=True):
            out.append(self._replace(text, spans, operator))
        return out

    def apply_tokens(self, rows: Sequence[Sequence[str]]) -> list[list[str]]:
        """De-identified token lists, each as long as it was, so that a tag list stays
        aligned with its tokens; updates :attr:`report`.

        The tokens of a row are read as one text (:func:`join_tokens`); every token a
        finding touches becomes the finding's replacement (``<PERSON>``, or its
        pseudonym: a name's tokens all get the name's). ``redact`` is refused: removing
        tokens would leave their entity's other tags without a start.
        """
        if self.mode == "redact":
            raise InvalidArgument(
                "de-identifying tokens with mode 'redact' is not possible: removing tokens "
                "would break the BIO tags of the entities around them; use 'mask' or "
                "'pseudonymize', which replace each token and keep its tag",
                mode=self.mode,
            )
        operator = MODES[self.mode]
        joined = [join_tokens(tokens) for tokens in rows]
        out = []
        for (text, offsets), spans in zip(joined, self.scan([t for t, _ in joined]), strict=True):
            self._count(spans)
            tokens = [text[start:end] for start, end in offsets]
            for span in spans:
                value = operator(span, text[span.start : span.end], self.key)
                for i, (start, end) in enumerate(offsets):
                    if start < span.end and end > span.start:
                        tokens[i] = value
            if spans and len(self.report.examples) < MAX_EXAMPLES:
                self.report.examples.append(_excerpt(join_tokens(tokens)[0]))
            out.append(tokens)
        return out

    def _count(self, spans: list[Span]) -> None:
        """One text scanned, with ``spans`` found in it, in :attr:`report`."""
        report = self.report
        report.texts += 1
        report.texts_changed += bool(spans)
        for span in spans:
            report.counts[span.entity] = report.counts.get(span.entity, 0) + 1
            name = span.recognizer.split(":")[0]
            report.by_recognizer[name] = report.by_recognizer.get(name, 0) + 1

    def _replace(self, text: str, spans: list[Span], operator: Operator) -> str:
        self._count(spans)
        if not spans:
            return text
        parts, last = [], 0
        for span in spans:
            parts += [
                text[last : span.start],
                operator(span, text[span.start : span.end], self.key),
            ]
            last = span.end
        parts.append(text[last:])
        result = "".join(parts)
        if self.mode == "redact":
            result = re.sub(r"[ \t]{2,}", " ", result)
        if len(self.report.examples) < MAX_EXAMPLES:
            self.report.examples.append(_excerpt(result))
        return result

    def entity_counts(self) -> Counter[str]:
        """Findings per entity type so far."""
        return Counter(self.report.counts)


def join_tokens(tokens: Sequence[str]) -> tuple[str, list[tuple[int, int]]]:
    """The text the recognizers read for a token list, and each token's ``(start, end)``.

    Chinese is written without spaces, so a token list of single characters (People's
    Daily) is joined with nothing, and so are two tokens where either side is Chinese;
    other neighbours get one space (``Call`` ``Ann`` → ``Call Ann``).
    """
    glue_all = all(len(t) == 1 for t in tokens)
    parts: list[str] = []
    offsets: list[tuple[int, int]] = []
    pos = 0
    for i, token in enumerate(tokens):
        if i and not glue_all and not (_chinese(tokens[i - 1][-1]) or _chinese(token[0])):
            parts.append(" ")
            pos += 1
        parts.append(token)
        offsets.append((pos, pos + len(token)))
        pos += len(token)
    return "".join(parts), offsets


def _chinese(ch: str) -> bool:
    """A Han character or Chinese punctuation."""
    return bool(_CJK.match(ch)) or bool(_CJK_PUNCT.fullmatch(ch))


def _excerpt(text: str, width: int = 160) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def deidentify_records(
    records: Iterable[Record],
    engine: Deidentifier,
    *,
    fields: Sequence[str],
    token_fields: Sequence[str] = (),
    chunk: int = 256,
) -> Iterator[Record]:
    """``records`` with the string values of ``fields`` de-identified, and the token lists
    of ``token_fields`` token by token (:meth:`Deidentifier.apply_tokens`: as long as
    before); in chunks, for NER models.

    Values of another type pass through: validation downstream reports them with their
    line. A token field given as one string (a CSV cell) is split on whitespace first, as
    validation would.
    """
    buffer: list[Record] = []

    def tokens_of(value: Any) -> list[str] | None:
        if isinstance(value, str):
            value = value.split()
        if isinstance(value, list) and value and all(isinstance(t, str) and t for t in value):
            return value
        return None

    def flush() -> Iterator[Record]:
        slots = [
            (i, f) for i, r in enumerate(buffer) for f in fields if isinstance(r.fields.get(f), str)
        ]
        cleaned = engine.apply([buffer[i].fields[f] for i, f in slots])
        updated = [dict(r.fields) for r in buffer]
        for (i, f), value in zip(slots, cleaned, strict=True):
            updated[i][f] = value
        lists = [
            (i, f, found)
            for i, r in enumerate(buffer)
            for f in token_fields
            if (found := tokens_of(r.fields.get(f))) is not None
        ]
        if lists:
            replaced = engine.apply_tokens([found for _, _, found in lists])
            for (i, f, _), tokens in zip(lists, replaced, strict=True):
                updated[i][f] = tokens
        yield from (Record(r.line, u) for r, u in zip(buffer, updated, strict=True))
        buffer.clear()

    for record in records:
        buffer.append(record)
        if len(buffer) >= chunk:
            yield from flush()
    if buffer:
        yield from flush()
