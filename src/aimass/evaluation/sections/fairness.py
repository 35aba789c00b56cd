"""Fairness by a group field, with Fairlearn's ``MetricFrame``.

The groups come from a field of the dataset (kept on import, e.g. ``--group-field
region``). Groups smaller than ``min_group_size`` are listed but left out of the
disparity numbers: with a handful of rows their rates are noise.

Classification, with ``C`` classes: every class ``c`` in turn is the positive
outcome (one-vs-rest). Its *demographic-parity difference* is the largest gap
between groups in how often ``c`` is predicted; its *equalized-odds difference*
is the larger of the largest gaps in true-positive rate and in false-positive
rate for ``c`` (Fairlearn's definitions on the binary problem ``y == c``). The
headline number is the worst class. With two classes both classes give the same
numbers, so this is the usual binary definition whichever class is "positive".

Regression: per-group MAE/RMSE and mean prediction. Demographic parity becomes
the largest gap in the *mean prediction* between groups (statistical parity of
the predicted value) and error parity the largest gap in MAE; equalized odds
has no standard regression form and is not reported.
"""

from __future__ import annotations

from abc import abstractmethod
from functools import partial
from typing import Any

import numpy as np

from aimass.evaluation import plots
from aimass.evaluation.base import ReportContext, Section, SectionResult, register_section
from aimass.evaluation.html import esc, img, kv_table, table
from aimass.evaluation.sections._fairness_metrics import (
    CLASSIFICATION_DEFINITIONS,
    REGRESSION_DEFINITIONS,
    _intervals,
    _mean_prediction,
    _mean_target,
    _metric_frame,
    _rate_of,
    _skip,
    _split_groups,
    equalized_odds_by_class,
    group_values,
    parity_by_class,
)
from aimass.evaluation.sections._fairness_metrics import (
    MISSING as MISSING,
)
from aimass.evaluation.sections._fairness_metrics import (
    bootstrap_group_means as bootstrap_group_means,
)

__all__ = [
    "ClassificationFairness",
    "GroupFairness",
    "RegressionFairness",
    "definitions",
    "equalized_odds_by_class",
    "excluded_note",
    "intro",
    "parity_by_class",
]

PLOT_GROUPS = 20
PLOT_CLASSES = 6


class GroupFairness(Section):
    """What every fairness section shares: choosing the groups, the common fields, the notes."""

    name = "fairness"
    title = "Fairness"

    def compute(self, ctx: ReportContext) -> SectionResult:
        skipped = _skip(ctx)
        if skipped is not None:
            return skipped
        split = _split_groups(ctx)
        if isinstance(split, str):
            return SectionResult.skipped(split)
        mask, eligible, excluded = split
        result = self.compare_groups(ctx, mask, group_values(ctx)[mask], eligible)
        result.data = {
            "group_field": ctx.data.group_field,
            "min_group_size": ctx.options.min_group_size,
            "excluded_groups": excluded,
            "rows_compared": int(mask.sum()),
            **result.data,
        }
        if len(eligible) > PLOT_GROUPS:
            result.notes.insert(
                0,
                f"The plot shows the {PLOT_GROUPS} largest of {len(eligible)} groups; "
                "the tables show all.",
            )
        return result

    @abstractmethod
    def compare_groups(
        self, ctx: ReportContext, mask: np.ndarray, groups: np.ndarray, eligible: list[str]
    ) -> SectionResult:
        """Per-group metrics and disparities over the rows in ``mask`` (``groups`` their
        group names), which belong to the ``eligible`` groups."""


class _Fairness(GroupFairness):
    """Fairness of one label per row (classification, regression)."""

    def compare_groups(
        self, ctx: ReportContext, mask: np.ndarray, groups: np.ndarray, eligible: list[str]
    ) -> SectionResult:
        return self.compare(ctx, ctx.y_true[mask], ctx.y_pred[mask], groups, eligible)

    @abstractmethod
    def compare(
        self,
        ctx: ReportContext,
        y_true: np.ndarray,
        y_pred: np.ndarray,
        groups: np.ndarray,
        eligible: list[str],
    ) -> SectionResult:
        """Per-group metrics and disparities over the rows of the ``eligible`` groups."""


class ClassificationFairness(_Fairness):
    """Per-group accuracy/F1/selection rates; demographic-parity and equalized-odds differences."""

    key = "fairness.classification"

    def compare(
        self,
        ctx: ReportContext,
        y_true: np.ndarray,
        y_pred: np.ndarray,
        groups: np.ndarray,
        eligible: list[str],
    ) -> SectionResult:
        from fairlearn.metrics import count
        from sklearn.metrics import accuracy_score, f1_score

        labels = list(ctx.model.labels)
        classes = len(labels)
        metrics: dict[str, Any] = {
            "count": count,
            "accuracy": accuracy_score,
            "f1_macro": partial(f1_score, labels=ctx.averaged, average="macro", zero_division=0),
        }
        for c in range(classes):
            metrics[f"selection_rate_{c}"] = partial(_rate_of, c=c)
        frame = _metric_frame(metrics, y_true, y_pred, groups)
        ci = _intervals(y_true == y_pred, groups, ctx)
        parity = parity_by_class(y_true, y_pred, groups, classes)
        odds = equalized_odds_by_class(y_true, y_pred, groups, classes)
        by_group: list[dict[str, Any]] = [
            {
                "group": g,
                "count": int(frame.by_group.loc[g, "count"]),
                "accuracy": float(frame.by_group.loc[g, "accuracy"]),
                "accuracy_ci": ci.get(g),
                "f1_macro": float(frame.by_group.loc[g, "f1_macro"]),
                "selection_rate": {
                    labels[c]: float(frame.by_group.loc[g, f"selection_rate_{c}"])
                    for c in range(classes)
                },
            }
            for g in eligible
        ]
        defined = [v for v in odds if v is not None]
        data: dict[str, Any] = {
            "groups": by_group,
            "overall": {
                "accuracy": float(frame.overall["accuracy"]),
                "f1_macro": float(frame.overall["f1_macro"]),
            },
            "accuracy_difference": float(frame.difference()["accuracy"]),
            "demographic_parity_difference": {
                "per_class": dict(zip(labels, parity, strict=True)),
                "max": max(parity),
            },
            "equalized_odds_difference": {
                "per_class": dict(zip(labels, odds, strict=True)),
                "max": max(defined) if defined else None,
            },
            "definitions": CLASSIFICATION_DEFINITIONS,
        }
        shown = by_group[:PLOT_GROUPS]
        figure = plots.bar_groups(
            [g["group"] for g in shown],
            [
                (
                    "accuracy (95% CI)",
                    {"accuracy": [g["accuracy"] for g in shown]},
                    [tuple(g["accuracy_ci"]) for g in shown] if ci else None,
                ),
                (
                    "selection rate per class",
                    {
                        label: [g["selection_rate"][label] for g in shown]
                        for label in labels[:PLOT_CLASSES]
                    },
                    None,
                ),
            ],
        )
        notes = []
        if any(v is None for v in odds):
            missing = [labels[c] for c, v in enumerate(odds) if v is None]
            notes.append(
                "Equalized odds is undefined for class(es) "
                + ", ".join(missing)
                + ": some group has no positive or no negative examples of them."
            )
        return SectionResult(
            data=data,
            figures={"groups": figure},
            summary={
                "demographic_parity_difference": data["demographic_parity_difference"]["max"],
                "equalized_odds_difference": data["equalized_odds_difference"]["max"],
                "accuracy_difference": data["accuracy_difference"],
            },
            notes=notes,
        )

    def render(self, data: dict[str, Any], figures: dict[str, str]) -> str:
        labels = list(data["demographic_parity_difference"]["per_class"])
        rows = [
            (
                g["group"],
                g["count"],
                g["accuracy"],
                _ci(g["accuracy_ci"]),
                g["f1_macro"],
                *[g["selection_rate"][label] for label in labels],
            )
            for g in data["groups"]
        ]
        per_class = [
            (
                label,
                data["demographic_parity_difference"]["per_class"][label],
                data["equalized_odds_difference"]["per_class"][label],
            )
            for label in labels
        ]
        return (
            intro(data)
            + kv_table(
                [
                    (
                        "demographic-parity difference (worst class)",
                        data["demographic_parity_difference"]["max"],
                    ),
                    (
                        "equalized-odds difference (worst class)",
                        data["equalized_odds_difference"]["max"],
                    ),
                    ("accuracy difference between groups", data["accuracy_difference"]),
                    ("overall accuracy (compared rows)", data["overall"]["accuracy"]),
                ]
            )
            + img(figures.get("groups"), "per-group accuracy and selection rates")
            + "<h3>Per group</h3>"
            + table(
                (
                    "group",
                    "rows",
                    "accuracy",
                    "95% CI",
                    "macro F1",
                    *[f"selects {x}" for x in labels],
                ),
                rows,
            )
            + "<h3>Per class (one-vs-rest)</h3>"
            + table(("class", "demographic-parity diff.", "equalized-odds diff."), per_class)
            + excluded_note(data)
            + definitions(data)
        )


class RegressionFairness(_Fairness):
    """Per-group MAE/RMSE and mean prediction; their largest gaps."""

    key = "fairness.regression"

    def compare(
        self,
        ctx: ReportContext,
        y_true: np.ndarray,
        y_pred: np.ndarray,
        groups: np.ndarray,
        eligible: list[str],
    ) -> SectionResult:
        from fairlearn.metrics import count
        from sklearn.metrics import mean_absolute_error, root_mean_squared_error

        frame = _metric_frame(
            {
                "count": count,
                "mae": mean_absolute_error,
                "rmse": root_mean_squared_error,
                "mean_prediction": _mean_prediction,
                "mean_target": _mean_target,
            },
            y_true,
            y_pred,
            groups,
        )
        ci = _intervals(np.abs(y_pred - y_true), groups, ctx)
        diff = frame.difference()
        by_group: list[dict[str, Any]] = [
            {
                "group": g,
                "count": int(frame.by_group.loc[g, "count"]),
                "mae": float(frame.by_group.loc[g, "mae"]),
                "mae_ci": ci.get(g),
                "rmse": float(frame.by_group.loc[g, "rmse"]),
                "mean_prediction": float(frame.by_group.loc[g, "mean_prediction"]),
                "mean_target": float(frame.by_group.loc[g, "mean_target"]),
            }
            for g in eligible
        ]
        data = {
            "groups": by_group,
            "overall": {"mae": float(frame.overall["mae"]), "rmse": float(frame.overall["rmse"])},
            "mae_difference": float(diff["mae"]),
            "mean_prediction_difference": float(diff["mean_prediction"]),
            "mean_target_difference": float(diff["mean_target"]),
            "definitions": REGRESSION_DEFINITIONS,
        }
        shown = by_group[:PLOT_GROUPS]
        figure = plots.bar_groups(
            [g["group"] for g in shown],
            [
                (
                    "MAE (95% CI)",
                    {"MAE": [g["mae"] for g in shown]},
                    [tuple(g["mae_ci"]) for g in shown] if ci else None,
                ),
                (
                    "mean value",
                    {
                        "predicted": [g["mean_prediction"] for g in shown],
                        "true": [g["mean_target"] for g in shown],
                    },
                    None,
                ),
            ],
        )
        return SectionResult(
            data=data,
            figures={"groups": figure},
            summary={
                "mae_difference": data["mae_difference"],
                "mean_prediction_difference": data["mean_prediction_difference"],
            },
        )

    def render(self, data: dict[str, Any], figures: dict[str, str]) -> str:
        return (
            intro(data)
            + kv_table(
                [
                    (
                        "mean-prediction difference (statistical parity)",
                        data["mean_prediction_difference"],
                    ),
                    ("true-mean difference (for comparison)", data["mean_target_difference"]),
                    ("MAE difference (error parity)", data["mae_difference"]),
                    ("equalized odds", "not defined for regression"),
                ]
            )
            + img(figures.get("groups"), "per-group error and mean prediction")
            + "<h3>Per group</h3>"
            + table(
                ("group", "rows", "MAE", "95% CI", "RMSE", "mean predicted", "mean true"),
                [
                    (
                        g["group"],
                        g["count"],
                        g["mae"],
                        _ci(g["mae_ci"]),
                        g["rmse"],
                        g["mean_prediction"],
                        g["mean_target"],
                    )
                    for g in data["groups"]
                ],
            )
            + excluded_note(data)
            + definitions(data)
        )


def _ci(interval: list[float] | None) -> str:
    return "—" if not interval else f"{interval[0]:.3f}–{interval[1]:.3f}"


def intro(data: dict[str, Any]) -> str:
    return (
        f'<p class="note">Groups from field <code>{esc(data["group_field"])}</code>; '
        f"{esc(len(data['groups']))} groups with at least {esc(data['min_group_size'])} rows "
        f"({esc(data['rows_compared'])} rows) are compared.</p>"
    )


def excluded_note(data: dict[str, Any]) -> str:
    excluded = data["excluded_groups"]
    if not excluded:
        return ""
    shown = excluded[:30]
    more = f" and {len(excluded) - len(shown)} more" if len(excluded) > len(shown) else ""
    listing = ", ".join(f"{g['group']} ({g['count']})" for g in shown)
    return f'<p class="note">Too small to compare (rows): {esc(listing)}{esc(more)}.</p>'


def definitions(data: dict[str, Any]) -> str:
    items = "".join(
        f"<li><b>{esc(k.replace('_', ' '))}</b>: {esc(v)}</li>"
        for k, v in data["definitions"].items()
    )
    return f'<h3>Definitions</h3><ul class="note">{items}</ul>'


register_section(ClassificationFairness())
register_section(RegressionFairness())
