"""Validate every row of a dataset and turn it into one immutable Parquet table.

What a row is depends on the dataset *kind* (``text``, ``tokens`` or ``pairs``;
see :mod:`aimass.data.kinds` for each kind's rules). The rules (each has a test
in ``tests/data/test_importer.py``):

* the text field must be a non-empty string no longer than ``max_text_chars``;
* when labelled, every row has a label of one type: ``string`` classes,
  ``integer`` classes/values or ``float`` values (integers and floats mix into
  ``float``; booleans, NaN and infinities are refused);
* a split field, when named, holds ``train``, ``validation`` or ``test``;
  otherwise splits are made from a seed, stratified by class;
* ``tokens`` rows hold one strict-BIO tag per token; ``pairs`` rows hold two
  non-empty texts (prompt/response or source/target);
* other fields are kept as nullable strings (objects and lists as JSON);
* the first bad row stops the import: nothing is stored, and the error names
  the line and the field.

The table's content digest (SHA-256 over the schema and every row, in order)
makes versions content-addressed: identical input gives the identical version.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aimass.data.kinds import KINDS, RowKind, get_kind
from aimass.data.readers import Record
from aimass.data.splits import SPLITS, assign_splits, validate_fractions
from aimass.entities import DatasetSchema
from aimass.errors import DatasetValidationError, InvalidArgument

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["LABEL_TYPES", "ImportOptions", "PreparedDataset", "prepare_dataset"]

LABEL_TYPES = ("auto", "string", "integer", "float")


@dataclass(frozen=True)
class ImportOptions:
    """How to read the fields of a dataset.

    Attributes:
        kind: ``text``, ``tokens`` or ``pairs`` (see :mod:`aimass.data.kinds`).
        text_field: Field holding the input (text, tokens or prompt/source);
            ``None`` takes the kind's default (``text``; ``tokens``; ``prompt``
            or else ``source``).
        label_field: Field holding the supervision; ``None`` takes the kind's
            default (``label``; ``tags``; ``response`` or else ``target``).
        label_required: When False, a text ``label_field`` absent from the first row
            means the dataset is unlabelled (the default ``label`` is optional).
        label_type: ``auto`` infers; ``string``/``integer``/``float`` force it
            (CSV cells are text, so ``auto`` parses numbers).
        split_field: Field holding ``train``/``validation``/``test``, if any.
        seed: Seed for made splits.
        fractions: Train/validation/test fractions for made splits.
        max_text_chars: Longest accepted text.
        unit: ``line`` or ``row`` (Parquet), for messages.
    """

    kind: str = "text"
    text_field: str | None = None
    label_field: str | None = None
    label_required: bool = False
    label_type: str = "auto"
    split_field: str | None = None
    seed: int = 0
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
    max_text_chars: int = 100_000
    unit: str = "line"

    @classmethod
    def from_fields(cls, fields: Mapping[str, Any]) -> ImportOptions:
        """Options from the wire/CLI field names (``kind``, ``text_field``, ``label_field``,
        ``label_type``, ``split_field``, ``seed``, ``splits``); an explicit label field
        must be present in the data."""
        return cls(
            kind=fields.get("kind") or "text",
            text_field=fields.get("text_field"),
            label_field=fields.get("label_field"),
            label_required=fields.get("label_field") is not None,
            label_type=fields.get("label_type") or "auto",
            split_field=fields.get("split_field"),
            seed=fields.get("seed") or 0,
            fractions=tuple(fields.get("splits") or (0.8, 0.1, 0.1)),
        )

    def __post_init__(self) -> None:
        if self.label_type not in LABEL_TYPES:
            raise InvalidArgument(
                f"label type {self.label_type!r} is not one of {', '.join(LABEL_TYPES)}"
            )
        if self.kind not in KINDS:
            raise InvalidArgument(
                f"dataset kind {self.kind!r} is not one of {', '.join(KINDS)}", kind=self.kind
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
    tokens: list[list[str]] | None = None
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
        """The Parquet table: the kind's columns, ``split``, then extra fields."""
        import pyarrow as pa

        columns: dict[str, pa.Array] = get_kind(self.schema.kind).arrow_columns(self)
        columns["split"] = pa.array(self.splits, pa.string())
        for name in self.schema.extra_fields:
            columns[name] = pa.array(self.extras[name], pa.string())
        meta = {"aimass.schema": json.dumps(self.schema.__dict__, default=list)}
        return pa.table(columns).replace_schema_metadata(meta)


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
        if prepared.tokens is not None:
            row.append(prepared.tokens[i])
        h.update(json.dumps(row, ensure_ascii=False, separators=(",", ":")).encode())
        h.update(b"\n")
    return h.hexdigest()


def prepare_dataset(records: Iterable[Record], options: ImportOptions) -> PreparedDataset:
    """Validate ``records`` and build the dataset; raises on the first bad row."""
    kind = get_kind(options.kind)(options)
    texts: list[str] = []
    labels: list[Any] = []
    tokens: list[list[str]] = []
    given_splits: list[str] = []
    extras: list[dict[str, str | None]] = []
    for record in records:
        if not texts:
            kind.start(record)
        text, label, row_tokens = kind.parse(record)
        texts.append(text)
        if label is not None:
            labels.append(label)
        if row_tokens is not None:
            tokens.append(row_tokens)
        if options.split_field:
            given_splits.append(_split(kind, record, options.split_field))
        consumed = kind.consumed
        extras.append({k: _extra_value(v) for k, v in record.fields.items() if k not in consumed})
    if not texts:
        raise DatasetValidationError(
            "the dataset has no rows (the file is empty or holds only blank lines)", line=0
        )
    reserved = {*kind.columns, "split"}
    names = {k for row in extras for k in row}
    clashing = sorted(names & reserved)
    if clashing:
        raise InvalidArgument(
            f"fields {clashing} clash with aimass's stored column names {sorted(reserved)}; "
            "rename them or select them with --text-field/--label-field/--split-field"
        )
    extra_names = sorted(names)
    stored = kind.finish_labels(labels) if kind.labelled else None
    splits = given_splits or assign_splits(
        len(texts), seed=options.seed, fractions=options.fractions, strata=kind.strata(stored)
    )
    schema = DatasetSchema(
        text_field=kind.text_field,
        label_field=kind.label_field if kind.labelled else None,
        label_type=kind.label_type,
        extra_fields=tuple(extra_names),
        split_source="field" if given_splits else "seeded",
        kind=kind.name,
    )
    prepared = PreparedDataset(
        schema=schema,
        texts=texts,
        labels=stored,
        splits=splits,
        extras={n: [row.get(n) for row in extras] for n in extra_names},
        tokens=tokens if kind.name == "tokens" else None,
    )
    prepared.digest = _digest(prepared)
    prepared.stats = kind.stats(prepared)
    return prepared


def _split(kind: RowKind, record: Record, name: str) -> str:
    value = record.fields.get(name)
    if value not in SPLITS:
        raise kind.fail(record, name, f"is {value!r}; use one of {', '.join(SPLITS)}")
    return str(value)
