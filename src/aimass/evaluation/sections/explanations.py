"""Example explanations: a few evaluation rows with the words that drove each prediction
(for a NER tagger: each entity it found in the row)."""

from __future__ import annotations

from typing import Any

import numpy as np

from aimass.errors import UnsupportedModel
from aimass.evaluation.base import (
    NOT_APPLICABLE,
    ReportContext,
    Section,
    SectionResult,
    register_section,
)
from aimass.evaluation.html import esc, fmt, highlight
from aimass.metrics import entity_spans

__all__ = ["Explanations"]

READABLE_CHARS = 400


def pick_examples(ctx: ReportContext, k: int) -> list[int]:
    """Rows to explain: alternately the most confident right and the most confident wrong
    prediction (classification), or the best and the worst (regression); short texts first."""
    short = np.array([len(t) <= READABLE_CHARS for t in ctx.data.texts])
    if ctx.model.task == "classification":
        confidence = ctx.scores.max(axis=1)
        right = ctx.y_pred == ctx.y_true
        first = [i for i in np.argsort(-confidence) if right[i]]
        second = [i for i in np.argsort(-confidence) if not right[i]]
    else:
        error = np.abs(ctx.y_pred - ctx.y_true)
        first, second = list(np.argsort(error)), list(np.argsort(-error))
    return _alternate(first, second, short, k)


def pick_tagged_examples(ctx: ReportContext, k: int) -> list[int]:
    """Rows to explain for a tagger: alternately one whose entities were all found (and
    nothing else) and one with a missed or wrong entity; short texts first."""
    short = np.array([len(t) <= READABLE_CHARS for t in ctx.data.texts])
    right, wrong = [], []
    for i, (gold, pred) in enumerate(zip(ctx.data.labels, ctx.predicted_tags, strict=True)):
        found = entity_spans(pred)
        if set(entity_spans(gold)) != set(found):
            wrong.append(i)
        elif found:
            right.append(i)
    return _alternate(right, wrong, short, k)


def _alternate(first: list[Any], second: list[Any], short: np.ndarray, k: int) -> list[int]:
    """Up to ``k`` rows taken from ``first`` and ``second`` in turn, short texts first."""
    n = len(short)
    first = sorted(first, key=lambda i: not short[i])  # stable: keeps the order among short texts
    second = sorted(second, key=lambda i: not short[i])
    picked: list[int] = []
    for a, b in zip(first + [None] * n, second + [None] * n, strict=False):
        for i in (a, b):
            if i is not None and int(i) not in picked and len(picked) < k:
                picked.append(int(i))
        if len(picked) >= k or (a is None and b is None):
            break
    return picked


class Explanations(Section):
    """Highlighted example rows, explained with the report's explainer."""

    key = "explanations"
    name = "explanations"
    title = "Explanations"

    def compute(self, ctx: ReportContext) -> SectionResult:
        options = ctx.options
        if ctx.model.explain is None:
            return SectionResult.skipped(
                ctx.model.explain_unsupported or "this model cannot be explained",
                status=NOT_APPLICABLE,
            )
        if not options.include_examples:
            return SectionResult.skipped(
                "dataset texts are kept out of this report (--no-examples)"
            )
        if options.explain_examples == 0:
            return SectionResult.skipped("no examples were asked for (--explain-examples 0)")
        tagger = ctx.model.task == "token-classification"
        rows = (pick_tagged_examples if tagger else pick_examples)(ctx, options.explain_examples)
        ctx.phase(f"explaining {len(rows)} examples", len(rows))
        try:
            explained = []
            for i in rows:
                explained.extend(ctx.model.explain([ctx.data.texts[i]]))
                ctx.advance(1)
        except UnsupportedModel as exc:
            return SectionResult.skipped(exc.message, status=NOT_APPLICABLE)
        examples = []
        for i, explanation in zip(rows, explained, strict=True):
            # The text the model saw: the offsets of the words are into it (a pipeline may
            # have de-identified the row before its model read it).
            text = explanation.get("text") or ctx.data.texts[i]
            example: dict[str, Any] = {"row": i, "text": text}
            if tagger:
                tokens = ctx.data.tokens[i] if ctx.data.tokens is not None else text.split()
                example.update(
                    true=_entity_list(tokens, ctx.data.labels[i]),
                    predicted=_entity_list(tokens, ctx.predicted_tags[i]),
                )
            elif ctx.model.task == "classification":
                example.update(
                    true=ctx.model.labels[int(ctx.y_true[i])],
                    predicted=ctx.model.labels[int(ctx.y_pred[i])],
                    confidence=float(ctx.scores[i].max()),
                )
            else:
                example.update(true=float(ctx.y_true[i]), predicted=float(ctx.y_pred[i]))
            example["explanation"] = {
                k: v for k, v in explanation.items() if k not in ("text", "tokens", "entities")
            }
            if "entities" in explanation:
                example["explanation"]["entities"] = [
                    {k: v for k, v in e.items() if k != "tokens"} for e in explanation["entities"]
                ]
            examples.append(example)
        method = examples[0]["explanation"]["method"] if examples else options.explain_method
        return SectionResult(data={"method": method, "examples": examples})

    def render(self, data: dict[str, Any], figures: dict[str, str]) -> str:
        parts = [
            f'<p class="note">Method: <b>{esc(data["method"])}</b>. '
            '<span class="legend"><span style="background:rgba(22,163,74,.6)">supports the '
            'explained class</span><span style="background:rgba(220,38,38,.6)">speaks against it'
            '</span><span style="background:rgba(37,99,235,.6)">attention share</span></span> '
            "Hover a word for its score.</p>"
        ]
        for ex in data["examples"]:
            e = ex["explanation"]
            signed = e["output"] != "attention"
            meta = f"row {ex['row']}: true {fmt(ex['true'])}, predicted {fmt(ex['predicted'])}"
            if "confidence" in ex:
                meta += f" ({ex['confidence']:.1%})"
            if "entities" in e:
                meta += f"; explains the {e['output']} of each entity's tags"
                lines = (
                    "".join(
                        f'<div class="meta">{esc(_about(entity))}</div>'
                        f"{highlight(ex['text'], entity['words'], signed=signed)}"
                        for entity in e["entities"]
                    )
                    or '<div class="meta">the model found no entity in this text</div>'
                )
            else:
                meta += f"; explains the {e['output']} of {e['target']}"
                delta = e.get("details", {}).get("convergence_delta")
                if delta is not None:
                    meta += f"; convergence delta {delta:+.2e}"
                lines = highlight(ex["text"], e["words"], signed=signed)
            if e.get("truncated"):
                meta += "; the model saw only the first part of this text"
            parts.append(f'<div class="explained"><div class="meta">{esc(meta)}</div>{lines}</div>')
        return "".join(parts)


def _about(entity: dict[str, Any]) -> str:
    """One explained entity's heading: its type and text (and convergence delta)."""
    delta = entity.get("details", {}).get("convergence_delta")
    tail = "" if delta is None else f"; convergence delta {delta:+.2e}"
    return f"{entity['label']} {entity['text']!r}{tail}"


def _entity_list(tokens: list[str], tags: list[str]) -> str:
    """``PER Alice Smith, LOC Paris``: the entities of a tagged row, as a reader sees them."""
    spans = entity_spans(tags)
    return ", ".join(f"{label} {' '.join(tokens[s:e])}" for label, s, e in spans) or "none"


register_section(Explanations())
