"""``aimass datasets``: import, list, show, delete, and the packaged samples."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from aimass.cli._common import (
    JsonOpt,
    ProjectOpt,
    backend,
    command,
    console,
    emit_json,
    table,
)
from aimass.errors import InvalidArgument
from aimass.schemas import DatasetVersionOut

app = typer.Typer(help="Import and inspect datasets.", no_args_is_help=True)


def _fractions(text: str) -> tuple[float, float, float]:
    try:
        parts = tuple(float(p) for p in text.split(","))
    except ValueError:
        parts = ()
    if len(parts) != 3:
        raise InvalidArgument(f"--splits {text!r}: give three fractions, e.g. 0.8,0.1,0.1")
    return parts


def _show(version: DatasetVersionOut, *, created: bool | None = None) -> None:
    status = (
        ""
        if created is None
        else (" (new version)" if created else " (identical content: existing version)")
    )
    console.print(
        f"[bold]{version.ref}[/]{status}  digest {version.digest[:12]}  {version.num_rows:,} rows"
    )
    schema = version.data_schema
    console.print(
        f"  kind {schema.kind}; input field {schema.text_field!r}; "
        f"label {schema.label_field!r} ({schema.label_type}); "
        f"splits {schema.split_source}: "
        + ", ".join(f"{s} {n:,}" for s, n in version.splits.items())
    )
    counts = version.stats.get("label_counts")
    if counts:
        classes = version.stats.get("classes", [])
        table(
            "label distribution",
            ["class", *counts],
            [[c, *[counts[s].get(c, 0) for s in counts]] for c in classes],
        )
    entities = version.stats.get("entity_counts")
    if entities:
        types = version.stats.get("entity_types", [])
        table(
            "entities",
            ["type", *entities],
            [[t, *[entities[s].get(t, 0) for s in entities]] for t in types],
        )
    values = version.stats.get("label_values")
    if values and not counts:
        console.print("  label values: " + ", ".join(f"{k} {v:.4g}" for k, v in values.items()))
    if schema.extra_fields:
        console.print(f"  other fields: {', '.join(schema.extra_fields)}")
    source = version.provenance.get("source")
    if source:
        console.print(f"  source: {source}")
    deid = version.provenance.get("deidentification")
    if deid:
        counts = ", ".join(f"{k} {v}" for k, v in deid["counts"].items()) or "no PII found"
        console.print(
            f"  de-identified ({deid['mode']}, fields {', '.join(deid['fields'])}): "
            f"{deid['texts_changed']:,} of {deid['texts']:,} texts changed; {counts}"
        )
        for example in deid["examples"][:3]:
            console.print(f"    e.g. {example}", highlight=False, markup=False)


@app.command("import")
@command
def import_(
    path: Annotated[Path, typer.Argument(help="JSONL, CSV, Parquet or CoNLL file.")],
    name: Annotated[str, typer.Option("--name", "-n", help="Dataset name (a slug).")],
    fmt: Annotated[
        str | None,
        typer.Option("--format", help="jsonl, csv, parquet or conll (default: from the suffix)."),
    ] = None,
    kind: Annotated[
        str,
        typer.Option(
            help="text (text + optional label), tokens (tokens + BIO tags) or pairs "
            "(prompt/response or source/target)."
        ),
    ] = "text",
    text_field: Annotated[
        str | None,
        typer.Option(help="Field with the input (default per kind: text, tokens, prompt/source)."),
    ] = None,
    label_field: Annotated[
        str | None,
        typer.Option(
            help="Field with the label (default per kind: 'label' when present, tags, "
            "response/target)."
        ),
    ] = None,
    split_field: Annotated[
        str | None, typer.Option(help="Field with train/validation/test.")
    ] = None,
    label_type: Annotated[str, typer.Option(help="auto, string, integer or float.")] = "auto",
    seed: Annotated[int, typer.Option(help="Seed for made splits.")] = 0,
    splits: Annotated[
        str, typer.Option(help="Train,validation,test fractions for made splits.")
    ] = "0.8,0.1,0.1",
    deidentify: Annotated[
        str | None,
        typer.Option(help="Remove PII before storing: mask, redact or pseudonymize."),
    ] = None,
    deidentify_field: Annotated[
        list[str] | None,
        typer.Option(help="Also de-identify this field (repeatable); the text field always is."),
    ] = None,
    recognizers: Annotated[
        str | None, typer.Option(help="Comma-separated PII recognizers (default: all).")
    ] = None,
    ner_model: Annotated[
        str | None,
        typer.Option(help="A registered NER model (NAME@VERSION) for names in Chinese text."),
    ] = None,
    project: ProjectOpt = "default",
    json_out: JsonOpt = False,
) -> None:
    """Validate every row and store an immutable, content-addressed version."""
    deid = None
    if deidentify is not None:
        deid = {
            "mode": deidentify,
            "fields": list(deidentify_field or ()),
            "recognizers": [n.strip() for n in recognizers.split(",")] if recognizers else None,
            "ner_model": ner_model,
        }
    elif deidentify_field or recognizers or ner_model:
        raise InvalidArgument("--deidentify-field, --recognizers and --ner-model need --deidentify")
    options = {
        "kind": kind,
        "text_field": text_field,
        "label_field": label_field,
        "label_type": label_type,
        "split_field": split_field,
        "seed": seed,
        "splits": _fractions(splits),
        "deidentify": deid,
    }
    if not path.is_file():
        raise InvalidArgument(f"dataset file {path} does not exist", path=str(path))
    version = backend().datasets.upload(path, name=name, fmt=fmt, project=project, **options)
    if json_out:
        emit_json({"dataset": version, "created": version.created})
    else:
        _show(version, created=version.created)


@app.command("list")
@command
def list_(project: ProjectOpt = "default", json_out: JsonOpt = False) -> None:
    """Datasets in the project (latest version of each)."""
    versions = backend().datasets.list(project=project)
    if json_out:
        emit_json(versions)
        return
    table(
        "datasets",
        ["name", "latest", "rows", "label", "splits", "created"],
        [
            [
                v.name,
                v.version,
                f"{v.num_rows:,}",
                v.data_schema.label_type or "-",
                "/".join(str(n) for n in v.splits.values()),
                v.created_at.strftime("%Y-%m-%d %H:%M"),
            ]
            for v in versions
        ],
    )


@app.command("show")
@command
def show(
    ref: Annotated[str, typer.Argument(help="NAME or NAME@VERSION.")],
    project: ProjectOpt = "default",
    json_out: JsonOpt = False,
) -> None:
    """Row counts, label distribution, splits and provenance of a version."""
    version = backend().datasets.get(ref, project=project)
    if json_out:
        emit_json(version)
    else:
        _show(version)


@app.command("samples")
@command
def samples(json_out: JsonOpt = False) -> None:
    """Real labelled datasets that installed packages carry (the server's, with --url)."""
    found = backend().datasets.samples()
    if json_out:
        emit_json(found)
        return
    table(
        "sample datasets",
        ["name", "task", "description", "package", "installed"],
        [[s.name, s.task, s.description, s.package, "yes" if s.installed else "no"] for s in found],
    )


@app.command("import-sample")
@command
def import_sample(
    sample: Annotated[str, typer.Argument(help="Sample name (see 'aimass datasets samples').")],
    name: Annotated[
        str | None, typer.Option("--name", "-n", help="Dataset name (default: the sample name).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed for made splits.")] = 0,
    deidentify: Annotated[
        str | None,
        typer.Option(help="Remove PII before storing: mask, redact or pseudonymize."),
    ] = None,
    recognizers: Annotated[
        str | None, typer.Option(help="Comma-separated PII recognizers (default: all).")
    ] = None,
    project: ProjectOpt = "default",
    json_out: JsonOpt = False,
) -> None:
    """Import a packaged sample with its provenance (optionally de-identified first)."""
    deid = None
    if deidentify is not None:
        names = [n.strip() for n in recognizers.split(",")] if recognizers else None
        deid = {"mode": deidentify, "recognizers": names}
    elif recognizers:
        raise InvalidArgument("--recognizers needs --deidentify")
    version = backend().datasets.import_sample(
        sample, name=name, seed=seed, project=project, deidentify=deid
    )
    if json_out:
        emit_json({"dataset": version, "created": version.created})
    else:
        _show(version, created=version.created)


@app.command("delete-version")
@command
def delete_version(
    name: Annotated[str, typer.Argument(help="Dataset name.")],
    version: Annotated[int, typer.Argument(help="Version number.")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    project: ProjectOpt = "default",
    json_out: JsonOpt = False,
) -> None:
    """Delete a dataset version.

    Model versions trained on it keep its name and digest in their lineage. Its file
    stays in the artifact store until 'aimass gc' removes what nothing refers to.
    """
    if not yes:
        typer.confirm(f"delete dataset {name}@{version}?", abort=True)
    deleted = backend().datasets.delete_version(name, version, project=project)
    if json_out:
        emit_json(deleted)
        return
    console.print(f"deleted dataset {deleted.ref}; 'aimass gc' removes its file")
