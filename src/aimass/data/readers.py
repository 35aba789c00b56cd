"""Stream records out of JSONL, CSV, Parquet and CoNLL files, each with its line number.

Readers validate encoding and framing only (UTF-8, JSON syntax and its string
escapes, CSV field counts, row size, total size); field-level checks happen in
:mod:`aimass.data.importer`. Every error names the line (``row`` for Parquet,
which has no lines).

Parquet is compressed, so a tiny file can decode to gigabytes. Before any row is
decoded the uncompressed sizes in its footer are checked against
``max_total_bytes``; then rows are decoded in batches of at most
``_PARQUET_BATCH_BYTES`` (the batch length follows from the row-size limit), and
the decoded bytes so far are checked after each batch against ``max_total_bytes``
and against ``max_ratio`` × the file size, which stops dictionary- and
run-length-encoded bombs whose footer sizes look small.

CoNLL files hold one token per line, its tag in the last column (tab- or
space-separated, e.g. ``Paris<TAB>B-LOC``), and a blank line after each
sentence; ``-DOCSTART-`` lines are skipped. Each sentence becomes one record
``{"tokens": [...], "tags": [...]}`` numbered by its first line.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aimass.errors import DatasetValidationError, InvalidArgument, PayloadTooLarge
from aimass.texts import find_surrogate

__all__ = ["FORMATS", "Record", "conll_sentences", "detect_format", "read_records"]

FORMATS = ("jsonl", "csv", "parquet", "conll")
# Most decoded bytes held per Parquet batch (rows are decoded a batch at a time).
_PARQUET_BATCH_BYTES = 64 * 1024 * 1024
# A Parquet file may always decode to this much, whatever its compression ratio.
_RATIO_FLOOR_BYTES = 1024 * 1024
_SUFFIXES = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".csv": "csv",
    ".parquet": "parquet",
    ".conll": "conll",
    ".bio": "conll",
    ".iob": "conll",
}


@dataclass(frozen=True)
class Record:
    """One input row: where it was, and its fields."""

    line: int
    fields: dict[str, Any]


def detect_format(path: Path, given: str | None) -> str:
    """The format to read ``path`` as: ``given``, else from the file suffix."""
    if given is not None:
        if given not in FORMATS:
            raise InvalidArgument(
                f"unknown dataset format {given!r}; use one of {', '.join(FORMATS)}", format=given
            )
        return given
    found = _SUFFIXES.get(path.suffix.lower())
    if found is None:
        raise InvalidArgument(
            f"cannot tell the format of {path.name!r} from its suffix; pass --format "
            f"({', '.join(FORMATS)})",
            path=str(path),
        )
    return found


def _bad(line: int, message: str, *, unit: str = "line", **details: Any) -> DatasetValidationError:
    return DatasetValidationError(f"{unit} {line}: {message}", line=line, **details)


def _decoded_lines(path: Path, max_row_bytes: int) -> Iterator[tuple[int, str]]:
    # UTF-8 never uses 0x0A inside a multi-byte sequence, so decoding per line
    # is exact and lets the error name the line.
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if len(raw) > max_row_bytes:
                raise _bad(
                    number,
                    f"row is {len(raw):,} bytes, over the limit of {max_row_bytes:,} "
                    "(AIMASS_MAX_ROW_BYTES)",
                )
            try:
                yield number, raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise _bad(
                    number,
                    f"not valid UTF-8 (byte 0x{raw[exc.start]:02x} at column {exc.start + 1}); "
                    "re-encode the file as UTF-8",
                ) from exc


def _read_jsonl(path: Path, max_row_bytes: int) -> Iterator[Record]:
    for number, text in _decoded_lines(path, max_row_bytes):
        if not text.strip():
            continue
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise _bad(number, f"invalid JSON ({exc.msg} at column {exc.colno})") from exc
        except RecursionError:
            raise _bad(number, "JSON nested too deeply to be a table row") from None
        if not isinstance(value, dict):
            raise _bad(number, f"expected a JSON object, found {type(value).__name__}")
        _check_strings(value, number)
        yield Record(number, value)


def _check_strings(value: Any, line: int, field: str = "") -> None:
    """Refuse a lone UTF-16 surrogate (a JSON escape like ``\\ud800``) anywhere in a row."""
    if isinstance(value, str):
        position = find_surrogate(value)
        if position is not None:
            where = f"field {field!r}" if field else "a key"
            raise _bad(
                line,
                f"{where} holds an unpaired UTF-16 surrogate (U+{ord(value[position]):04X}) at "
                f"character {position}; fix the \\u escape so the text is valid Unicode",
                field=field,
                position=position,
            )
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_strings(key, line, field)
            _check_strings(item, line, f"{field}.{key}" if field else str(key))
    elif isinstance(value, list):
        for item in value:
            _check_strings(item, line, field)


def _read_csv(path: Path, max_row_bytes: int) -> Iterator[Record]:
    lines = (text for _number, text in _decoded_lines(path, max_row_bytes))
    reader = csv.reader(lines, strict=True)
    try:
        header = next(reader)
    except StopIteration:
        return
    except csv.Error as exc:
        raise _bad(1, f"malformed CSV header: {exc}") from exc
    if len(set(header)) != len(header) or any(not h for h in header):
        raise _bad(1, f"CSV header has empty or duplicate column names: {header}")
    start = reader.line_num + 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise _bad(start, f"malformed CSV: {exc}") from exc
        if row:
            if len(row) != len(header):
                raise _bad(start, f"expected {len(header)} CSV fields, found {len(row)}")
            yield Record(start, dict(zip(header, row, strict=True)))
        start = reader.line_num + 1


def _too_big(path: Path, decoded: int, limit: int, why: str) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"{path.name} decodes to at least {decoded:,} bytes, over {why} of {limit:,} bytes; "
        "refused before decoding it in full (a decompression bomb, or a dataset to split)",
        decoded=decoded,
        limit=limit,
    )


def _decoded_bytes(batch: Any) -> int:
    """Bytes ``batch`` takes once decoded to Python values, without decoding it.

    A dictionary-encoded column is small in Arrow (one copy of each value) but
    becomes one string per row: its size is the value lengths taken by index.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    total = 0
    for column in batch.columns:
        kind = column.type
        if pa.types.is_dictionary(kind) and (
            pa.types.is_string(kind.value_type)
            or pa.types.is_large_string(kind.value_type)
            or pa.types.is_binary(kind.value_type)
            or pa.types.is_large_binary(kind.value_type)
        ):
            lengths = pc.take(pc.binary_length(column.dictionary), column.indices)
            total += int(pc.sum(lengths).as_py() or 0) + column.indices.nbytes
        else:
            total += column.nbytes
    return total


def _read_parquet(
    path: Path, max_row_bytes: int, max_total_bytes: int, max_ratio: float
) -> Iterator[Record]:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several unrelated types here
        raise InvalidArgument(f"{path.name} is not a readable Parquet file: {exc}") from exc
    # 1. The footer: uncompressed sizes of every column chunk, before decoding a row.
    meta = parquet.metadata
    declared = sum(
        meta.row_group(g).column(c).total_uncompressed_size
        for g in range(meta.num_row_groups)
        for c in range(meta.num_columns)
    )
    total = "the dataset limit (AIMASS_MAX_DATASET_BYTES)"
    if declared > max_total_bytes:
        raise _too_big(path, declared, max_total_bytes, total)
    ratio = f"{max_ratio:g}× its file size (AIMASS_MAX_DECOMPRESSION_RATIO)"
    ratio_limit = max_total_bytes
    if math.isfinite(max_ratio):
        ratio_limit = max(_RATIO_FLOOR_BYTES, int(max_ratio * path.stat().st_size))
    # 2. Bounded batches: decoded bytes counted as they come, refused past either limit.
    batch_rows = max(1, min(4096, _PARQUET_BATCH_BYTES // max_row_bytes))
    number = decoded = 0
    for batch in parquet.iter_batches(batch_size=batch_rows):
        decoded += _decoded_bytes(batch)
        if decoded > max_total_bytes:
            raise _too_big(path, decoded, max_total_bytes, total)
        if decoded > ratio_limit:
            raise _too_big(path, decoded, ratio_limit, ratio)
        for row in batch.to_pylist():
            number += 1
            size = sum(len(v) for v in row.values() if isinstance(v, str | bytes))
            if size > max_row_bytes:
                raise _bad(
                    number,
                    f"row is {size:,} bytes, over the limit of {max_row_bytes:,}",
                    unit="row",
                )
            yield Record(number, row)


def conll_sentences(lines: Iterator[tuple[int, str]]) -> Iterator[Record]:
    """Sentences of CoNLL ``(line number, text)`` lines as token/tag records."""
    tokens: list[str] = []
    tags: list[str] = []
    start = 0
    for number, text in lines:
        columns = text.split()
        if not columns or columns[0] == "-DOCSTART-":
            if tokens:
                yield Record(start, {"tokens": tokens, "tags": tags})
            tokens, tags = [], []
            continue
        if len(columns) < 2:
            raise _bad(
                number,
                f"expected a token and its tag separated by a tab or spaces, found "
                f"{text.strip()[:40]!r}",
            )
        start = start if tokens else number
        tokens.append(columns[0])
        tags.append(columns[-1])
    if tokens:
        yield Record(start, {"tokens": tokens, "tags": tags})


def _read_conll(path: Path, max_row_bytes: int) -> Iterator[Record]:
    return conll_sentences(_decoded_lines(path, max_row_bytes))


def read_records(
    path: Path,
    fmt: str,
    *,
    max_row_bytes: int,
    max_total_bytes: int | None = None,
    max_ratio: float | None = None,
) -> Iterator[Record]:
    """Records of ``path`` read as ``fmt``, with line numbers (Parquet: row numbers).

    Args:
        path: The file.
        fmt: One of :data:`FORMATS`.
        max_row_bytes: Largest row, in bytes of its source text (decoded, for Parquet).
        max_total_bytes: Largest dataset in decoded bytes (None: no limit); text
            formats are checked by their file size, Parquet as described above.
        max_ratio: Most a Parquet file may expand when decoded (None: no limit).
    """
    if not path.is_file():
        raise InvalidArgument(f"dataset file {path} does not exist", path=str(path))
    total = max_total_bytes if max_total_bytes is not None else 2**63
    if fmt == "parquet":
        return _read_parquet(path, max_row_bytes, total, max_ratio or float("inf"))
    size = path.stat().st_size
    if size > total:
        raise _too_big(path, size, total, "the dataset limit (AIMASS_MAX_DATASET_BYTES)")
    readers = {"jsonl": _read_jsonl, "csv": _read_csv, "conll": _read_conll}
    return readers[fmt](path, max_row_bytes)
