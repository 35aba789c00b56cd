"""``aimass pii``: scan or de-identify a file, manage the project's pseudonymization key."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from aimass.cli._common import (
    JsonOpt,
    ProjectOpt,
    command,
    console,
    emit_json,
    err_console,
    local_workspace,
    settings,
    table,
)
from aimass.errors import InvalidArgument

app = typer.Typer(help="Find and remove personal data (PII) in text.", no_args_is_help=True)
key_app = typer.Typer(help="The project's pseudonymization key.", no_args_is_help=True)
app.add_typer(key_app, name="key")

FieldOpt = Annotated[
    str, typer.Option("--field", help="Text field of JSONL/CSV/Parquet input (default: text).")
]
RecognizersOpt = Annotated[
    str | None, typer.Option(help="Comma-separated recognizers (see 'aimass pii recognizers').")
]
NerModelOpt = Annotated[
    str | None,
    typer.Option(
        "--ner-model",
        help="A registered NER model (e.g. zh-ner@production from 'aimass recipes "
        "chinese-ner') that finds persons, places and organisations too, besides the "
        "built-in lac-zh (Chinese) and presidio-en (English).",
    ),
]


PathArg = Annotated[
    Path,
    typer.Argument(
        help="A .txt (one text per line), JSONL, CSV or Parquet file; '-' reads text lines "
        "from stdin."
    ),
]


def _read(path: Path, field: str) -> tuple[list[int], list[str], list[dict[str, Any]] | None]:
    """Line numbers, texts and (for structured files) the rows of ``path`` ('-': stdin)."""
    if str(path) == "-" or path.suffix.lower() in (".txt", ".text", ""):
        if str(path) == "-":
            lines = sys.stdin.read().splitlines()
        elif path.is_file():
            lines = path.read_text(encoding="utf-8").splitlines()
        else:
            raise InvalidArgument(
                f"file {path} does not exist; give a .txt, JSONL, CSV or Parquet file, "
                "or '-' to read lines from stdin",
                path=str(path),
            )
        return list(range(1, len(lines) + 1)), lines, None
    from aimass.data.readers import detect_format, read_records

    records = list(read_records(path, detect_format(path, None), max_row_bytes=10**8))
    missing = next((r.line for r in records if not isinstance(r.fields.get(field), str)), None)
    if missing is not None:
        raise InvalidArgument(
            f"line {missing}: field {field!r} is missing or not text; use --field"
        )
    return (
        [r.line for r in records],
        [r.fields[field] for r in records],
        [r.fields for r in records],
    )


def _names(recognizers: str | None) -> list[str] | None:
    return [n.strip() for n in recognizers.split(",") if n.strip()] if recognizers else None


def _engine(mode: str, recognizers: str | None, ner_model: str | None, project: str) -> Any:
    """The de-identifier for these options: with a NER model, the one dataset imports build."""
    names = _names(recognizers)
    if ner_model is None:
        from aimass.data.deidentify import Deidentifier, load_project_key

        # No registry needed: de-identifying a file must not create or open a store.
        key = load_project_key(settings().home, project) if mode == "pseudonymize" else None
        return Deidentifier(names, mode=mode, key=key)
    from aimass.workspace.privacy import DeidentifyOptions, build_deidentifier

    options = DeidentifyOptions(
        mode=mode, recognizers=tuple(names) if names else None, ner_model=ner_model
    )
    return build_deidentifier(local_workspace("pii --ner-model"), options, project=project)


@app.command("recognizers")
@command
def recognizers(json_out: JsonOpt = False) -> None:
    """The registered recognizers and the entity types they find."""
    from aimass.data.deidentify import create_recognizer, list_recognizers

    found = [create_recognizer(n) for n in list_recognizers()]
    if json_out:
        emit_json([r.describe() for r in found])
        return
    table("PII recognizers", ["name", "entities"], [[r.name, ", ".join(r.entities)] for r in found])


@app.command("scan")
@command
def scan(
    path: PathArg,
    field: FieldOpt = "text",
    recognizers: RecognizersOpt = None,
    ner_model: NerModelOpt = None,
    project: ProjectOpt = "default",
    show_values: Annotated[
        bool, typer.Option("--show-values", help="Print the found values (off: they are PII).")
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """List the PII found in a file: line, entity type, position, recognizer, score."""
    lines, texts, _rows = _read(path, field)
    engine = _engine("mask", recognizers, ner_model, project)
    findings = []
    for line, text, spans in zip(lines, texts, engine.scan(texts), strict=True):
        for s in spans:
            item: dict[str, Any] = {
                "line": line,
                "entity": s.entity,
                "start": s.start,
                "end": s.end,
                "score": round(s.score, 3),
                "recognizer": s.recognizer,
            }
            if show_values:
                item["value"] = text[s.start : s.end]
            findings.append(item)
    counts: dict[str, int] = {}
    for f in findings:
        counts[f["entity"]] = counts.get(f["entity"], 0) + 1
    if json_out:
        emit_json({"texts": len(texts), "counts": counts, "findings": findings})
        return
    columns = ["line", "entity", "span", "recognizer", "score"] + (["value"] if show_values else [])
    table(
        f"PII in {'stdin' if str(path) == '-' else path.name}",
        columns,
        [
            [f["line"], f["entity"], f"{f['start']}-{f['end']}", f["recognizer"], f["score"]]
            + ([f["value"]] if show_values else [])
            for f in findings
        ],
    )
    console.print(
        f"{len(findings)} findings in {len(texts)} texts: "
        + (", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none")
    )


@app.command("apply")
@command
def apply(
    path: PathArg,
    mode: Annotated[str, typer.Option(help="mask, redact or pseudonymize.")] = "mask",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here (default: stdout).")
    ] = None,
    field: FieldOpt = "text",
    recognizers: RecognizersOpt = None,
    ner_model: NerModelOpt = None,
    project: ProjectOpt = "default",
    json_out: JsonOpt = False,
) -> None:
    """Write a de-identified copy (.txt lines, or JSONL rows with the field replaced)."""
    _lines, texts, rows = _read(path, field)
    engine = _engine(mode, recognizers, ner_model, project)
    cleaned = engine.apply(texts)
    if rows is None:
        body = "".join(t + "\n" for t in cleaned)
    else:
        body = "".join(
            json.dumps({**row, field: text}, ensure_ascii=False) + "\n"
            for row, text in zip(rows, cleaned, strict=True)
        )
    if output is None:
        sys.stdout.write(body)
    else:
        output.write_text(body, encoding="utf-8")
    report = engine.report.to_dict()
    if json_out:
        err_console.print_json(json.dumps(report, ensure_ascii=False))
    else:
        err_console.print(
            f"{report['texts_changed']} of {report['texts']} texts changed ({mode}): "
            + (", ".join(f"{k} {v}" for k, v in report["counts"].items()) or "no PII found")
        )


@key_app.command("create")
@command
def key_create(project: ProjectOpt = "default") -> None:
    """Create the project's pseudonymization key (0600 file under AIMASS_HOME/keys)."""
    from aimass.data.deidentify import create_project_key, key_fingerprint, load_project_key

    path = create_project_key(settings().home, project)
    console.print(
        f"created {path} (key id {key_fingerprint(load_project_key(settings().home, project))}); "
        "back it up: pseudonyms cannot be recomputed without it"
    )
