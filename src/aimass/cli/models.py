"""``aimass models``: the registry (list, show, alias, card, export, optimize, delete)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from aimass.cli import _flows as flows
from aimass.cli._common import (
    JsonOpt,
    ProjectOpt,
    backend,
    command,
    console,
    emit_json,
    err_console,
    fmt_metric,
    table,
)
from aimass.cli.export import export_note
from aimass.cli.privacy import audit_line, privacy_line
from aimass.schemas import ModelVersionOut

app = typer.Typer(help="Registered models, versions and aliases.", no_args_is_help=True)

RefArg = Annotated[str, typer.Argument(help="NAME, NAME@VERSION or NAME@ALIAS.")]


def _headline(version: ModelVersionOut) -> dict[str, object]:
    from aimass.workspace.cards import METRIC_KEYS

    test = version.metrics.get("test") or {}
    keys = METRIC_KEYS.get(version.task, ("loss",))[:2]
    return {k: test[k] for k in keys if k in test}


@app.command("list")
@command
def list_(project: ProjectOpt = "default", json_out: JsonOpt = False) -> None:
    """Registered models with their latest version and aliases."""
    models = backend().models.list(project=project)
    if json_out:
        emit_json(models)
        return
    table(
        "models",
        ["name", "latest", "aliases"],
        [
            [m.name, m.latest_version, ", ".join(f"{a}→{v}" for a, v in m.aliases.items()) or "-"]
            for m in models
        ],
    )


@app.command("versions")
@command
def versions(
    name: Annotated[str, typer.Argument(help="Model name.")],
    project: ProjectOpt = "default",
    json_out: JsonOpt = False,
) -> None:
    """Every version of a model, with its test metrics."""
    found = backend().models.versions(name, project=project)
    if json_out:
        emit_json(found)
        return
    table(
        f"versions of {name}",
        ["version", "task", "dataset", "base", "test", "aliases", "created"],
        [
            [
                v.version,
                v.task,
                v.lineage.dataset or "(imported)",
                v.lineage.base or "-",
                " ".join(f"{k} {fmt_metric(m)}" for k, m in _headline(v).items()),
                ", ".join(v.aliases) or "-",
                v.created_at.strftime("%Y-%m-%d %H:%M"),
            ]
            for v in found
        ],
    )


@app.command("show")
@command
def show(ref: RefArg, project: ProjectOpt = "default", json_out: JsonOpt = False) -> None:
    """A version's lineage, metrics and aliases."""
    version = backend().models.get(ref, project=project)
    if json_out:
        emit_json(version)
        return
    lineage = version.lineage
    console.print(
        f"[bold]{version.ref}[/]  task {version.task}  aliases {', '.join(version.aliases) or '-'}"
    )
    if lineage.dataset:
        console.print(f"  dataset {lineage.dataset}  base {lineage.base}  job {lineage.job_id}")
    else:
        origin = lineage.config.get("hf_architecture", "a Hugging Face model")
        console.print(f"  imported from {origin} at {lineage.config.get('path', '?')}")
    console.print(f"  bundle {version.digest[:16]}…  {lineage.code_version}")
    for split in ("validation", "test"):
        metrics = version.metrics.get(split) or {}
        scalars = {k: v for k, v in metrics.items() if isinstance(v, int | float)}
        console.print(
            f"  {split}: " + "  ".join(f"{k} {fmt_metric(v)}" for k, v in scalars.items())
        )
    console.print(f"  privacy: {privacy_line(version.privacy)}")
    serving = version.metrics.get("serving")
    if serving:
        console.print(f"  serving: {serving_line(serving)}")
    audits = backend().models.attachments(version.ref, kind="privacy-audit", project=project)
    if audits:
        console.print(f"  privacy audit: {audit_line(audits[0].summary)}")


def serving_line(parity: dict[str, Any]) -> str:
    """One line from a parity record: the recommended backend and each backend's numbers."""
    parts = []
    for name, entry in parity.get("backends", {}).items():
        quality = entry.get("accuracy", entry.get("rmse"))
        speed = entry.get("predictions_per_second", 0)
        parts.append(f"{name} {fmt_metric(quality)} ({speed:,.0f}/s)")
    return f"{parity.get('recommended', 'torch')} recommended; " + ", ".join(parts)


@app.command("optimize")
@command
def optimize(
    ref: RefArg,
    dataset: Annotated[
        str | None,
        typer.Option(help="Parity rows: dataset NAME[@VERSION] (default: the training dataset)."),
    ] = None,
    split: Annotated[str, typer.Option(help="train, validation or test.")] = "test",
    threshold: Annotated[
        float,
        typer.Option(
            help="Largest drop at which int8 serves: accuracy points (NER: entity F1 points; "
            "regression: % of RMSE)."
        ),
    ] = 0.5,
    project: ProjectOpt = "default",
    json_out: JsonOpt = False,
) -> None:
    """Export a version to ONNX (fp32 and int8), run the parity check, attach the result.

    Classifiers, regressors and NER taggers.

    Servers with AIMASS_SERVE_BACKEND=auto (the default) then serve the backend the
    parity run recommends: int8 when its quality is within the threshold of PyTorch's.
    """
    from aimass.training.callbacks import LoopState, RichProgress

    spec = {"model": ref, "dataset": dataset, "split": split, "threshold": threshold}
    progress = [] if json_out else [RichProgress(console=err_console)]
    try:
        version = flows.optimize(backend(), spec, project=project, callbacks=progress)
    finally:
        for callback in progress:
            callback.on_train_end(LoopState())
    parity = version.metrics.get("serving") or {}
    if json_out:
        emit_json({"model": version.ref, "serving": parity})
        return
    unit = parity.get("drop_unit", "")
    table(
        f"{version.ref}: parity on {parity.get('rows', 0):,} rows of {parity.get('dataset')}",
        ["backend", "quality", f"drop ({unit})", "predictions/s", "passes"],
        [
            [
                name,
                fmt_metric(entry.get("accuracy", entry.get("f1", entry.get("rmse")))),
                fmt_metric(entry.get("drop", 0.0)),
                f"{entry.get('predictions_per_second', 0):,.0f}",
                "yes" if entry.get("passes") else "no",
            ]
            for name, entry in parity.get("backends", {}).items()
        ],
    )
    console.print(
        f"recommended: [bold]{parity.get('recommended')}[/] (threshold {parity.get('threshold')} "
        f"{unit}); served with AIMASS_SERVE_BACKEND=auto"
    )


@app.command("alias")
@command
def alias(
    name: Annotated[str, typer.Argument(help="Model name.")],
    version: Annotated[int, typer.Argument(help="Version number.")],
    alias_name: Annotated[str, typer.Argument(metavar="ALIAS", help="Alias, e.g. production.")],
    project: ProjectOpt = "default",
    json_out: JsonOpt = False,
) -> None:
    """Point ALIAS at VERSION (moving it if it points elsewhere)."""
    updated = backend().models.set_alias(name, alias_name, version, project=project)
    if json_out:
        emit_json(updated)
    else:
        console.print(f"{name}@{alias_name} → version {updated.version}")


@app.command("unalias")
@command
def unalias(
    name: Annotated[str, typer.Argument(help="Model name.")],
    alias_name: Annotated[str, typer.Argument(metavar="ALIAS")],
    project: ProjectOpt = "default",
) -> None:
    """Remove an alias."""
    backend().models.delete_alias(name, alias_name, project=project)
    console.print(f"removed alias {alias_name!r} of {name}")


@app.command("card")
@command
def card(ref: RefArg, project: ProjectOpt = "default") -> None:
    """Print the generated model card (Markdown)."""
    typer.echo(backend().models.card(ref, project=project))


@app.command("export")
@command
def export(
    ref: RefArg,
    destination: Annotated[Path, typer.Argument(help="Empty or new directory.")],
    project: ProjectOpt = "default",
) -> None:
    """Copy a verified bundle out as a Hugging Face model directory.

    With AIMASS_URL set, the server streams it (this needs models:write on the
    model) and every file is checked against the bundle's manifest on arrival.
    """
    names = backend().models.export(ref, destination, project=project)
    console.print(f"exported {len(names)} files to {destination}")
    note = export_note(destination)
    if note:
        console.print(note)


@app.command("import")
@command
def import_(
    source: Annotated[
        Path,
        typer.Argument(
            help="A Hugging Face *ForSequenceClassification directory (with AIMASS_URL: a "
            "path on the server, inside its AIMASS_IMPORT_DIRS)."
        ),
    ],
    name: Annotated[str, typer.Option("--name", "-n", help="Model name.")],
    alias_name: Annotated[
        str | None, typer.Option("--alias", help="Point this alias at the version.")
    ] = None,
    project: ProjectOpt = "default",
    json_out: JsonOpt = False,
) -> None:
    """Register a Hugging Face classifier directory as a model version, no training.

    Labels come from config.json's id2label; safetensors weights only. Served,
    explained, evaluated and exported like a model trained here.
    """
    with console.status(f"importing {source} ..."):
        version = backend().models.import_(
            str(source), name=name, alias=alias_name, project=project
        )
    created = version.created
    if json_out:
        emit_json({"version": version, "created": created})
        return
    state = {True: "new version", False: "identical weights: existing version", None: "imported"}
    aliases = f", aliases {', '.join(version.aliases)}" if version.aliases else ""
    console.print(
        f"[bold]{version.ref}[/] ({state[created]}): {version.task}, "
        f"digest {version.digest[:12]}{aliases}"
    )


@app.command("verify")
@command
def verify(
    ref: Annotated[
        str | None, typer.Argument(help="NAME@VERSION (or alias) in the registry.")
    ] = None,
    path: Annotated[
        Path | None, typer.Option("--path", help="An exported bundle directory instead.")
    ] = None,
    public_key: Annotated[
        Path | None,
        typer.Option("--public-key", help="PEM public key the exported bundle must be signed by."),
    ] = None,
    project: ProjectOpt = "default",
    json_out: JsonOpt = False,
) -> None:
    """Check a bundle's signature, then every file against its manifest.

    A registered version is checked against the server's trusted signing keys; an
    exported directory (--path) against --public-key, or else against the key its
    signature carries (which proves integrity, not who signed it).
    """
    if (ref is None) == (path is None):
        raise typer.BadParameter("give either NAME@VERSION or --path DIRECTORY")
    if path is not None:
        from aimass.artifacts.bundle import verify_bundle, verify_bundle_signature
        from aimass.artifacts.signing import load_public_key, public_key_id

        trusted = None
        if public_key is not None:
            raw = load_public_key(public_key)
            trusted = {public_key_id(raw): raw}
        signature = verify_bundle_signature(path, trusted=trusted)
        manifest = verify_bundle(path)
        result: dict[str, Any] = {
            "ref": str(path),
            "digest": manifest.digest,
            "files": len(manifest.files),
            "signed_by": signature.key_id,
            "trusted": signature.trusted,
            "encrypted": False,
        }
    else:
        result = backend().models.verify(ref or "", project=project).model_dump()
    if json_out:
        emit_json(result)
        return
    who = "a trusted key" if result["trusted"] else "the key it carries (not checked against yours)"
    console.print(
        f"[green]verified[/] {result['ref']}: bundle {result['digest'][:16]}…, "
        f"{result['files']} files match, signed by {result['signed_by']} ({who})"
    )


@app.command("delete-version")
@command
def delete_version(
    name: Annotated[str, typer.Argument(help="Model name.")],
    version: Annotated[int, typer.Argument(help="Version number.")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    project: ProjectOpt = "default",
    json_out: JsonOpt = False,
) -> None:
    """Delete a version that no alias points at.

    Its bundle stays in the artifact store until 'aimass gc' removes what nothing
    refers to any more.
    """
    if not yes:
        typer.confirm(f"delete {name}@{version}?", abort=True)
    deleted = backend().models.delete_version(name, version, project=project)
    if json_out:
        emit_json(deleted)
        return
    console.print(f"deleted {deleted.ref}")
