"""``aimass pipelines``: create (from a JSON or YAML spec), list, show, versions, alias,
unalias, delete-version, predict, evaluate."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from aimass.cli import _flows as flows
from aimass.cli import evaluate as ev
from aimass.cli._common import (
    JsonOpt,
    ProjectOpt,
    backend,
    command,
    console,
    emit_json,
    table,
)
from aimass.cli.evaluate import EXPLAIN_HELP, print_explanations
from aimass.errors import InvalidArgument
from aimass.schemas import PipelineVersionOut

app = typer.Typer(
    help="Pipelines: models and built-in steps (de-identify, route, threshold, ensemble, "
    "labels) composed and versioned.",
    no_args_is_help=True,
)

RefArg = Annotated[str, typer.Argument(help="NAME, NAME@VERSION or NAME@ALIAS.")]
MAX_SPEC_BYTES = 1_000_000


def read_spec(path: Path) -> dict[str, Any]:
    """A spec file: JSON (``.json``) or YAML (``.yaml``/``.yml``, with PyYAML installed)."""
    if not path.is_file():
        raise InvalidArgument(f"no spec file at {path}; give the path of a .json or .yaml file")
    if path.stat().st_size > MAX_SPEC_BYTES:
        raise InvalidArgument(f"{path} is over {MAX_SPEC_BYTES:,} bytes; a spec is a few steps")
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() in (".yaml", ".yml"):
        data = _yaml(text, path)
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidArgument(
                f"{path} is not valid JSON (line {exc.lineno}: {exc.msg}); name YAML files *.yaml",
                line=exc.lineno,
            ) from exc
    if not isinstance(data, dict):
        raise InvalidArgument(
            f"{path} must hold an object with 'steps', not a {type(data).__name__}"
        )
    return data


def _yaml(text: str, path: Path) -> Any:
    try:
        import yaml  # type: ignore[import-untyped]
    except ImportError as exc:
        raise InvalidArgument(
            f"{path} is YAML and PyYAML is not installed: 'pip install pyyaml', or write the "
            "spec as JSON"
        ) from exc
    try:
        return yaml.safe_load(text)  # safe_load: a spec builds no Python objects
    except yaml.YAMLError as exc:
        raise InvalidArgument(f"{path} is not valid YAML: {exc}") from exc


def _steps_line(version: PipelineVersionOut) -> str:
    return " → ".join(f"{s['name']}({s['type']})" for s in version.spec.get("steps", []))


@app.command("create")
@command
def create(
    file: Annotated[Path, typer.Argument(help="The spec: a .json or .yaml file.")],
    name: Annotated[str, typer.Option("--name", "-n", help="Pipeline name.")],
    description: Annotated[str, typer.Option(help="What the pipeline is for.")] = "",
    project: ProjectOpt = "default",
    json_out: JsonOpt = False,
) -> None:
    """Check a spec, pin its models (aliases resolved now) and store a new version."""
    version = backend().pipelines.create(
        read_spec(file), name=name, description=description, project=project
    )
    if json_out:
        emit_json(version)
        return
    state = "created" if version.created is not False else "unchanged: the same spec is"
    console.print(f"{state} [bold]{version.name}@{version.version}[/]")
    for step in version.spec["steps"]:
        pins = [step["pin"]] if "pin" in step else step.get("pins", [])
        for pin in pins:
            console.print(f"  step {step['name']}: {pin['requested']} pinned to {pin['model']}")


@app.command("list")
@command
def list_(project: ProjectOpt = "default", json_out: JsonOpt = False) -> None:
    """Pipelines with their latest version, models and aliases."""
    found = backend().pipelines.list(project=project)
    if json_out:
        emit_json(found)
        return
    table(
        "pipelines",
        ["name", "latest", "models", "aliases"],
        [[p.name, p.version, ", ".join(p.models), ", ".join(p.aliases) or "-"] for p in found],
    )


@app.command("show")
@command
def show(ref: RefArg, project: ProjectOpt = "default", json_out: JsonOpt = False) -> None:
    """A version's steps, pinned models and aliases."""
    version = backend().pipelines.get(ref, project=project)
    if json_out:
        emit_json(version)
        return
    console.print(
        f"[bold]{version.name}@{version.version}[/]  aliases {', '.join(version.aliases) or '-'}"
    )
    if version.description:
        console.print(f"  {version.description}")
    console.print(f"  steps: {_steps_line(version)}")
    console.print(f"  models: {', '.join(version.models)}")
    console.print(f"  created {version.created_at:%Y-%m-%d %H:%M} by {version.created_by or '-'}")
    for name, report in version.evaluations.items():
        numbers = ", ".join(
            f"{key} {report[key]:.3f}"
            for key in ("accuracy", "f1_macro")
            if isinstance(report.get(key), float)
        )
        console.print(f"  report {name}: {numbers or '-'}, verdict {report.get('verdict', '-')}")


@app.command("versions")
@command
def versions(
    name: Annotated[str, typer.Argument(help="Pipeline name.")],
    project: ProjectOpt = "default",
    json_out: JsonOpt = False,
) -> None:
    """Every version of a pipeline."""
    found = backend().pipelines.versions(name, project=project)
    if json_out:
        emit_json(found)
        return
    table(
        f"versions of {name}",
        ["version", "models", "aliases", "created"],
        [
            [v.version, ", ".join(v.models), ", ".join(v.aliases) or "-", f"{v.created_at:%c}"]
            for v in found
        ],
    )


@app.command("alias")
@command
def alias(
    name: Annotated[str, typer.Argument(help="Pipeline name.")],
    alias_name: Annotated[str, typer.Argument(metavar="ALIAS", help="e.g. production.")],
    version: Annotated[int, typer.Argument(help="The version to point it at.")],
    project: ProjectOpt = "default",
    json_out: JsonOpt = False,
) -> None:
    """Point an alias at a version."""
    moved = backend().pipelines.set_alias(name, alias_name, version, project=project)
    if json_out:
        emit_json(moved)
        return
    console.print(f"{name}@{alias_name} → version {moved.version}")


@app.command("unalias")
@command
def unalias(
    name: Annotated[str, typer.Argument(help="Pipeline name.")],
    alias_name: Annotated[str, typer.Argument(metavar="ALIAS")],
    project: ProjectOpt = "default",
) -> None:
    """Remove an alias."""
    backend().pipelines.delete_alias(name, alias_name, project=project)
    console.print(f"removed alias {alias_name!r} of pipeline {name}")


@app.command("delete-version")
@command
def delete_version(
    name: Annotated[str, typer.Argument(help="Pipeline name.")],
    version: Annotated[int, typer.Argument(help="Version number.")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    project: ProjectOpt = "default",
    json_out: JsonOpt = False,
) -> None:
    """Delete a version that no alias points at.

    Its reports stay in the artifact store until 'aimass gc' removes what nothing
    refers to any more.
    """
    if not yes:
        typer.confirm(f"delete pipeline {name}@{version}?", abort=True)
    deleted = backend().pipelines.delete_version(name, version, project=project)
    if json_out:
        emit_json(deleted)
        return
    console.print(f"deleted pipeline {deleted.name}@{deleted.version}")


@app.command("predict")
@command
def predict(
    ref: RefArg,
    texts: Annotated[list[str], typer.Argument(help="Texts to run through the pipeline.")],
    explain: Annotated[str | None, typer.Option(help=EXPLAIN_HELP)] = None,
    project: ProjectOpt = "default",
    json_out: JsonOpt = False,
) -> None:
    """Run texts through a pipeline: the answer, the deciding step and the path taken."""
    answer = backend().pipelines.predict(ref, texts, explain=explain, project=project)
    results = answer.predictions
    if json_out:
        emit_json([{"text": t, **r} for t, r in zip(texts, results, strict=True)])
        return
    if explain:
        print_explanations([r for r in results if r.get("explanation")])
    table(
        f"{answer.pipeline}@{answer.version}",
        ["text", "label", "score", "decided by", "path"],
        [
            [
                t[:60],
                r["label"],
                f"{r['score']:.3f}" if isinstance(r.get("score"), float) else "-",
                _decider(r),
                " → ".join(entry["step"] for entry in r["trace"]),
            ]
            for t, r in zip(texts, results, strict=True)
        ],
    )


@app.command("evaluate")
@command
def evaluate(
    ref: RefArg,
    dataset: ev.DatasetOpt,
    split: ev.SplitOpt = "test",
    group_field: ev.GroupFieldOpt = None,
    out: ev.OutOpt = None,
    perturbation: ev.PerturbationOpt = None,
    robustness_sample: ev.RobustnessOpt = 500,
    min_group_size: ev.MinGroupOpt = 20,
    explain_method: ev.ExplainMethodOpt = "integrated-gradients",
    explain_examples: ev.ExplainExamplesOpt = 4,
    examples: ev.ExamplesOpt = True,
    seed: ev.SeedOpt = 0,
    project: ProjectOpt = "default",
    json_out: JsonOpt = False,
) -> None:
    """Build the evaluation report of a pipeline version and record it on the version.

    The classification report of the pipeline's answers, abstentions counted wrong.
    """
    options = ev.report_options(
        seed=seed,
        robustness_sample=robustness_sample,
        min_group_size=min_group_size,
        explain_method=explain_method,
        explain_examples=explain_examples,
        examples=examples,
        perturbation=perturbation,
        measure_memory=False,
    )
    spec = {
        "pipeline": ref,
        "dataset": dataset,
        "split": split,
        "group_field": group_field,
        "options": options,
    }
    with ev.report_progress(json_out) as progress:
        version, name, html, report = flows.evaluate_pipeline(
            backend(), spec, project=project, callbacks=progress
        )
    if out is not None:
        html, report = ev.move_report(html, report, out)
    if json_out:
        emit_json(
            {
                "pipeline": version,
                "report": name,
                "html": str(html),
                "document": json.loads(report.read_text("utf-8")),
            }
        )
        return
    ev.print_summary(f"{version.name}@{version.version}", version.evaluations[name], html)


def _decider(result: dict[str, Any]) -> str:
    decided = result.get("decided_by") or {}
    model = decided.get("model") or "+".join(decided.get("models", []))
    return f"{decided.get('step', '-')} ({model})" if model else "-"
