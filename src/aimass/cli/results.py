"""``aimass jobs results``: a batch prediction's result dataset as a Parquet, CSV or JSONL file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from aimass.cli._common import JsonOpt, ProjectOpt, backend, command, console, emit_json
from aimass.errors import InvalidArgument

__all__ = ["jobs_results"]

FORMATS = ("parquet", "csv", "jsonl")
_SUFFIXES = {".parquet": "parquet", ".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}


def result_format(fmt: str | None, output: Path | None) -> str:
    """``--format``, else the one ``-o``'s suffix names, else Parquet; refuses a mismatch."""
    implied = _SUFFIXES.get(output.suffix.lower()) if output is not None else None
    if fmt is None:
        return implied or "parquet"
    fmt = fmt.lower()
    if fmt not in FORMATS:
        raise InvalidArgument(f"--format {fmt!r}: use one of {', '.join(FORMATS)}")
    if implied is not None and implied != fmt:
        raise InvalidArgument(
            f"-o {output} names a .{implied} file but --format is {fmt}; change one of them"
        )
    return fmt


@command
def jobs_results(
    job_id: Annotated[str, typer.Argument(help="A finished batch-predict job's id.")],
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format",
            help="parquet, csv or jsonl (default: from the -o suffix, else parquet).",
            show_default=False,
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="The file to write, or a folder to write NAME-vVERSION.FORMAT in "
            "(default: the current folder).",
            show_default=False,
        ),
    ] = None,
    project: ProjectOpt = "default",
    json_out: JsonOpt = False,
) -> None:
    """Download a batch prediction's result dataset (the predictions with their inputs).

    CSV and JSONL are UTF-8; every format has the same columns as the stored dataset.
    """
    fmt = result_format(fmt, output)
    written = backend().jobs.results(job_id, output or Path.cwd(), fmt=fmt, project=project)
    size = written.stat().st_size
    if json_out:
        emit_json({"path": str(written), "format": fmt, "bytes": size})
    else:
        console.print(f"wrote {written} ({fmt}, {size:,} bytes)")
