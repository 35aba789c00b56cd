"""Example explanations: a few evaluation rows with the words that drove each prediction."""

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

__all__ = ["Explanations"]

READABLE_CHARS = 400


def pick_examples(ctx: ReportContext, k: int) -> list[int]:
    """Rows to explain: alternately the most confident right and the most confident wrong
    prediction (classification), or the best and the worst (regression); short texts first."""
    n = len(ctx.data)
    short = np.array([len(t) <= READABLE_CHARS for t in ctx.data.texts])
    if ctx.model.task == "classification":
        confidence = ctx.scores.max(axis=1)
        right = ctx.y_pred == ctx.y_true
        first = [i for i in np.argsort(-confidence) if right[i]]
        second = [i for i in np.argsort(-confidence) if not right[i]]
    else:
        error = np.abs(ctx.y_pred - ctx.y_true)
        first, second = list(np.argsort(error)), list(np.argsort(-error))
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
        rows = pick_examples(ctx, options.explain_examples)
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
            if ctx.model.task == "classification":
                example.update(
                    true=ctx.model.labels[int(ctx.y_true[i])],
                    predicted=ctx.model.labels[int(ctx.y_pred[i])],
                    confidence=float(ctx.scores[i].max()),
                )
            else:
                example.update(true=float(ctx.y_true[i]), predicted=float(ctx.y_pred[i]))
            example["explanation"] = {
                k: v for k, v in explanation.items() if k not in ("text", "tokens")
            }
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
            meta += f"; explains the {e['output']} of {e['target']}"
            delta = e.get("details", {}).get("convergence_delta")
            if delta is not None:
                meta += f"; convergence delta {delta:+.2e}"
            if e.get("truncated"):
                meta += "; the model saw only the first part of this text"
            parts.append(
                f'<div class="explained"><div class="meta">{esc(meta)}</div>'
                f"{highlight(ex['text'], e['words'], signed=signed)}</div>"
            )
        return "".join(parts)


register_section(Explanations())
