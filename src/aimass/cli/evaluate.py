"""``aimass evaluate``, ``aimass reports``, and coloured output for ``predict --explain``."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.text import Text

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
from aimass.cli._flows import REPORT_FOLDER_PREFIX

app = typer.Typer(help="Evaluation reports attached to model versions.", no_args_is_help=True)

EXPLAIN_HELP = (
    "Explain each prediction (a NER tagger's: each entity; a masked LM's: each mask's top "
    "fill; a causal LM's: its generated text): integrated-gradients, attention or occlusion."
)

# The options every report command takes (models: ``aimass evaluate``; pipelines:
# ``aimass pipelines evaluate``).
DatasetOpt = Annotated[str, typer.Option(help="Labelled dataset NAME or NAME@VERSION.")]
SplitOpt = Annotated[str, typer.Option(help="train, validation or test.")]
GroupFieldOpt = Annotated[str | None, typer.Option(help="Dataset field to measure fairness by.")]


def _html_out(out: Path | None) -> Path | None:
    """``--out`` checked when the command line is read, not after minutes of evaluation."""
    if out is not None and out.suffix.lower() not in (".html", ".htm"):
        raise typer.BadParameter(f"{str(out)!r} should name an .html file (e.g. report.html)")
    return out


OutOpt = Annotated[
    Path | None,
    typer.Option(help="Also write the HTML here (and the JSON beside it).", callback=_html_out),
]
RobustnessOpt = Annotated[int, typer.Option(help="Rows scored per perturbation.")]
MinGroupOpt = Annotated[int, typer.Option(help="Smallest fairness group compared.")]
ExplainMethodOpt = Annotated[str, typer.Option(help="Explainer for the example explanations.")]
ExplainExamplesOpt = Annotated[int, typer.Option(help="Examples to explain (0: none).")]
ExamplesOpt = Annotated[
    bool, typer.Option(help="Include dataset texts (explanations, perturbation examples).")
]
SeedOpt = Annotated[int, typer.Option(help="Seed for samples and perturbations.")]
PerturbationOpt = Annotated[
    list[str] | None,
    typer.Option(help="Perturbation to run (repeat; default: all that are available)."),
]


def report_options(
    *,
    seed: int,
    robustness_sample: int,
    min_group_size: int,
    explain_method: str,
    explain_examples: int,
    examples: bool,
    perturbation: list[str] | None,
    **more: Any,
) -> dict[str, Any]:
    """The ``options`` of an evaluation job from the shared report options (and ``more``).
    Validated where the job runs (EvaluateSpec), so remote mode needs no local stack."""
    options: dict[str, Any] = {
        "seed": seed,
        "robustness_sample": robustness_sample,
        "min_group_size": min_group_size,
        "explain_method": explain_method,
        "explain_examples": explain_examples,
        "include_examples": examples,
        **more,
    }
    if perturbation:
        options["perturbations"] = list(perturbation)
    return options


@contextlib.contextmanager
def report_progress(json_out: bool) -> Iterator[list[Any]]:
    """The progress callbacks of a report build: a bar on stderr, none with ``--json``."""
    from aimass.training.callbacks import LoopState, RichProgress

    progress = [] if json_out else [RichProgress(console=err_console)]
    try:
        yield progress
    finally:
        for callback in progress:
            callback.on_train_end(LoopState())


_HEADLINES = (
    "accuracy",
    "f1_macro",
    "coverage",
    "mae",
    "rmse",
    "r2",
    "perplexity",
    "loss",
    "tokens",
    "entity_f1",
    "entity_precision",
    "entity_recall",
    "token_accuracy",
    "ece",
    "demographic_parity_difference",
    "equalized_odds_difference",
    "mae_difference",
    "worst_flip_rate",
    "worst_mae_increase",
    "worst_perplexity_ratio",
    "worst_f1_drop",
    "perplexity_ratio",
    "entity_f1_difference",
    "worst_perturbation",
    "latency_ms",
    "throughput_per_s",
)


# -- explanations ------------------------------------------------------------------------


def _shade(score: float, scale: float, *, signed: bool) -> str:
    """A background whose strength follows |score|: green for, red against, blue for attention."""
    strength = min(abs(score) / scale, 1.0) if scale else 0.0
    base = ((22, 163, 74) if score >= 0 else (220, 38, 38)) if signed else (37, 99, 235)
    r, g, b = (round(255 - (255 - c) * strength * 0.85) for c in base)
    return f"black on rgb({r},{g},{b})"


def explanation_text(text: str, words: list[dict[str, Any]], *, signed: bool = True) -> Text:
    """``text`` with every explained word shaded by its score."""
    scale = max((abs(w["score"]) for w in words), default=0.0)
    out, pos = Text(), 0
    for w in words:
        out.append(text[pos : w["start"]])
        out.append(text[w["start"] : w["end"]], style=_shade(w["score"], scale, signed=signed))
        pos = w["end"]
    out.append(text[pos:])
    return out


def _top_words(words: list[dict[str, Any]], output: str, *, k: int = 5) -> str:
    if output == "attention":
        top = sorted(words, key=lambda w: -w["score"])[:k]
        return "most attended: " + ", ".join(f"{w['word']} {w['score']:.3f}" for w in top)
    pro = [w for w in sorted(words, key=lambda w: -w["score"]) if w["score"] > 0][:k]
    con = [w for w in sorted(words, key=lambda w: w["score"]) if w["score"] < 0][:k]
    parts = []
    if pro:
        parts.append("for: " + ", ".join(f"{w['word']} {w['score']:+.3f}" for w in pro))
    if con:
        parts.append("against: " + ", ".join(f"{w['word']} {w['score']:+.3f}" for w in con))
    return "; ".join(parts) or "no word moved the output"


def print_explanations(results: list[dict[str, Any]]) -> None:
    """Each prediction with its coloured text, the strongest words, and the method's facts
    (a tagger's: each entity it found, explained on its own; a masked LM's: each fill)."""
    for result in results:
        e = result["explanation"]
        if "entities" in e:
            _print_entities(e, kind=next((k for k, key in _KINDS if key in result), ""))
            continue
        head = (
            f"{result['label']} ({result['score']:.3f})"
            if "label" in result
            else f"{result['value']:.4f}"
        )
        console.print(
            f"[bold]{head}[/]  explains the {e['output']} of {e['target']!r} ({e['method']})"
        )
        console.print(explanation_text(e["text"], e["words"], signed=e["output"] != "attention"))
        _print_notes(e["words"], e["output"], e["details"], truncated=bool(e.get("truncated")))


# What a prediction with explained entities is, by the field its result holds.
_KINDS = (("fill", "masks"), ("generation", "generated_text"))
_NOTHING = {
    "fill": "no mask within the model's length",
    "generation": "nothing generated",
    "": "no entities found",
}


def _print_entities(explanation: dict[str, Any], *, kind: str) -> None:
    """A tagger's explanation: every entity with the words that made the model find it (a
    masked LM's: every mask with the words that made the model fill it so; a causal LM's:
    the words that made it generate its text)."""
    if not explanation["entities"]:
        console.print(f"{_NOTHING[kind]} in {explanation['text']!r}", style="dim")
        console.print()
    output = explanation["output"]
    for entity in explanation["entities"]:
        label, text = escape(entity["label"]), escape(entity["text"])
        head = (
            f"{text} → [bold]{label}[/]  explains the {output} of this fill"
            if kind == "fill"
            else f"→ [bold]{label!r}[/]  explains the {output} of its tokens"
            if kind == "generation"
            else f"[bold]{label}[/] {text!r}  explains the {output} of its tags"
        )
        console.print(f"{head} ({explanation['method']})")
        console.print(explanation_text(explanation["text"], entity["words"]))
        _print_notes(entity["words"], explanation["output"], entity["details"])


def _print_notes(
    words: list[dict[str, Any]], output: str, details: dict[str, Any], *, truncated: bool = False
) -> None:
    """Under an explained text: its strongest words and the method's facts, dimmed."""
    notes = [_top_words(words, output)]
    delta = details.get("convergence_delta")
    if delta is not None:
        notes.append(f"convergence delta {delta:+.2e}")
    if truncated:
        notes.append("the model saw only the first part of this text")
    console.print("  " + "  |  ".join(notes), style="dim", highlight=False)
    console.print()


# -- evaluate -----------------------------------------------------------------------------


def move_report(html: Path, report_json: Path, out: Path) -> tuple[Path, Path]:
    """Move a downloaded report to ``out`` (the HTML) and ``out`` with ``.json`` (the
    JSON); the private temporary folder it was downloaded to is removed either way, so
    no copy of a report (it may quote dataset texts) is left behind."""
    html_out, json_out = Path(out), Path(out).with_suffix(".json")  # checked by _html_out
    try:
        html_out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(html, html_out)
        shutil.copyfile(report_json, json_out)
    finally:
        if html.parent.name.startswith(REPORT_FOLDER_PREFIX):
            shutil.rmtree(html.parent, ignore_errors=True)
    return html_out, json_out


def print_summary(subject: str, summary: dict[str, Any], html_path: Path) -> None:
    """A report's headline numbers and verdict, and where its HTML is."""
    rows = [[k, fmt_metric(summary[k])] for k in _HEADLINES if summary.get(k) is not None]
    table(
        f"{subject} on {summary.get('dataset')} "
        f"({summary.get('split')}, {summary.get('rows', '?')} rows)",
        ["metric", "value"],
        rows,
    )
    verdict = summary.get("verdict")
    if verdict:
        colour = {"pass": "green", "warn": "yellow", "fail": "red"}.get(verdict, "white")
        console.print(f"verdict: [bold {colour}]{verdict}[/] (the reasons are in the report)")
    console.print(f"report: {html_path}")


@command
def evaluate(
    ref: Annotated[str, typer.Argument(help="NAME@VERSION (or NAME@ALIAS) of the model.")],
    dataset: DatasetOpt,
    split: SplitOpt = "test",
    group_field: GroupFieldOpt = None,
    out: OutOpt = None,
    perturbation: PerturbationOpt = None,
    robustness_sample: RobustnessOpt = 500,
    min_group_size: MinGroupOpt = 20,
    explain_method: ExplainMethodOpt = "integrated-gradients",
    explain_examples: ExplainExamplesOpt = 4,
    examples: ExamplesOpt = True,
    memory: Annotated[bool, typer.Option(help="Measure serving memory in a fresh process.")] = True,
    generation_samples: Annotated[
        int, typer.Option(help="Generative models: held-out prompts answered in the report.")
    ] = 4,
    sample_tokens: Annotated[
        int, typer.Option(help="Generative models: most new tokens per sample (greedy).")
    ] = 32,
    seed: SeedOpt = 0,
    project: ProjectOpt = "default",
    json_out: JsonOpt = False,
) -> None:
    """Build the evaluation report of a model version on a dataset and attach it to the version."""
    options = report_options(
        seed=seed,
        robustness_sample=robustness_sample,
        min_group_size=min_group_size,
        explain_method=explain_method,
        explain_examples=explain_examples,
        examples=examples,
        perturbation=perturbation,
        measure_memory=memory,
        generation_samples=generation_samples,
        sample_tokens=sample_tokens,
    )
    spec = {
        "model": ref,
        "dataset": dataset,
        "split": split,
        "group_field": group_field,
        "options": options,
    }
    with report_progress(json_out) as progress:
        attachment, document, html_path = flows.evaluate(
            backend(), spec, project=project, callbacks=progress
        )
    if out is not None:
        html_path, _json = move_report(html_path, html_path.with_name("report.json"), out)
    if json_out:
        emit_json({"attachment": attachment, "html": str(html_path), "report": document})
        return
    print_summary(f"{attachment.model}@{attachment.version}", attachment.summary, html_path)


# -- reports ------------------------------------------------------------------------------


@app.command("list")
@command
def list_reports(
    ref: Annotated[str, typer.Argument(help="NAME, NAME@VERSION or NAME@ALIAS.")],
    project: ProjectOpt = "default",
    json_out: JsonOpt = False,
) -> None:
    """Evaluation reports attached to a model version, newest first."""
    found = backend().models.attachments(ref, kind="evaluation", project=project)
    if json_out:
        emit_json(found)
        return
    table(
        f"evaluation reports of {ref}",
        ["name", "created", "dataset", "split", "accuracy / MAE", "uri"],
        [
            [
                a.name,
                a.created_at.isoformat(timespec="seconds"),
                a.summary.get("dataset", "-"),
                a.summary.get("split", "-"),
                fmt_metric(a.summary.get("accuracy", a.summary.get("mae", "-"))),
                a.uri,
            ]
            for a in found
        ],
    )


@app.command("get")
@command
def get_report(
    ref: Annotated[str, typer.Argument(help="NAME, NAME@VERSION or NAME@ALIAS.")],
    out: Annotated[
        Path,
        typer.Option(help="Where to write the HTML (the JSON goes beside it).", callback=_html_out),
    ],
    name: Annotated[
        str | None, typer.Option(help="Report name (see 'aimass reports list'); default newest.")
    ] = None,
    project: ProjectOpt = "default",
) -> None:
    """Copy a stored evaluation report (HTML + JSON) out of the artifact store."""
    html_path, json_path = move_report(
        *flows.report_files(backend(), ref, name, project=project), out
    )
    console.print(f"wrote {html_path} and {json_path}")
