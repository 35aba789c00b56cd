"""The result dataset of a batch-prediction job, as a Parquet, CSV or JSONL download.

A ``batch-predict`` job publishes its predictions as a dataset version (see
:mod:`aimass.jobs.batch`); this module hands that version out as a file, in
chunks, so a large result never sits in memory whole: Parquet as stored (or
rewritten batch by batch), CSV through pyarrow's writer (UTF-8, every string
quoted, ``""`` escaping), JSONL one ``json.dumps(row, ensure_ascii=False)`` per
line. Every format has the same columns with the same values as the stored
version (``score`` and ``probabilities`` are text, as stored).

The stored predictions were cut by the submitting key's output policy when the
job ran; a download is cut again by the *downloading* key's policy (``labels``
drops ``score`` and ``probabilities``, ``top_k`` keeps the most probable labels,
``round`` rounds), so no key reads more of a model's output here than it would
get from predict.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from aimass.entities import Job, JobStatus
from aimass.errors import FailedPrecondition, InvalidArgument
from aimass.serving.policy import FULL, OutputPolicy

if TYPE_CHECKING:
    import pyarrow as pa

    from aimass.workspace import Workspace

__all__ = ["RESULT_FORMATS", "JobResults", "open_job_results", "write_job_results"]

# format → media type of the download
RESULT_FORMATS = {
    "parquet": "application/vnd.apache.parquet",
    "csv": "text/csv; charset=utf-8",
    "jsonl": "application/x-ndjson; charset=utf-8",
}
_ROWS_PER_BATCH = 8192
_BYTES_PER_CHUNK = 1 << 20
_SCORED = ("score", "probabilities")


@dataclass(frozen=True)
class JobResults:
    """A job's result dataset, opened and ready to stream.

    Attributes:
        dataset: The result dataset version (``NAME@VERSION``).
        filename: A file name for it (``NAME-vVERSION.FORMAT``).
        media_type: The download's content type.
        rows: Rows in the result.
        chunks: The file's bytes, in chunks (iterate once; it closes the source at the end).
    """

    dataset: str
    filename: str
    media_type: str
    rows: int
    chunks: Iterator[bytes]


def result_format(fmt: str) -> str:
    """``fmt`` checked against the formats a result downloads as."""
    if fmt not in RESULT_FORMATS:
        raise InvalidArgument(
            f"result format {fmt[:20]!r} is not one of {', '.join(RESULT_FORMATS)}", format=fmt[:20]
        )
    return fmt


def open_job_results(
    ws: Workspace,
    job_id: str,
    *,
    project: str,
    fmt: str = "parquet",
    policy: OutputPolicy = FULL,
    key_id: str | None = None,
) -> JobResults:
    """Open the result dataset of batch-prediction job ``job_id`` for download.

    Every check happens here, before the first byte: the job is a finished
    ``batch-predict`` job, its dataset version exists, and ``policy`` (the
    downloading key's) allows its output. The chunks are cut by ``policy``.
    """
    import pyarrow.parquet as pq

    fmt = result_format(fmt)
    job = ws.jobs.get(job_id, project=project)
    version = ws.datasets.get(_result_ref(job), project=project)
    regression = version.schema.label_type == "float"
    policy.check_task("regression" if regression else "classification", key_id)
    # The decrypted copy's name is removed when this scope ends; the open handle keeps
    # its bytes readable (POSIX) until the download closes it, and then they are gone.
    with ws.artifacts.plaintext_scope():
        handle = ws.artifacts.resolve(version.uri).open("rb")
    try:
        source = pq.ParquetFile(handle)
    except Exception:
        handle.close()
        raise
    if fmt == "parquet" and policy.is_full:
        chunks = _raw(handle)
    else:
        chunks = _converted(source, handle, fmt, policy, regression=regression)
    return JobResults(
        dataset=version.ref,
        filename=f"{version.name}-v{version.version}.{fmt}",
        media_type=RESULT_FORMATS[fmt],
        rows=version.num_rows,
        chunks=chunks,
    )


def write_job_results(
    ws: Workspace, job_id: str, destination: Path, *, project: str, fmt: str = "parquet"
) -> Path:
    """Write a job's result dataset to ``destination`` (a file, or a folder to put it in).

    The file appears under its name only once complete. Returns its path.
    """
    if not destination.is_dir() and not destination.parent.is_dir():
        raise InvalidArgument(
            f"cannot write {destination}: folder {destination.parent} does not exist; "
            "create it first",
            path=str(destination),
        )
    results = open_job_results(ws, job_id, project=project, fmt=fmt)
    target = destination / results.filename if destination.is_dir() else destination
    partial = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.partial")
    try:
        with partial.open("wb") as out:
            for chunk in results.chunks:
                out.write(chunk)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return target


def _result_ref(job: Job) -> str:
    """``NAME@VERSION`` of a job's result dataset; a clear error when it has none."""
    if job.kind != "batch-predict":
        raise InvalidArgument(
            f"job {job.id} is a {job.kind} job; only batch-predict jobs have a result "
            "dataset to download",
            job_id=job.id,
        )
    if job.status != JobStatus.SUCCEEDED:
        if job.status.finished:
            why = f": {job.error}" if job.error else ""
            raise FailedPrecondition(
                f"job {job.id} ended {job.status}{why}; it has no results (submit it again)",
                job_id=job.id,
            )
        raise FailedPrecondition(
            f"job {job.id} is {job.status} ({job.progress:.0%}); its results can be downloaded "
            f"once it succeeds (follow it with 'aimass jobs logs -f {job.id}')",
            job_id=job.id,
        )
    return f"{job.result['dataset']}@{job.result['version']}"


def _raw(handle: IO[bytes]) -> Iterator[bytes]:
    """The stored file's bytes as they are."""
    with handle:
        handle.seek(0)
        while chunk := handle.read(_BYTES_PER_CHUNK):
            yield chunk


def _converted(
    source: Any, handle: IO[bytes], fmt: str, policy: OutputPolicy, *, regression: bool
) -> Iterator[bytes]:
    """The rows batch by batch, cut by ``policy``, written as ``fmt``."""
    with handle:
        batches = (
            _cut(batch, policy, regression=regression)
            for batch in source.iter_batches(batch_size=_ROWS_PER_BATCH)
        )
        schema = _cut_schema(source.schema_arrow, policy)
        if fmt == "jsonl":
            yield from _jsonl(batches)
        else:
            yield from _written(batches, schema, fmt)


def _jsonl(batches: Iterator[pa.RecordBatch]) -> Iterator[bytes]:
    for batch in batches:
        lines = (json.dumps(row, ensure_ascii=False) + "\n" for row in batch.to_pylist())
        yield "".join(lines).encode("utf-8")


class _Sink:
    """A write-only file object that hands back what was written since the last drain."""

    closed = False

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._size = 0

    def write(self, data: bytes) -> int:
        self._parts.append(bytes(data))
        self._size += len(data)
        return len(data)

    def tell(self) -> int:
        return self._size

    def flush(self) -> None:
        return None

    def close(self) -> None:
        self.closed = True

    def drain(self) -> bytes:
        data, self._parts = b"".join(self._parts), []
        return data


def _written(batches: Iterator[pa.RecordBatch], schema: pa.Schema, fmt: str) -> Iterator[bytes]:
    """Parquet (zstd) or CSV (header, UTF-8, strings quoted) through pyarrow's writers."""
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    sink = _Sink()
    writer: Any
    if fmt == "parquet":
        writer = pq.ParquetWriter(sink, schema, compression="zstd")
    else:
        options = pcsv.WriteOptions(include_header=True, quoting_style="needed")
        writer = pcsv.CSVWriter(sink, schema, write_options=options)
    for batch in batches:
        writer.write_batch(batch)
        if chunk := sink.drain():
            yield chunk
    writer.close()
    yield sink.drain()


def _cut_schema(schema: pa.Schema, policy: OutputPolicy) -> pa.Schema:
    if not policy.labels:
        return schema
    keep = [i for i, name in enumerate(schema.names) if name not in _SCORED]
    return _select(schema, keep)


def _select(schema: pa.Schema, keep: list[int]) -> pa.Schema:
    import pyarrow as pa

    # The stored metadata lists the dropped columns: it does not travel with the cut.
    return pa.schema([schema.field(i) for i in keep])


def _cut(batch: pa.RecordBatch, policy: OutputPolicy, *, regression: bool) -> pa.RecordBatch:
    """``batch`` as ``policy`` shows it: each row's stored prediction re-cut by the policy."""
    import pyarrow as pa

    if policy.is_full:
        return batch
    names = batch.schema.names
    if policy.labels:
        keep = [i for i, name in enumerate(names) if name not in _SCORED]
        batch = pa.RecordBatch.from_arrays(
            [batch.column(i) for i in keep], schema=_select(batch.schema, keep)
        )
        names = batch.schema.names
    stored = {n: batch.column(n).to_pylist() for n in names if n in _SCORED}
    if regression:
        stored["value"] = batch.column("label").to_pylist()
    if not stored:
        return batch
    shown = policy.apply([_prediction(stored, i) for i in range(batch.num_rows)])
    columns = {n: batch.column(n) for n in names}
    for name, values in stored.items():
        column = "label" if name == "value" else name
        cut = [_stored_form(name, shown[i].get(name)) for i in range(len(values))]
        columns[column] = pa.array(cut, type=batch.schema.field(column).type)
    return pa.RecordBatch.from_arrays(list(columns.values()), schema=batch.schema)


def _prediction(stored: dict[str, list[Any]], i: int) -> dict[str, Any]:
    """Row ``i``'s prediction as predict returns it (scores as numbers), for the policy."""
    found: dict[str, Any] = {}
    for name, values in stored.items():
        value = values[i]
        if name == "score" and isinstance(value, str):
            value = _number(value)
        elif name == "probabilities" and isinstance(value, str):
            value = _mapping(value)
        if value is not None:
            found[name] = value
    return found


def _stored_form(name: str, value: Any) -> Any:
    """A policy-cut value back in its stored form (text for score and probabilities)."""
    if value is None or isinstance(value, str):
        return value
    if name == "probabilities":
        return json.dumps(value, sort_keys=True)  # as the job stored it
    return str(value) if name == "score" else value


def _number(text: str) -> float | str:
    try:
        return float(text)
    except ValueError:
        return text


def _mapping(text: str) -> dict[str, Any] | str:
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return text
    return value if isinstance(value, dict) else text
