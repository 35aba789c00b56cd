"""Stream records out of JSONL, CSV, Parquet and CoNLL files, each with its line number.

Readers validate encoding and framing only (UTF-8, JSON syntax, CSV field
counts, row size); field-level checks happen in :mod:`aimass.data.importer`.
Every error names the line (``row`` for Parquet, which has no lines).

CoNLL files hold one token per line, its tag in the last column (tab- or
space-separated, e.g. ``Paris<TAB>B-LOC``), and a blank line after each
sentence; ``-DOCSTART-`` lines are skipped. Each sentence becomes one record
``{"tokens": [...], "tags": [...]}`` numbered by its first line.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aimass.errors import DatasetValidationError, InvalidArgument

__all__ = ["FORMATS", "Record", "conll_sentences", "detect_format", "read_records"]

FORMATS = ("jsonl", "csv", "parquet", "conll")
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
        if not isinstance(value, dict):
            raise _bad(number, f"expected a JSON object, found {type(value).__name__}")
        yield Record(number, value)


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


def _read_parquet(path: Path, max_row_bytes: int) -> Iterator[Record]:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several unrelated types here
        raise InvalidArgument(f"{path.name} is not a readable Parquet file: {exc}") from exc
    number = 0
    for batch in parquet.iter_batches(batch_size=4096):
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


def read_records(path: Path, fmt: str, *, max_row_bytes: int) -> Iterator[Record]:
    """Records of ``path`` read as ``fmt``, with line numbers (Parquet: row numbers)."""
    if not path.is_file():
        raise InvalidArgument(f"dataset file {path} does not exist", path=str(path))
    readers = {
        "jsonl": _read_jsonl,
        "csv": _read_csv,
        "parquet": _read_parquet,
        "conll": _read_conll,
    }
    return readers[fmt](path, max_row_bytes)
