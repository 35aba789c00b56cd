"""Validate every row of a dataset and turn it into one immutable Parquet table.

The rules (each has a test in ``tests/data/test_importer.py``):

* the text field must be a non-empty string no longer than ``max_text_chars``;
* when labelled, every row has a label of one type: ``string`` classes,
  ``integer`` classes/values or ``float`` values (integers and floats mix into
  ``float``; booleans, NaN and infinities are refused);
* a split field, when named, holds ``train``, ``validation`` or ``test``;
  otherwise splits are made from a seed, stratified by class;
* other fields are kept as nullable strings (objects and lists as JSON);
* the first bad row stops the import: nothing is stored, and the error names
  the line and the field.

The table's content digest (SHA-256 over the schema and every row, in order)
makes versions content-addressed: identical input gives the identical version.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aimass.data.readers import Record
from aimass.data.splits import SPLITS, assign_splits, validate_fractions
from aimass.entities import DatasetSchema
from aimass.errors import DatasetValidationError, InvalidArgument

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["LABEL_TYPES", "ImportOptions", "PreparedDataset", "prepare_dataset"]

LABEL_TYPES = ("auto", "string", "integer", "float")
RESERVED = ("text", "label", "split")


@dataclass(frozen=True)
class ImportOptions:
    """How to read the fields of a dataset.

    Attributes:
        text_field: Field holding the input text.
        label_field: Field holding the label; ``None`` for unlabelled data.
        label_required: When False, a ``label_field`` absent from the first row
            means the dataset is unlabelled (the default ``label`` is optional).
        label_type: ``auto`` infers; ``string``/``integer``/``float`` force it
            (CSV cells are text, so ``auto`` parses numbers).
        split_field: Field holding ``train``/``validation``/``test``, if any.
        seed: Seed for made splits.
        fractions: Train/validation/test fractions for made splits.
        max_text_chars: Longest accepted text.
        unit: ``line`` or ``row`` (Parquet), for messages.
    """

    text_field: str = "text"
    label_field: str | None = "label"
    label_required: bool = False
    label_type: str = "auto"
    split_field: str | None = None
    seed: int = 0
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
    max_text_chars: int = 100_000
    unit: str = "line"

    def __post_init__(self) -> None:
        if self.label_type not in LABEL_TYPES:
            raise InvalidArgument(
                f"label type {self.label_type!r} is not one of {', '.join(LABEL_TYPES)}"
            )
        validate_fractions(self.fractions)
        named = [f for f in (self.text_field, self.label_field, self.split_field) if f]
        if len(set(named)) != len(named):
            raise InvalidArgument(f"text, label and split fields must differ, got {named}")


@dataclass
class PreparedDataset:
    """A validated dataset, ready to be written as Parquet."""

    schema: DatasetSchema
    texts: list[str]
    labels: list[Any] | None
    splits: list[str]
    extras: dict[str, list[str | None]]
    digest: str = ""
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def num_rows(self) -> int:
        """Number of rows."""
        return len(self.texts)

    def split_counts(self) -> dict[str, int]:
        """Rows per split (all three keys present)."""
        counts = Counter(self.splits)
        return {s: counts.get(s, 0) for s in SPLITS}

    def to_arrow(self) -> pa.Table:
        """The Parquet table: ``text``, ``label``?, ``split``, then extra fields."""
        import pyarrow as pa

        columns: dict[str, pa.Array] = {"text": pa.array(self.texts, pa.string())}
        if self.labels is not None:
            kind = {"string": pa.string(), "integer": pa.int64(), "float": pa.float64()}
            columns["label"] = pa.array(self.labels, kind[str(self.schema.label_type)])
        columns["split"] = pa.array(self.splits, pa.string())
        for name in self.schema.extra_fields:
            columns[name] = pa.array(self.extras[name], pa.string())
        meta = {"aimass.schema": json.dumps(self.schema.__dict__, default=list)}
        return pa.table(columns).replace_schema_metadata(meta)


class _Validator:
    """Row-by-row checks, remembering what the first rows established."""

    def __init__(self, options: ImportOptions) -> None:
        self.o = options
        self.label_type: str | None = None if options.label_type == "auto" else options.label_type
        self.label_seen_at: int | None = None
        self.labelled: bool | None = None

    def fail(self, record: Record, field_name: str, message: str) -> DatasetValidationError:
        return DatasetValidationError(
            f"{self.o.unit} {record.line}: field {field_name!r} {message}",
            line=record.line,
            field=field_name,
        )

    def text(self, record: Record) -> str:
        name = self.o.text_field
        if name not in record.fields:
            present = ", ".join(sorted(record.fields)) or "none"
            raise self.fail(
                record,
                name,
                f"is missing (fields present: {present}); name the text field with --text-field",
            )
        value = record.fields[name]
        if not isinstance(value, str):
            raise self.fail(record, name, f"must be a string, got {_type_name(value)}")
        if not value.strip():
            raise self.fail(record, name, "is empty")
        if len(value) > self.o.max_text_chars:
            raise self.fail(
                record,
                name,
                f"has {len(value):,} characters, over the limit of {self.o.max_text_chars:,} "
                "(AIMASS_MAX_TEXT_CHARS)",
            )
        return value

    def has_label(self, record: Record) -> bool:
        if self.labelled is None:
            present = self.o.label_field is not None and self.o.label_field in record.fields
            self.labelled = present or (self.o.label_required and self.o.label_field is not None)
        return self.labelled

    def label(self, record: Record) -> Any:
        name = str(self.o.label_field)
        if name not in record.fields:
            raise self.fail(record, name, "is missing; every row needs a label")
        value = record.fields[name]
        if value is None or (isinstance(value, str) and not value.strip()):
            raise self.fail(record, name, "is empty; every row needs a label")
        kind = self._kind_of(record, name, value)
        if self.label_type is None:
            self.label_type, self.label_seen_at = kind, record.line
        elif kind != self.label_type:
            if {kind, self.label_type} == {"integer", "float"}:
                self.label_type = "float"
            else:
                raise self.fail(
                    record,
                    name,
                    f"is {_article(kind)} but {self.o.unit} {self.label_seen_at} had "
                    f"{_article(self.label_type)}: mixed label types (force one with "
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

    def split(self, record: Record) -> str:
        name = str(self.o.split_field)
        value = record.fields.get(name)
        if value not in SPLITS:
            raise self.fail(record, name, f"is {value!r}; use one of {', '.join(SPLITS)}")
        return str(value)


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


def _coerce_labels(raw: list[Any], label_type: str) -> list[Any]:
    if label_type == "string":
        return [str(v) for v in raw]
    if label_type == "integer":
        return [int(v) for v in raw]
    return [float(v) for v in raw]


def _extra_value(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, ensure_ascii=False)
    return str(value)


def _digest(prepared: PreparedDataset) -> str:
    h = hashlib.sha256()
    h.update(json.dumps(prepared.schema.__dict__, sort_keys=True, default=list).encode())
    labels = prepared.labels or [None] * prepared.num_rows
    names = prepared.schema.extra_fields
    for i, text in enumerate(prepared.texts):
        row = [text, labels[i], prepared.splits[i], [prepared.extras[n][i] for n in names]]
        h.update(json.dumps(row, ensure_ascii=False, separators=(",", ":")).encode())
        h.update(b"\n")
    return h.hexdigest()


def _stats(prepared: PreparedDataset) -> dict[str, Any]:
    lengths = [len(t) for t in prepared.texts]
    stats: dict[str, Any] = {
        "text_chars": {"mean": sum(lengths) / len(lengths), "max": max(lengths)},
    }
    label_type = prepared.schema.label_type
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
        stats["label_values"] = {"min": min(values), "max": max(values), "mean": mean, "std": std}
    return stats


def prepare_dataset(records: Iterable[Record], options: ImportOptions) -> PreparedDataset:
    """Validate ``records`` and build the dataset; raises on the first bad row."""
    check = _Validator(options)
    texts: list[str] = []
    labels: list[Any] = []
    given_splits: list[str] = []
    extras: list[dict[str, str | None]] = []
    consumed = {f for f in (options.text_field, options.label_field, options.split_field) if f}
    first_line = 0
    for record in records:
        texts.append(check.text(record))
        if check.has_label(record):
            labels.append(check.label(record))
        elif options.label_field and options.label_field in record.fields:
            raise check.fail(
                record,
                options.label_field,
                f"is present but {options.unit} {first_line} had no label: label every row or none",
            )
        first_line = first_line or record.line
        if options.split_field:
            given_splits.append(check.split(record))
        extras.append({k: _extra_value(v) for k, v in record.fields.items() if k not in consumed})
    if not texts:
        raise DatasetValidationError(
            "the dataset has no rows (the file is empty or holds only blank lines)", line=0
        )
    labelled = bool(check.labelled)
    label_type = check.label_type if labelled else None
    extra_names = sorted({k for row in extras for k in row} - set(RESERVED))
    clashing = sorted({k for row in extras for k in row} & set(RESERVED))
    if clashing:
        raise InvalidArgument(
            f"fields {clashing} clash with aimass's stored column names {list(RESERVED)}; "
            "rename them or select them with --text-field/--label-field/--split-field"
        )
    coerced = _coerce_labels(labels, str(label_type)) if labelled else None
    if given_splits:
        splits = given_splits
    else:
        categorical = label_type in ("string", "integer")
        splits = assign_splits(
            len(texts),
            seed=options.seed,
            fractions=options.fractions,
            strata=coerced if categorical else None,
        )
    schema = DatasetSchema(
        text_field=options.text_field,
        label_field=options.label_field if labelled else None,
        label_type=label_type,
        extra_fields=tuple(extra_names),
        split_source="field" if given_splits else "seeded",
    )
    prepared = PreparedDataset(
        schema=schema,
        texts=texts,
        labels=coerced,
        splits=splits,
        extras={n: [row.get(n) for row in extras] for n in extra_names},
    )
    prepared.digest = _digest(prepared)
    prepared.stats = _stats(prepared)
    return prepared
