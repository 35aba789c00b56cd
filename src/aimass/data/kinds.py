"""Dataset kinds: what one row is, and the rules each row must pass.

=========  ===================================  ==========================================
kind       a row holds                          stored columns
=========  ===================================  ==========================================
``text``   a text and, optionally, a label      ``text``, ``label`` (string/integer/float)
``tokens`` a token list and its BIO tag list    ``text`` (tokens joined by spaces),
                                                ``tokens``, ``tags``
``pairs``  a prompt and its response            ``text`` (prompt/source), ``target``
           (or a source and its target)
=========  ===================================  ==========================================

Each kind checks one row at a time and raises :class:`DatasetValidationError`
naming the line and the field, so the importer can stop at the first bad row
and store nothing. Kinds are registered by name (:func:`register_kind`).

**BIO rule** (``tokens``): every tag is ``O``, ``B-TYPE`` or ``I-TYPE`` (``TYPE``
has no whitespace), and an ``I-TYPE`` tag must directly follow ``B-TYPE`` or
``I-TYPE`` of the same type (strict IOB2, what seqeval calls ``IOB2`` and what
CoNLL-2003 distributions as IOB1 are converted to). There must be exactly one
tag per token.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from typing import TYPE_CHECKING, Any, ClassVar

from aimass.data.readers import Record
from aimass.data.splits import SPLITS
from aimass.errors import DatasetValidationError, InvalidArgument

if TYPE_CHECKING:
    from aimass.data.importer import ImportOptions, PreparedDataset

__all__ = ["KINDS", "RowKind", "bio_problem", "get_kind", "register_kind"]

_TAG = re.compile(r"^(?:O|([BI])-(\S+))$")
# Han ideographs (CJK Unified Ideographs, Extension A, Compatibility) and letters of
# any script: their ratio tells Chinese text from text in other languages.
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_LETTER = re.compile(r"[^\W\d_]")


def bio_problem(tags: list[str]) -> str | None:
    """What is wrong with ``tags`` under the strict BIO rule, or ``None`` when valid."""
    previous: str | None = None  # entity type of the previous tag; None after O
    for position, tag in enumerate(tags, start=1):
        match = _TAG.fullmatch(tag)
        if match is None:
            return f"tag {position} {tag[:40]!r} is not O, B-TYPE or I-TYPE"
        prefix, kind = match.group(1), match.group(2)
        if prefix == "I" and previous != kind:
            after = "the start of the row" if position == 1 else repr(tags[position - 2])
            return (
                f"tag {position} {tag!r} follows {after}: in BIO (IOB2) an I-{kind} tag must "
                f"follow B-{kind} or I-{kind}; start the entity with B-{kind} (convert IOB1 "
                "data to IOB2 first)"
            )
        previous = kind
    return None


class RowKind:
    """Validates the rows of one dataset kind; subclasses set the class attributes.

    Attributes:
        name: The kind's name (``--kind``).
        input_fields: Default source fields of the input, first present wins.
        label_fields: Default source fields of the supervision, first present wins.
        label_optional: Whether rows may come without supervision.
        columns: Stored column names besides ``split`` (extra fields may not clash).
    """

    name: ClassVar[str]
    input_fields: ClassVar[tuple[str, ...]]
    label_fields: ClassVar[tuple[str, ...]]
    label_optional: ClassVar[bool] = False
    columns: ClassVar[tuple[str, ...]]

    def __init__(self, options: ImportOptions) -> None:
        self.o = options
        self.text_field = options.text_field or self.input_fields[0]
        self.label_field: str | None = options.label_field or self.label_fields[0]
        self.labelled: bool | None = None

    # -- fields ---------------------------------------------------------------------

    def start(self, record: Record) -> None:
        """Pick default field names from the first row (``prompt`` or ``source``, ...)."""
        if self.o.text_field is None:
            present = [f for f in self.input_fields if f in record.fields]
            self.text_field = present[0] if present else self.input_fields[0]
        if self.o.label_field is None:
            present = [f for f in self.label_fields if f in record.fields]
            self.label_field = present[0] if present else self.label_fields[0]

    @property
    def consumed(self) -> set[str]:
        """Source fields this kind reads (the rest are kept as extra fields)."""
        named = (self.text_field, self.label_field, self.o.split_field)
        return {f for f in named if f}

    def fail(self, record: Record, field_name: str, message: str) -> DatasetValidationError:
        """An error naming the line and the field."""
        return DatasetValidationError(
            f"{self.o.unit} {record.line}: field {field_name!r} {message}",
            line=record.line,
            field=field_name,
        )

    def missing(self, record: Record, name: str, hint: str) -> DatasetValidationError:
        """The error for an absent field, listing the fields that are present."""
        present = ", ".join(sorted(record.fields)) or "none"
        return self.fail(record, name, f"is missing (fields present: {present}); {hint}")

    def string(self, record: Record, name: str, hint: str) -> str:
        """A required, non-empty string field no longer than ``max_text_chars``."""
        if name not in record.fields:
            raise self.missing(record, name, hint)
        value = record.fields[name]
        if not isinstance(value, str):
            raise self.fail(record, name, f"must be a string, got {_type_name(value)}")
        if not value.strip():
            raise self.fail(record, name, "is empty")
        self.check_length(record, name, value)
        return value

    def check_length(self, record: Record, name: str, value: str) -> None:
        """Refuse texts over ``max_text_chars``."""
        if len(value) > self.o.max_text_chars:
            raise self.fail(
                record,
                name,
                f"has {len(value):,} characters, over the limit of {self.o.max_text_chars:,} "
                "(AIMASS_MAX_TEXT_CHARS)",
            )

    # -- what subclasses define -------------------------------------------------------

    def parse(self, record: Record) -> tuple[str, Any, list[str] | None]:
        """``(text, label or None, tokens or None)`` of a valid row; raises on a bad one."""
        raise NotImplementedError

    @property
    def label_type(self) -> str | None:
        """The stored label type, once every row is seen."""
        raise NotImplementedError

    def finish_labels(self, labels: list[Any]) -> list[Any]:
        """Labels as stored (coerced to one type)."""
        return labels

    def strata(self, labels: list[Any] | None) -> list[Any] | None:
        """Per-row classes for stratified splits, or ``None``."""
        return None

    @classmethod
    def arrow_columns(cls, prepared: PreparedDataset) -> dict[str, Any]:
        """The stored columns (before ``split`` and extra fields)."""
        raise NotImplementedError

    def stats(self, prepared: PreparedDataset) -> dict[str, Any]:
        """Summary statistics recorded with the version."""
        lengths = [len(t) for t in prepared.texts]
        return {
            "text_chars": {"mean": sum(lengths) / len(lengths), "max": max(lengths)},
            "han_share": han_share(prepared.texts),
        }


def han_share(texts: Any) -> float:
    """Han ideographs among all letters of ``texts`` (0.0 with no letters), 4 decimals.

    Recorded with each text dataset: ``aimass train`` without ``--base`` picks the
    Chinese recipe when most letters are Han.
    """
    han = letters = 0
    for text in texts:
        han += len(_HAN.findall(text))
        letters += len(_LETTER.findall(text))
    return round(han / letters, 4) if letters else 0.0


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _article(kind: str) -> str:
    return f"an {kind}" if kind[0] in "aeiou" else f"a {kind}"


def _parse_number(text: str) -> int | float | None:
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


class TextKind(RowKind):
    """A text with an optional class or numeric label (all rows labelled, or none)."""

    name = "text"
    input_fields = ("text",)
    label_fields = ("label",)
    label_optional = True
    columns = ("text", "label")

    def __init__(self, options: ImportOptions) -> None:
        super().__init__(options)
        forced = options.label_type
        self._label_type: str | None = None if forced == "auto" else forced
        self.label_seen_at: int | None = None
        self.first_line = 0

    @property
    def label_type(self) -> str | None:
        return self._label_type if self.labelled else None

    def parse(self, record: Record) -> tuple[str, Any, list[str] | None]:
        text = self.string(record, self.text_field, "name the text field with --text-field")
        label = None
        if self.has_label(record):
            label = self.label(record)
        elif self.label_field and self.label_field in record.fields:
            raise self.fail(
                record,
                self.label_field,
                f"is present but {self.o.unit} {self.first_line} had no label: label every row "
                "or none",
            )
        self.first_line = self.first_line or record.line
        return text, label, None

    def has_label(self, record: Record) -> bool:
        if self.labelled is None:
            present = self.label_field is not None and self.label_field in record.fields
            required = self.o.label_required and self.o.label_field is not None
            self.labelled = present or required
        return self.labelled

    def label(self, record: Record) -> Any:
        name = str(self.label_field)
        if name not in record.fields:
            raise self.fail(record, name, "is missing; every row needs a label")
        value = record.fields[name]
        if value is None or (isinstance(value, str) and not value.strip()):
            raise self.fail(record, name, "is empty; every row needs a label")
        kind = self._kind_of(record, name, value)
        if self._label_type is None:
            self._label_type, self.label_seen_at = kind, record.line
        elif kind != self._label_type:
            if {kind, self._label_type} == {"integer", "float"}:
                self._label_type = "float"
            else:
                raise self.fail(
                    record,
                    name,
                    f"is {_article(kind)} but {self.o.unit} {self.label_seen_at} had "
                    f"{_article(self._label_type)}: mixed label types (force one with "
                    "--label-type string|integer|float)",
                )
        return value

    def _kind_of(self, record: Record, name: str, value: Any) -> str:
        forced = self.o.label_type
        if isinstance(value, bool):
            raise self.fail(record, name, "is a boolean; use class names such as 'yes'/'no'")
        if isinstance(value, float) and not math.isfinite(value):
            raise self.fail(record, name, f"is {value}; labels must be finite numbers")
        if forced == "string":
            return "string"
        if isinstance(value, int):
            return "integer"
        if isinstance(value, float):
            return "float"
        if not isinstance(value, str):
            raise self.fail(record, name, f"must be a string or a number, got {_type_name(value)}")
        parsed = _parse_number(value) if forced in ("auto", "integer", "float") else None
        if parsed is None and forced in ("integer", "float"):
            raise self.fail(
                record, name, f"is {value[:40]!r}, not a number (--label-type {forced})"
            )
        if parsed is None:
            return "string"
        return "integer" if isinstance(parsed, int) else "float"

    def finish_labels(self, labels: list[Any]) -> list[Any]:
        kind = self.label_type
        if kind == "string":
            return [str(v) for v in labels]
        if kind == "integer":
            return [int(v) for v in labels]
        return [float(v) for v in labels]

    def strata(self, labels: list[Any] | None) -> list[Any] | None:
        return labels if self.label_type in ("string", "integer") else None

    @classmethod
    def arrow_columns(cls, prepared: PreparedDataset) -> dict[str, Any]:
        import pyarrow as pa

        columns = {"text": pa.array(prepared.texts, pa.string())}
        if prepared.labels is not None:
            kind = {"string": pa.string(), "integer": pa.int64(), "float": pa.float64()}
            columns["label"] = pa.array(prepared.labels, kind[str(prepared.schema.label_type)])
        return columns

    def stats(self, prepared: PreparedDataset) -> dict[str, Any]:
        stats = super().stats(prepared)
        label_type = self.label_type
        if prepared.labels is None:
            return stats
        if label_type in ("string", "integer"):
            keys = sorted(set(prepared.labels), key=lambda v: (isinstance(v, str), v))
            stats["classes"] = [str(k) for k in keys]
            pairs = Counter(zip(prepared.splits, prepared.labels, strict=True))
            stats["label_counts"] = {
                split: {str(k): pairs.get((split, k), 0) for k in keys} for split in SPLITS
            }
        if label_type in ("integer", "float"):
            values = [float(v) for v in prepared.labels]
            mean = sum(values) / len(values)
            std = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
            stats["label_values"] = {
                "min": min(values),
                "max": max(values),
                "mean": mean,
                "std": std,
            }
        return stats


class TokensKind(RowKind):
    """Pre-tokenised text with one BIO tag per token (named-entity recognition)."""

    name = "tokens"
    input_fields = ("tokens",)
    label_fields = ("tags",)
    columns = ("text", "tokens", "tags")

    @property
    def label_type(self) -> str | None:
        return "tags"

    def _list(self, record: Record, name: str, hint: str) -> list[str]:
        if name not in record.fields:
            raise self.missing(record, name, hint)
        value = record.fields[name]
        if isinstance(value, str):
            value = value.split()  # CSV cells hold space-separated tokens/tags
        if not isinstance(value, list):
            raise self.fail(record, name, f"must be a list of strings, got {_type_name(value)}")
        if not value:
            raise self.fail(record, name, "is an empty list")
        for position, item in enumerate(value, start=1):
            if not isinstance(item, str) or not item or any(c.isspace() for c in item):
                raise self.fail(
                    record,
                    name,
                    f"item {position} is {str(item)[:40]!r}: items must be non-empty strings "
                    "without whitespace",
                )
        return value

    def parse(self, record: Record) -> tuple[str, Any, list[str] | None]:
        hint = "name the fields with --text-field (tokens) and --label-field (tags)"
        tokens = self._list(record, self.text_field, hint)
        tags_field = str(self.label_field)
        tags = self._list(record, tags_field, hint)
        if len(tags) != len(tokens):
            raise self.fail(
                record,
                tags_field,
                f"has {len(tags)} tags for {len(tokens)} tokens: give exactly one tag per token",
            )
        problem = bio_problem(tags)
        if problem is not None:
            raise self.fail(record, tags_field, problem)
        text = " ".join(tokens)
        self.check_length(record, self.text_field, text)
        self.labelled = True
        return text, tags, tokens

    @classmethod
    def arrow_columns(cls, prepared: PreparedDataset) -> dict[str, Any]:
        import pyarrow as pa

        return {
            "text": pa.array(prepared.texts, pa.string()),
            "tokens": pa.array(prepared.tokens, pa.list_(pa.string())),
            "tags": pa.array(prepared.labels, pa.list_(pa.string())),
        }

    def stats(self, prepared: PreparedDataset) -> dict[str, Any]:
        from aimass.metrics import entity_spans

        stats = super().stats(prepared)
        counts = [len(t) for t in prepared.tokens or []]
        stats["tokens"] = {"mean": sum(counts) / len(counts), "max": max(counts)}
        tags = {tag for row in prepared.labels or [] for tag in row}
        types = sorted({t[2:] for t in tags if t != "O"})
        stats["entity_types"] = types
        # The label set a model predicts: O, then B-/I- of every type (even unseen I-).
        stats["classes"] = ["O"] + [f"{p}-{t}" for t in types for p in ("B", "I")]
        per_split: dict[str, Counter[str]] = {s: Counter() for s in SPLITS}
        for split, row in zip(prepared.splits, prepared.labels or [], strict=True):
            per_split[split].update(kind for kind, _start, _end in entity_spans(row))
        stats["entity_counts"] = {s: {t: per_split[s][t] for t in types} for s in SPLITS}
        return stats


class PairsKind(RowKind):
    """A prompt and its response, or a source and its target (generation, seq2seq)."""

    name = "pairs"
    input_fields = ("prompt", "source")
    label_fields = ("response", "target")
    columns = ("text", "target")

    @property
    def label_type(self) -> str | None:
        return "text"

    def parse(self, record: Record) -> tuple[str, Any, list[str] | None]:
        hint = (
            "pairs need prompt/response or source/target fields; name them with --text-field "
            "and --label-field"
        )
        prompt = self.string(record, self.text_field, hint)
        target = self.string(record, str(self.label_field), hint)
        self.labelled = True
        return prompt, target, None

    @classmethod
    def arrow_columns(cls, prepared: PreparedDataset) -> dict[str, Any]:
        import pyarrow as pa

        return {
            "text": pa.array(prepared.texts, pa.string()),
            "target": pa.array(prepared.labels, pa.string()),
        }

    def stats(self, prepared: PreparedDataset) -> dict[str, Any]:
        stats = super().stats(prepared)
        lengths = [len(t) for t in prepared.labels or []]
        stats["target_chars"] = {"mean": sum(lengths) / len(lengths), "max": max(lengths)}
        return stats


_KINDS: dict[str, type[RowKind]] = {}


def register_kind(kind: type[RowKind]) -> type[RowKind]:
    """Register a row kind under ``kind.name`` (class decorator or call)."""
    _KINDS[kind.name] = kind
    return kind


def get_kind(name: str) -> type[RowKind]:
    """The row kind ``name``; the error lists the valid kinds."""
    try:
        return _KINDS[name]
    except KeyError:
        raise InvalidArgument(
            f"unknown dataset kind {name!r}; kinds: {', '.join(sorted(_KINDS))}", kind=name
        ) from None


for _kind in (TextKind, TokensKind, PairsKind):
    register_kind(_kind)

KINDS = tuple(sorted(_KINDS))
