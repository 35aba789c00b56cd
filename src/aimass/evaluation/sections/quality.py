"""Quality: how often the model is right (classification) or how far off (regression),
and whether its confidence can be trusted (calibration)."""

from __future__ import annotations

from typing import Any

import numpy as np

from aimass.evaluation import plots
from aimass.evaluation.base import ReportContext, Section, SectionResult, register_section
from aimass.evaluation.html import esc, img, kv_table, table
from aimass.metrics import (
    calibration_metrics,
    classification_metrics,
    regression_metrics,
    residual_summary,
)

__all__ = ["CalibrationSection", "ClassificationQuality", "RegressionQuality"]

TOP_CONFUSIONS = 5


def _top_confusions(matrix: list[list[int]], labels: list[str]) -> list[dict[str, Any]]:
    pairs: list[dict[str, Any]] = [
        {"true": labels[i], "predicted": labels[j], "count": int(matrix[i][j])}
        for i in range(len(labels))
        for j in range(len(labels))
        if i != j and matrix[i][j] > 0
    ]
    return sorted(pairs, key=lambda p: -p["count"])[:TOP_CONFUSIONS]


class ClassificationQuality(Section):
    """Accuracy, macro and per-class precision/recall/F1, confusion matrix."""

    key = "quality.classification"
    name = "quality"
    title = "Quality"

    def compute(self, ctx: ReportContext) -> SectionResult:
        labels = list(ctx.model.labels)
        metrics = classification_metrics(ctx.y_true, ctx.y_pred, labels, average_over=ctx.averaged)
        metrics["labels"] = labels
        summary = {"accuracy": metrics["accuracy"], "f1_macro": metrics["f1_macro"]}
        if ctx.model.abstain in labels:
            answered = ctx.y_pred != labels.index(ctx.model.abstain)
            right = ctx.y_pred[answered] == ctx.y_true[answered]
            metrics["coverage"] = float(answered.mean()) if len(answered) else 0.0
            metrics["answered_accuracy"] = float(right.mean()) if right.size else 0.0
            summary.update(coverage=metrics["coverage"])
        metrics["top_confusions"] = _top_confusions(metrics["confusion_matrix"], labels)
        metrics["majority_baseline_accuracy"] = (
            float(np.bincount(ctx.y_true, minlength=len(labels)).max() / len(ctx.y_true))
            if len(ctx.y_true)
            else 0.0
        )
        return SectionResult(
            data=metrics,
            figures={
                "confusion_matrix": plots.confusion_matrix_plot(metrics["confusion_matrix"], labels)
            },
            summary=summary,
        )

    def render(self, data: dict[str, Any], figures: dict[str, str]) -> str:
        abstaining = (
            [
                ("share answered (coverage; the rest abstained)", data["coverage"]),
                ("accuracy of the answers", data["answered_accuracy"]),
            ]
            if "coverage" in data
            else []
        )
        overall = kv_table(
            [
                ("examples", data["count"]),
                (
                    "accuracy (an abstention counts as wrong)" if abstaining else "accuracy",
                    data["accuracy"],
                ),
                *abstaining,
                ("majority-class baseline accuracy", data["majority_baseline_accuracy"]),
                ("macro precision", data["precision_macro"]),
                ("macro recall", data["recall_macro"]),
                ("macro F1", data["f1_macro"]),
            ]
        )
        per_class = table(
            ("class", "precision", "recall", "F1", "support"),
            [
                (c, v["precision"], v["recall"], v["f1"], v["support"])
                for c, v in data["per_class"].items()
            ],
        )
        confusions = (
            table(
                ("true", "predicted", "count"),
                [(p["true"], p["predicted"], p["count"]) for p in data["top_confusions"]],
            )
            if data["top_confusions"]
            else "<p>No errors.</p>"
        )
        return (
            overall
            + "<h3>Per class</h3>"
            + per_class
            + "<h3>Confusion matrix</h3>"
            + '<p class="note">Rows are true classes, columns predictions; cells show the '
            "count and the share of the true class.</p>"
            + img(figures.get("confusion_matrix"), "confusion matrix")
            + "<h3>Most frequent confusions</h3>"
            + confusions
        )


class CalibrationSection(Section):
    """Expected calibration error, reliability diagram, Brier score, log loss."""

    key = "calibration"
    name = "calibration"
    title = "Calibration"

    def compute(self, ctx: ReportContext) -> SectionResult:
        scores, truth, notes = ctx.scores, ctx.y_true, []
        labels = list(ctx.model.labels)
        if ctx.model.abstain in labels:
            # An abstention has no confidence to calibrate: the answers are measured.
            answered = ctx.y_pred != labels.index(ctx.model.abstain)
            scores, truth = scores[answered], truth[answered]
            notes.append(f"over the {int(answered.sum())} answered inputs (abstentions left out)")
        result = calibration_metrics(scores, truth, n_bins=ctx.options.n_bins)
        return SectionResult(
            data=result,
            figures={"reliability": plots.reliability_plot(result["bins"], result["ece"])},
            summary={"ece": result["ece"]},
            notes=notes,
        )

    def render(self, data: dict[str, Any], figures: dict[str, str]) -> str:
        return (
            '<p class="note">Does a prediction made with confidence <i>p</i> turn out right a '
            "fraction <i>p</i> of the time? Confidence is the predicted class's probability, "
            f"binned into {esc(data['n_bins'])} equal-width bins. ECE is the count-weighted mean "
            "gap between accuracy and confidence over the bins (0 is perfect); MCE the largest "
            "gap.</p>"
            + kv_table(
                [
                    ("expected calibration error (ECE)", data["ece"]),
                    ("maximum calibration error (MCE)", data["mce"]),
                    ("mean confidence", data["mean_confidence"]),
                    ("Brier score (multi-class, 0 best, 2 worst)", data["brier"]),
                    ("log loss", data["log_loss"]),
                ]
            )
            + img(figures.get("reliability"), "reliability diagram")
            + table(
                ("confidence bin", "count", "mean confidence", "accuracy"),
                [
                    (
                        f"{b['lower']:.2f}–{b['upper']:.2f}",
                        b["count"],
                        b["confidence"],
                        b["accuracy"],
                    )
                    for b in data["bins"]
                    if b["count"]
                ],
            )
        )


class RegressionQuality(Section):
    """MAE, RMSE, R², residual summary and plot."""

    key = "quality.regression"
    name = "quality"
    title = "Quality"

    def compute(self, ctx: ReportContext) -> SectionResult:
        metrics = regression_metrics(ctx.y_true, ctx.y_pred)
        metrics["residuals"] = residual_summary(ctx.y_true, ctx.y_pred)
        metrics["target_mean"] = float(ctx.y_true.mean()) if len(ctx.y_true) else 0.0
        metrics["target_std"] = float(ctx.y_true.std()) if len(ctx.y_true) else 0.0
        metrics["mean_baseline_mae"] = (
            float(np.abs(ctx.y_true - ctx.y_true.mean()).mean()) if len(ctx.y_true) else 0.0
        )
        return SectionResult(
            data=metrics,
            figures={"residuals": plots.residual_plot(ctx.y_true, ctx.y_pred)},
            summary={"mae": metrics["mae"], "rmse": metrics["rmse"], "r2": metrics["r2"]},
        )

    def render(self, data: dict[str, Any], figures: dict[str, str]) -> str:
        residuals = data["residuals"]
        quantiles = ", ".join(f"{k} {v:+.4g}" for k, v in residuals["quantiles"].items())
        return kv_table(
            [
                ("examples", data["count"]),
                ("mean absolute error (MAE)", data["mae"]),
                ("MAE of always predicting the mean", data["mean_baseline_mae"]),
                ("root mean squared error (RMSE)", data["rmse"]),
                ("R²", data["r2"]),
                ("bias (mean residual)", residuals["bias"]),
                ("residual standard deviation", residuals["std"]),
                ("residual quantiles", quantiles),
                ("target mean / std", f"{data['target_mean']:.4g} / {data['target_std']:.4g}"),
            ]
        ) + img(figures.get("residuals"), "predicted against true values and residuals")


register_section(ClassificationQuality())
register_section(CalibrationSection())
register_section(RegressionQuality())
