"""Built-in report sections and the per-task report plans."""

from aimass.evaluation.base import register_report_task
from aimass.evaluation.sections import explanations, fairness, quality, resources, robustness

__all__ = ["explanations", "fairness", "quality", "resources", "robustness"]

register_report_task(
    "classification",
    [
        "quality.classification",
        "calibration",
        "fairness.classification",
        "robustness",
        "explanations",
        "resources",
        "privacy",
    ],
)
register_report_task(
    "regression",
    [
        "quality.regression",
        "fairness.regression",
        "robustness",
        "explanations",
        "resources",
        "privacy",
    ],
)
