"""``aimass gc``: remove the artifacts nothing refers to any more (here, or on the server
at ``--url`` with an all-projects admin key)."""

from __future__ import annotations

from typing import Annotated

import typer

from aimass.cli._common import JsonOpt, backend, command, console, emit_json, err_console
from aimass.durations import parse_duration


def _size(count: int) -> str:
    """``812 B``, ``3.4 MB``: bytes for people."""
    value = float(count)
    for unit in ("B", "KB", "MB"):
        if value < 1000:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"


@command
def gc(
    older_than: Annotated[
        str,
        typer.Option(
            "--older-than",
            help="Keep what was written more recently than this (90s, 30m, 1h, 7d): a job "
            "publishes its bundle a moment before it registers the version that refers to it.",
        ),
    ] = "1h",
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List what would be removed; remove nothing.")
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Remove the artifacts nothing refers to any more, here and in the bucket, for good.

    Bundles, reports and graphs of deleted versions, datasets no version names,
    finished jobs' checkpoints, stray uploads and abandoned staging; each run that
    removes something is recorded in the audit log. With --url, on the server's home
    (an all-projects admin key; --older-than at least 60s).
    """
    grace = parse_duration(older_than)
    with err_console.status("looking for artifacts nothing refers to ..."):
        report = backend().collect_garbage(older_than=grace, dry_run=dry_run)
    if json_out:
        emit_json(report)
        return
    verb = "would remove" if dry_run else "removed"
    for item in report.removed:
        console.print(f"{verb} {item.key} ({_size(item.bytes)}, {item.where}): {item.reason}")
    console.print(
        f"{verb} {len(report.removed)} artifacts, {_size(report.bytes)}; "
        f"{report.referenced} referenced artifacts kept"
    )
    if report.too_young:
        console.print(
            f"{len(report.too_young)} unreferenced artifacts were written less than "
            f"{older_than} ago and were kept; run again later or pass a shorter --older-than"
        )
