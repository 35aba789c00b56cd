"""Built-in report sections and the per-task report plans."""

from aimass.evaluation.base import register_report_task
from aimass.evaluation.sections import (
    entities,
    explanations,
    fairness,
    language,
    quality,
    resources,
    robustness,
)

__all__ = ["entities", "explanations", "fairness", "language", "quality", "resources", "robustness"]

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
        "robustness.regression",
        "explanations",
        "resources",
        "privacy",
    ],
)
# Language models: the same sections whichever objective they were trained with; the
# loss behind the perplexity is each task's own (see sections/language.py).
for _task in ("masked-lm", "causal-lm", "seq2seq"):
    register_report_task(
        _task,
        [
            "quality.language-model",
            "samples",
            "fairness.language-model",
            "robustness.language-model",
            "explanations",
            "resources",
            "privacy",
        ],
    )
register_report_task(
    "token-classification",
    [
        "quality.token-classification",
        "fairness.token-classification",
        "robustness.token-classification",
        "explanations",
        "resources",
        "privacy",
    ],
)
