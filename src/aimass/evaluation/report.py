"""Build an evaluation report: run the task's sections, validate the JSON, render the HTML."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aimass._version import __version__
from aimass.errors import InvalidArgument
from aimass.evaluation.base import (
    OK,
    EvaluationData,
    ModelUnderTest,
    ReportContext,
    ReportOptions,
    get_report_sections,
    get_section,
)
from aimass.evaluation.html import data_uri, esc, page, verdict_badge, verdict_box
from aimass.evaluation.schema import FORMAT, FORMAT_VERSION, validate_report
from aimass.evaluation.verdicts import DEFAULT_THRESHOLDS, report_verdict, section_verdict

__all__ = ["Report", "build_report", "check_labels", "render_html"]

# Headline numbers shown as cards at the top of the page, in order, with their format.
_CARDS = (
    ("accuracy", "accuracy", "{:.4f}"),
    ("f1_macro", "macro F1", "{:.4f}"),
    ("mae", "MAE", "{:.4g}"),
    ("rmse", "RMSE", "{:.4g}"),
    ("r2", "R²", "{:.4f}"),
    ("ece", "calibration error (ECE)", "{:.4f}"),
    ("demographic_parity_difference", "demographic-parity diff.", "{:.4f}"),
    ("equalized_odds_difference", "equalized-odds diff.", "{:.4f}"),
    ("mae_difference", "MAE gap between groups", "{:.4g}"),
    ("worst_flip_rate", "worst flip rate", "{:.4f}"),
    ("worst_mae_increase", "worst MAE increase", "{:.4g}"),
    ("perplexity", "perplexity", "{:.4g}"),
    ("tokens", "tokens scored", "{:,}"),
    ("entity_f1", "entity F1", "{:.4f}"),
    ("token_accuracy", "tag accuracy", "{:.4f}"),
    ("perplexity_ratio", "perplexity ratio between groups", "{:.4g}"),
    ("entity_f1_difference", "entity F1 gap between groups", "{:.4f}"),
    ("worst_perplexity_ratio", "worst perplexity × under perturbation", "{:.4g}"),
    ("worst_f1_drop", "worst entity-F1 drop", "{:.4f}"),
    ("latency_ms", "latency, 1 item (ms)", "{:.1f}"),
    ("throughput_per_s", "throughput, batched (/s)", "{:.1f}"),
)

_VERDICT_MEANING = {
    "pass": "every section is within the thresholds aimass checks.",
    "warn": "look at the reasons below before approving this model.",
    "fail": "at least one section shows a problem that should block approval as it is.",
}


@dataclass
class Report:
    """A finished report: the JSON document and the figures the HTML embeds."""

    document: dict[str, Any]
    figures: dict[str, dict[str, bytes]] = field(default_factory=dict)

    @property
    def summary(self) -> dict[str, Any]:
        """The headline numbers."""
        return dict(self.document["summary"])

    def json_bytes(self) -> bytes:
        """``report.json`` content (UTF-8, indented)."""
        return (json.dumps(self.document, indent=2, ensure_ascii=False) + "\n").encode()

    def html(self) -> str:
        """``report.html`` content: one self-contained page."""
        return render_html(self.document, self.figures)


def _check_classes(model_labels: tuple[str, ...], labels: list[Any]) -> None:
    unknown = sorted({str(v) for v in labels} - set(model_labels))
    if unknown:
        shown = ", ".join(repr(u) for u in unknown[:10])
        raise InvalidArgument(
            f"the dataset's labels do not match the model's: {shown} "
            f"{'is' if len(unknown) == 1 else 'are'} not among the model's classes "
            f"({', '.join(model_labels)}); evaluate on data labelled with the same classes",
            unknown_labels=unknown[:10],
        )


def _check_numbers(model_labels: tuple[str, ...], labels: list[Any]) -> None:
    bad = next((v for v in labels if isinstance(v, bool) or not isinstance(v, int | float)), None)
    if bad is not None:
        raise InvalidArgument(
            f"the dataset's labels do not match the model's: a regression model needs numeric "
            f"labels, the dataset has {bad!r}"
        )


def _check_tags(model_labels: tuple[str, ...], labels: list[Any]) -> None:
    if any(not isinstance(row, list | tuple) for row in labels):
        raise InvalidArgument(
            "the dataset's labels do not match the model's: a token-classification model needs "
            "a tokens dataset (a BIO tag per token); import one with --kind tokens"
        )
    unknown = sorted({str(t) for row in labels for t in row} - set(model_labels))
    if unknown:
        shown = ", ".join(repr(u) for u in unknown[:10])
        raise InvalidArgument(
            f"the dataset's tags do not match the model's: {shown} "
            f"{'is' if len(unknown) == 1 else 'are'} not among the tags the model predicts "
            f"({', '.join(model_labels)}); evaluate on data tagged with the same entity types",
            unknown_labels=unknown[:10],
        )


# How the labels of each labelled task are checked. Language-model tasks are absent:
# their rows are their own supervision, so they need no labels.
_LABEL_CHECKS: dict[str, Callable[[tuple[str, ...], list[Any]], None]] = {
    "classification": _check_classes,
    "regression": _check_numbers,
    "token-classification": _check_tags,
}


def check_labels(task: str, model_labels: tuple[str, ...], labels: list[Any]) -> None:
    """Refuse evaluation data whose labels the model cannot predict (or of the wrong type).

    Args:
        task: The model's task.
        model_labels: Classes (classification) or tags (token classification) it predicts.
        labels: The labels of the evaluation rows (one per row; a tag list for NER; ``None``
            for unlabelled rows, which only language models accept).
    """
    if not labels:
        raise InvalidArgument("the evaluation split has no rows; choose another split with --split")
    check = _LABEL_CHECKS.get(task)
    if check is None:
        return
    if any(v is None for v in labels):
        raise InvalidArgument("the evaluation dataset is unlabelled; evaluation needs true labels")
    check(model_labels, labels)


def _check_groups(data: EvaluationData) -> None:
    if data.group_field is None:
        return
    if data.group_field not in data.fields:
        fields = ", ".join(data.fields) or "none"
        raise InvalidArgument(
            f"group field {data.group_field!r} does not exist in dataset {data.ref} "
            f"(its fields: {fields}); import the data with that column to group by it",
            field=data.group_field,
        )
    if data.groups is None or len(data.groups) != len(data.texts):
        raise InvalidArgument(f"group values for field {data.group_field!r} are missing")


def build_report(
    model: ModelUnderTest,
    data: EvaluationData,
    options: ReportOptions | None = None,
    *,
    on_phase: Callable[[str, int], None] | None = None,
    on_advance: Callable[[int], None] | None = None,
) -> Report:
    """Evaluate ``model`` on ``data`` and return the validated report.

    Args:
        model: The model version, as callables and facts.
        data: The labelled evaluation rows (and the group field's values).
        options: Seeds, sample sizes, what to include.
        on_phase: Progress: a named step of N units starts (may raise Cancelled).
        on_advance: Progress: N units are done.

    Raises:
        InvalidArgument: labels that do not match the model's, an unknown group field.
        UnsupportedModel: a task without a report plan.
    """
    options = options or ReportOptions()
    sections = get_report_sections(model.task)
    check_labels(model.task, model.labels, data.labels)
    _check_groups(data)
    ctx = ReportContext(model, data, options, on_phase=on_phase, on_advance=on_advance)
    documents: dict[str, Any] = {}
    figures: dict[str, dict[str, bytes]] = {}
    summary: dict[str, Any] = {"task": model.task, "rows": len(data)}
    timings: dict[str, float] = {}
    for section in sections:
        started = time.perf_counter()
        result = section.compute(ctx)
        timings[section.name] = round(time.perf_counter() - started, 3)
        documents[section.name] = {
            "key": section.key,
            "title": section.title,
            "status": result.status,
            "reason": result.reason,
            "data": result.data if result.status == OK else {},
            "figures": sorted(result.figures),
            "notes": result.notes,
        }
        figures[section.name] = result.figures
        summary.update(result.summary)
    dataset = {
        "name": data.name,
        "version": data.version,
        "digest": data.digest,
        "split": data.split,
        "rows": len(data),
        "group_field": data.group_field,
        "kind": data.kind,
    }
    for doc in documents.values():
        doc["verdict"] = section_verdict(doc, dataset, DEFAULT_THRESHOLDS).to_dict()
    verdict = {
        **report_verdict(documents).to_dict(),
        "thresholds": DEFAULT_THRESHOLDS.to_dict(),
    }
    summary["verdict"] = verdict["status"]
    document = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "aimass_version": __version__,
        "model": {
            "name": model.name,
            "version": model.version,
            "digest": model.digest,
            "task": model.task,
            "architecture": model.architecture,
            "labels": list(model.labels),
        },
        "dataset": dataset,
        "options": options.to_dict(),
        # pass/warn/fail against aimass.evaluation.verdicts' thresholds (the worst section).
        "verdict": verdict,
        "summary": summary,
        "sections": documents,
        # Wall seconds per section (the first one also scores the clean rows).
        "timings": timings,
    }
    validate_report(document)
    return Report(document=document, figures=figures)


def render_html(
    document: dict[str, Any], figures: dict[str, dict[str, bytes]] | None = None
) -> str:
    """The report page for a validated ``document`` (figures: section → name → PNG)."""
    figures = figures or {}
    model, dataset, summary = document["model"], document["dataset"], document["summary"]
    body, nav = [], []
    for name, section in document["sections"].items():
        nav.append((name, section["title"]))
        status = section["status"]
        verdict = section.get("verdict")  # absent in reports stored before verdicts
        badges = verdict_badge(verdict["status"]) if verdict else ""
        if status != OK or not verdict:
            badges += f'<span class="badge {esc(status)}">{esc(status)}</span>'
        parts = [f'<section id="{esc(name)}"><h2>{esc(section["title"])}{badges}</h2>']
        if verdict and verdict["reasons"] and status == OK:
            parts.append(verdict_box(verdict["status"], verdict["reasons"]))
        if status == OK:
            uris = {k: data_uri(v) for k, v in figures.get(name, {}).items()}
            parts.append(get_section(section["key"]).render(section["data"], uris))
        else:
            parts.append(f'<p class="reason">{esc(section["reason"])}</p>')
        parts.extend(f'<p class="note">Note: {esc(note)}</p>' for note in section["notes"])
        parts.append("</section>")
        body.append("".join(parts))
    cards = [
        (label, form.format(summary[key]))
        for key, label, form in _CARDS
        if summary.get(key) is not None
    ]
    subtitle = (
        f"{model['task']} model {model['name']}@{model['version']} ({model['architecture']}) on "
        f"{dataset['name']}@{dataset['version']}, split {dataset['split']}, "
        f"{dataset['rows']:,} rows"
        + (f", grouped by {dataset['group_field']}" if dataset["group_field"] else "")
    )
    banner = ""
    if overall := document.get("verdict"):
        lead = (
            f'<p class="overall">Overall verdict: {verdict_badge(overall["status"])} '
            f"{esc(_VERDICT_MEANING[overall['status']])}</p>"
        )
        banner = verdict_box(overall["status"], overall["reasons"], lead=lead)
    seconds = sum(document.get("timings", {}).values())
    footer = (
        f"Generated by aimass {esc(document['aimass_version'])} at {esc(document['created_at'])} "
        f"in {seconds:.0f} s. "
        f"Model digest <code>{esc(model['digest'][:16])}…</code>, dataset digest "
        f"<code>{esc(dataset['digest'][:16])}…</code>. "
        "The same numbers are in <code>report.json</code> "
        f"({esc(document['format'])} v{esc(document['format_version'])})."
    )
    return page(
        title=f"Evaluation report: {model['name']}@{model['version']}",
        subtitle=subtitle,
        cards=cards,
        nav=nav,
        body="".join(body),
        footer=footer,
        banner=banner,
    )
