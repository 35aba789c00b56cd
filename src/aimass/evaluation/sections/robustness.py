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

from abc import abstractmethod
from typing import Any, ClassVar

import numpy as np

from aimass.errors import InvalidArgument, NotImplementedFeature
from aimass.evaluation import plots
from aimass.evaluation.base import ReportContext, Section, SectionResult, register_section
from aimass.evaluation.html import esc, img, table, visible_whitespace
from aimass.evaluation.perturbations import Perturbation, get_perturbation, list_perturbations
from aimass.metrics import classification_metrics, regression_metrics

__all__ = ["PerturbationRobustness", "RegressionRobustness", "Robustness"]

EXAMPLE_CHARS = 240


def _sample(ctx: ReportContext) -> np.ndarray:
    n = len(ctx.data)
    size = min(n, ctx.options.robustness_sample)
    return np.sort(ctx.rng("robustness-sample").choice(n, size=size, replace=False))


def _clip(text: str) -> str:
    return text if len(text) <= EXAMPLE_CHARS else text[: EXAMPLE_CHARS - 1] + "…"


class PerturbationRobustness(Section):
    """What every robustness section shares: the seeded sample, the perturbation runs,
    the examples, the table. Subclasses say what is measured on clean and perturbed rows."""

    name = "robustness"
    title = "Robustness"
    #: Metric the plot shows, and (summary key, row key) of the headline "worst" number.
    metric: ClassVar[str]
    worst: ClassVar[tuple[str, str]]

    def compute(self, ctx: ReportContext) -> SectionResult:
        explicit = ctx.options.perturbations is not None
        chosen = (
            [get_perturbation(n) for n in ctx.options.perturbations or ()]
            if explicit
            else list_perturbations()
        )
        idx = _sample(ctx)
        texts = self.inputs(ctx, idx)
        clean = self.measure(ctx, idx, None, None)
        runs = [(p, s) for p in chosen for s in p.strengths]
        ctx.phase("perturbing and scoring", len(runs) * len(texts))
        rows, unavailable = [], []
        for perturbation, strength in runs:
            reason = self.not_applicable(perturbation)
            if reason is not None:
                if explicit:
                    raise InvalidArgument(
                        f"perturbation {perturbation.name!r} does not apply to "
                        f"{ctx.model.task!r} models: {reason}"
                    )
                if strength == perturbation.strengths[0]:
                    unavailable.append({"perturbation": perturbation.name, "reason": reason})
                ctx.advance(len(texts))
                continue
            try:
                perturbed = perturbation.perturb(texts, strength=strength, seed=ctx.options.seed)
            except NotImplementedFeature as exc:
                if explicit:
                    raise
                unavailable.append({"perturbation": perturbation.name, "reason": exc.message})
                ctx.advance(len(texts))
                continue
            row = {
                "perturbation": perturbation.name,
                "strength": strength,
                "strength_meaning": perturbation.strength_meaning,
                "changed_rate": float(
                    np.mean([a != b for a, b in zip(texts, perturbed, strict=True)])
                ),
                **self.measure(ctx, idx, perturbed, clean),
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
        data: dict[str, Any] = {
            "sample_size": len(texts),
            "rows_available": len(ctx.data),
            "seed": ctx.options.seed,
            "perturbed_input": self.perturbed_input(ctx),
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
            figures["robustness"] = plots.robustness_plot(
                rows, metric=self.metric, clean=clean[self.metric]
            )
            key, field = self.worst
            worst = max(rows, key=lambda r: r[field])
            summary = {
                key: worst[field],
                "worst_perturbation": f"{worst['perturbation']}@{worst['strength']:g}",
            }
        return SectionResult(data=data, figures=figures, summary=summary)

    def inputs(self, ctx: ReportContext, idx: np.ndarray) -> list[str]:
        """The texts that are perturbed, for the sampled rows."""
        return [ctx.data.texts[i] for i in idx]

    def perturbed_input(self, ctx: ReportContext) -> str:
        """What the perturbations change, in words."""
        return "the input text"

    def not_applicable(self, perturbation: Perturbation) -> str | None:
        """Why ``perturbation`` does not apply to this task (``None``: it applies)."""
        return None

    @abstractmethod
    def measure(
        self,
        ctx: ReportContext,
        idx: np.ndarray,
        perturbed: list[str] | None,
        clean: dict[str, Any] | None,
    ) -> dict[str, Any]:
        """Metrics on the sampled rows, clean (``perturbed`` None) or perturbed (with
        changes against ``clean``)."""

    @abstractmethod
    def columns(self, data: dict[str, Any]) -> list[tuple[str, str]]:
        """(header, result key) of the table columns after perturbation/strength/changed."""

    @abstractmethod
    def clean_note(self, data: dict[str, Any]) -> str:
        """One phrase on the clean metric of the same rows."""

    def render(self, data: dict[str, Any], figures: dict[str, str]) -> str:
        columns = self.columns(data)
        headers = ("perturbation", "strength", "changed", *[h for h, _ in columns])
        rows = [
            (r["perturbation"], r["strength"], r["changed_rate"], *[r.get(k) for _, k in columns])
            for r in data["results"]
        ]
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
            f"(seeded sample, seed {esc(data['seed'])}); perturbed: "
            f"{esc(data.get('perturbed_input', 'the input text'))}; "
            f"{esc(self.clean_note(data))}.</p>"
            + table(headers, rows)
            + img(figures.get("robustness"), "metric under each perturbation")
            + f'<h3>Perturbations</h3><ul class="note">{meanings}</ul>'
            + (f'<h3>Not applied</h3><ul class="note">{unavailable}</ul>' if unavailable else "")
            + (
                '<h3>Examples</h3><p class="note">Whitespace shown as ⇥ (tab), ↵ (newline), '
                "· (extra space).</p>"
                '<div class="wrap"><table><thead><tr><th>perturbation</th><th>original</th>'
                f"<th>perturbed</th></tr></thead><tbody>{examples}</tbody></table></div>"
                if examples
                else ""
            )
        )


class Robustness(PerturbationRobustness):
    """Classification: accuracy and the prediction-flip rate under each perturbation."""

    key = "robustness"
    metric = "accuracy"
    worst = ("worst_flip_rate", "flip_rate")

    def measure(
        self,
        ctx: ReportContext,
        idx: np.ndarray,
        perturbed: list[str] | None,
        clean: dict[str, Any] | None,
    ) -> dict[str, Any]:
        scores = ctx.scores[idx] if perturbed is None else ctx.score(perturbed)
        pred = scores.argmax(axis=1)
        m = classification_metrics(
            ctx.y_true[idx], pred, list(ctx.model.labels), average_over=ctx.averaged
        )
        out: dict[str, Any] = {"accuracy": m["accuracy"], "f1_macro": m["f1_macro"]}
        if clean is not None:
            out["accuracy_drop"] = clean["accuracy"] - m["accuracy"]
            out["flip_rate"] = float(np.mean(pred != ctx.y_pred[idx])) if len(idx) else 0.0
        return out

    def columns(self, data: dict[str, Any]) -> list[tuple[str, str]]:
        return [
            ("accuracy", "accuracy"),
            ("drop", "accuracy_drop"),
            ("flip rate", "flip_rate"),
            ("macro F1", "f1_macro"),
        ]

    def clean_note(self, data: dict[str, Any]) -> str:
        return (
            f"clean accuracy {data['clean']['accuracy']:.4f} on the same rows; flip rate: share "
            "of rows whose prediction changed"
        )


class RegressionRobustness(PerturbationRobustness):
    """Regression: MAE, its increase and the mean change of the prediction."""

    key = "robustness.regression"
    metric = "mae"
    worst = ("worst_mae_increase", "mae_increase")

    def measure(
        self,
        ctx: ReportContext,
        idx: np.ndarray,
        perturbed: list[str] | None,
        clean: dict[str, Any] | None,
    ) -> dict[str, Any]:
        values = (ctx.scores[idx] if perturbed is None else ctx.score(perturbed))[:, 0]
        m = regression_metrics(ctx.y_true[idx], values)
        out: dict[str, Any] = {"mae": m["mae"], "rmse": m["rmse"], "r2": m["r2"]}
        if clean is not None:
            out["mae_increase"] = m["mae"] - clean["mae"]
            out["mean_abs_change"] = (
                float(np.abs(values - ctx.y_pred[idx]).mean()) if len(idx) else 0.0
            )
        return out

    def columns(self, data: dict[str, Any]) -> list[tuple[str, str]]:
        return [
            ("MAE", "mae"),
            ("MAE increase", "mae_increase"),
            ("mean |Δ prediction|", "mean_abs_change"),
            ("R²", "r2"),
        ]

    def clean_note(self, data: dict[str, Any]) -> str:
        return f"clean MAE {data['clean']['mae']:.4f} on the same rows"


register_section(Robustness())
register_section(RegressionRobustness())
