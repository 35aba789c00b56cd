"""Robustness: the model's quality and stability under realistic input noise.

A seeded sample of the evaluation rows is perturbed (see
:mod:`aimass.evaluation.perturbations`) at each stated strength and scored
again. Classification reports accuracy, the drop from the same rows' clean
accuracy, and the *flip rate* — the share of rows whose predicted class
changed. Regression reports MAE, its increase, and the mean absolute change
of the prediction. ``changed`` is the share of rows the perturbation actually
altered (a perturbation that cannot apply to a text leaves it as it was).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from aimass.errors import NotImplementedFeature
from aimass.evaluation import plots
from aimass.evaluation.base import ReportContext, Section, SectionResult, register_section
from aimass.evaluation.html import esc, img, table, visible_whitespace
from aimass.evaluation.perturbations import get_perturbation, list_perturbations
from aimass.metrics import classification_metrics, regression_metrics

__all__ = ["Robustness"]

EXAMPLE_CHARS = 240


def _sample(ctx: ReportContext) -> np.ndarray:
    n = len(ctx.data)
    size = min(n, ctx.options.robustness_sample)
    return np.sort(ctx.rng("robustness-sample").choice(n, size=size, replace=False))


def _clip(text: str) -> str:
    return text if len(text) <= EXAMPLE_CHARS else text[: EXAMPLE_CHARS - 1] + "…"


class Robustness(Section):
    """Metrics and flip rates under each perturbation and strength."""

    key = "robustness"
    name = "robustness"
    title = "Robustness"

    def compute(self, ctx: ReportContext) -> SectionResult:
        explicit = ctx.options.perturbations is not None
        chosen = (
            [get_perturbation(n) for n in ctx.options.perturbations or ()]
            if explicit
            else list_perturbations()
        )
        idx = _sample(ctx)
        texts = [ctx.data.texts[i] for i in idx]
        classification = ctx.model.task == "classification"
        clean = self._metrics(ctx, idx, ctx.scores[idx])
        runs = [(p, s) for p in chosen for s in p.strengths]
        ctx.phase("perturbing and scoring", len(runs) * len(texts))
        rows, unavailable = [], []
        for perturbation, strength in runs:
            try:
                perturbed = perturbation.perturb(texts, strength=strength, seed=ctx.options.seed)
            except NotImplementedFeature as exc:
                if explicit:
                    raise
                unavailable.append({"perturbation": perturbation.name, "reason": exc.message})
                ctx.advance(len(texts))
                continue
            scores = ctx.score(perturbed)
            row = {
                "perturbation": perturbation.name,
                "strength": strength,
                "strength_meaning": perturbation.strength_meaning,
                "changed_rate": float(
                    np.mean([a != b for a, b in zip(texts, perturbed, strict=True)])
                ),
                **self._metrics(ctx, idx, scores, clean=clean),
            }
            if ctx.options.include_examples and texts:
                changed = [
                    i for i, (a, b) in enumerate(zip(texts, perturbed, strict=True)) if a != b
                ]
                pick = changed[0] if changed else 0
                row["example"] = {
                    "original": _clip(texts[pick]),
                    "perturbed": _clip(perturbed[pick]),
                }
            rows.append(row)
        metric = "accuracy" if classification else "mae"
        data: dict[str, Any] = {
            "sample_size": len(texts),
            "rows_available": len(ctx.data),
            "seed": ctx.options.seed,
            "clean": clean,
            "results": rows,
            "unavailable": unavailable,
            "perturbations": {
                p.name: {
                    "description": p.description,
                    "strengths": list(p.strengths),
                    "strength_meaning": p.strength_meaning,
                }
                for p in chosen
            },
        }
        summary: dict[str, Any] = {}
        figures = {}
        if rows:
            figures["robustness"] = plots.robustness_plot(rows, metric=metric, clean=clean[metric])
            if classification:
                worst = max(rows, key=lambda r: r["flip_rate"])
                summary = {
                    "worst_flip_rate": worst["flip_rate"],
                    "worst_perturbation": f"{worst['perturbation']}@{worst['strength']:g}",
                }
            else:
                worst = max(rows, key=lambda r: r["mae_increase"])
                summary = {
                    "worst_mae_increase": worst["mae_increase"],
                    "worst_perturbation": f"{worst['perturbation']}@{worst['strength']:g}",
                }
        return SectionResult(data=data, figures=figures, summary=summary)

    @staticmethod
    def _metrics(
        ctx: ReportContext,
        idx: np.ndarray,
        scores: np.ndarray,
        *,
        clean: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Metrics of ``scores`` on the sampled rows (with changes against ``clean``)."""
        y_true = ctx.y_true[idx]
        if ctx.model.task == "classification":
            pred = scores.argmax(axis=1)
            m = classification_metrics(y_true, pred, list(ctx.model.labels))
            out: dict[str, Any] = {"accuracy": m["accuracy"], "f1_macro": m["f1_macro"]}
            if clean is not None:
                out["accuracy_drop"] = clean["accuracy"] - m["accuracy"]
                out["flip_rate"] = float(np.mean(pred != ctx.y_pred[idx])) if len(idx) else 0.0
            return out
        values = scores[:, 0]
        m = regression_metrics(y_true, values)
        out = {"mae": m["mae"], "rmse": m["rmse"], "r2": m["r2"]}
        if clean is not None:
            out["mae_increase"] = m["mae"] - clean["mae"]
            out["mean_abs_change"] = (
                float(np.abs(values - ctx.y_pred[idx]).mean()) if len(idx) else 0.0
            )
        return out

    def render(self, data: dict[str, Any], figures: dict[str, str]) -> str:
        classification = "accuracy" in data["clean"]
        if classification:
            headers = (
                "perturbation",
                "strength",
                "changed",
                "accuracy",
                "drop",
                "flip rate",
                "macro F1",
            )
            rows = [
                (
                    r["perturbation"],
                    r["strength"],
                    r["changed_rate"],
                    r["accuracy"],
                    r["accuracy_drop"],
                    r["flip_rate"],
                    r["f1_macro"],
                )
                for r in data["results"]
            ]
            clean = f"clean accuracy {data['clean']['accuracy']:.4f} on the same rows"
        else:
            headers = (
                "perturbation",
                "strength",
                "changed",
                "MAE",
                "MAE increase",
                "mean |Δ prediction|",
                "R²",
            )
            rows = [
                (
                    r["perturbation"],
                    r["strength"],
                    r["changed_rate"],
                    r["mae"],
                    r["mae_increase"],
                    r["mean_abs_change"],
                    r["r2"],
                )
                for r in data["results"]
            ]
            clean = f"clean MAE {data['clean']['mae']:.4f} on the same rows"
        meanings = "".join(
            f"<li><b>{esc(name)}</b>: {esc(p['description'])}; "
            f"strength = {esc(p['strength_meaning'])}</li>"
            for name, p in data["perturbations"].items()
        )
        unavailable = "".join(
            f"<li><b>{esc(u['perturbation'])}</b>: {esc(u['reason'])}</li>"
            for u in data["unavailable"]
        )
        examples = "".join(
            f"<tr><td>{esc(r['perturbation'])} {esc(format(r['strength'], 'g'))}</td>"
            f"<td>{esc(r['example']['original'])}</td>"
            f"<td>{esc(visible_whitespace(r['example']['perturbed']))}</td></tr>"
            for r in data["results"]
            if "example" in r
        )
        return (
            f'<p class="note">{esc(data["sample_size"])} of {esc(data["rows_available"])} rows '
            f"(seeded sample, seed {esc(data['seed'])}); {esc(clean)}. "
            "Flip rate: share of rows whose prediction changed.</p>"
            + table(headers, rows)
            + img(figures.get("robustness"), "metric under each perturbation")
            + f'<h3>Perturbations</h3><ul class="note">{meanings}</ul>'
            + (f'<h3>Unavailable</h3><ul class="note">{unavailable}</ul>' if unavailable else "")
            + (
                '<h3>Examples</h3><p class="note">Whitespace shown as ⇥ (tab), ↵ (newline), '
                "· (extra space).</p>"
                '<div class="wrap"><table><thead><tr><th>perturbation</th><th>original</th>'
                f"<th>perturbed</th></tr></thead><tbody>{examples}</tbody></table></div>"
                if examples
                else ""
            )
        )


register_section(Robustness())
