"""Pure metric functions over NumPy arrays (checked against scikit-learn in tests).

Kept free of torch and of any aimass state so training, evaluation and
benchmarks share one definition of every number aimass reports.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = [
    "brier_score",
    "calibration_metrics",
    "classification_metrics",
    "confusion_matrix",
    "entity_metrics",
    "entity_spans",
    "log_loss",
    "regression_metrics",
    "reliability_bins",
    "residual_summary",
    "softmax",
    "span_scores",
]


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of (N, C) logits, numerically stable."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """(C, C) counts: rows are true classes, columns predicted classes."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)), 1)
    return matrix


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    # scikit-learn's zero_division=0 convention: 0/0 counts as 0.
    return np.divide(num, den, out=np.zeros_like(num, dtype=np.float64), where=den > 0)


def classification_metrics(
    y_true: Sequence[int] | np.ndarray,
    y_pred: Sequence[int] | np.ndarray,
    labels: Sequence[str],
    *,
    average_over: Sequence[int] | None = None,
) -> dict[str, Any]:
    """Accuracy, macro precision/recall/F1, per-class scores and the confusion matrix.

    Macro averages run over every class in ``labels`` (scikit-learn's
    ``average="macro"`` with ``labels=range(C)`` and ``zero_division=0``), or over the
    class indexes ``average_over`` (a pipeline's ``abstain`` is never a true class).
    """
    true = np.asarray(y_true, dtype=np.int64)
    pred = np.asarray(y_pred, dtype=np.int64)
    matrix = confusion_matrix(true, pred, len(labels))
    tp = np.diag(matrix).astype(np.float64)
    support = matrix.sum(axis=1).astype(np.float64)
    predicted = matrix.sum(axis=0).astype(np.float64)
    precision = _safe_div(tp, predicted)
    recall = _safe_div(tp, support)
    f1 = _safe_div(2 * precision * recall, precision + recall)
    over = list(range(len(labels))) if average_over is None else list(average_over)
    return {
        "accuracy": float(tp.sum() / max(len(true), 1)),
        "precision_macro": float(precision[over].mean()),
        "recall_macro": float(recall[over].mean()),
        "f1_macro": float(f1[over].mean()),
        "per_class": {
            label: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, label in enumerate(labels)
        },
        "confusion_matrix": matrix.tolist(),
        "count": len(true),
    }


def regression_metrics(
    y_true: Sequence[float] | np.ndarray, y_pred: Sequence[float] | np.ndarray
) -> dict[str, Any]:
    """MAE, RMSE and R² (R² is 0 when the targets have no variance, as in scikit-learn)."""
    true = np.asarray(y_true, dtype=np.float64)
    pred = np.asarray(y_pred, dtype=np.float64)
    error = pred - true
    total = float(((true - true.mean()) ** 2).sum()) if len(true) else 0.0
    residual = float((error**2).sum())
    r2 = 1.0 - residual / total if total > 0 else 1.0 if residual == 0 else 0.0
    return {
        "mae": float(np.abs(error).mean()) if len(true) else 0.0,
        "rmse": float(np.sqrt((error**2).mean())) if len(true) else 0.0,
        "r2": r2,
        "count": len(true),
    }


def reliability_bins(
    confidence: Sequence[float] | np.ndarray,
    correct: Sequence[bool] | np.ndarray,
    *,
    n_bins: int = 15,
) -> dict[str, Any]:
    """Equal-width reliability bins, expected and maximum calibration error.

    Bin ``k`` holds confidences in ``(k/n, (k+1)/n]`` (the first bin includes
    0), the convention of scikit-learn's ``calibration_curve(strategy="uniform")``.
    ECE is the count-weighted mean of ``|accuracy - confidence|`` over the bins
    (Guo et al. 2017); MCE is its maximum over non-empty bins.

    Args:
        confidence: Predicted probability of the event, one per example.
        correct: Whether the event happened (for top-label calibration: whether
            the predicted class was right).
        n_bins: Number of equal-width bins on [0, 1].
    """
    conf = np.asarray(confidence, dtype=np.float64)
    hit = np.asarray(correct, dtype=np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    index = np.searchsorted(edges[1:-1], conf, side="left")
    count = np.bincount(index, minlength=n_bins)
    conf_sum = np.bincount(index, weights=conf, minlength=n_bins)
    hit_sum = np.bincount(index, weights=hit, minlength=n_bins)
    mean_conf = _safe_div(conf_sum, count.astype(np.float64))
    accuracy = _safe_div(hit_sum, count.astype(np.float64))
    gap = np.abs(accuracy - mean_conf)
    total = max(len(conf), 1)
    return {
        "n_bins": n_bins,
        "ece": float((count * gap).sum() / total),
        "mce": float(gap[count > 0].max()) if count.any() else 0.0,
        "bins": [
            {
                "lower": float(edges[k]),
                "upper": float(edges[k + 1]),
                "count": int(count[k]),
                "confidence": float(mean_conf[k]),
                "accuracy": float(accuracy[k]),
            }
            for k in range(n_bins)
        ],
    }


def brier_score(probs: np.ndarray, y_true: Sequence[int] | np.ndarray) -> float:
    """Multi-class Brier score: mean over examples of ``sum_c (p_c - [y = c])^2``.

    For two classes this is twice scikit-learn's binary ``brier_score_loss``.
    """
    probs = np.asarray(probs, dtype=np.float64)
    if not len(probs):
        return 0.0
    onehot = np.eye(probs.shape[1])[np.asarray(y_true, dtype=np.int64)]
    return float(((probs - onehot) ** 2).sum(axis=1).mean())


def log_loss(probs: np.ndarray, y_true: Sequence[int] | np.ndarray, *, eps: float = 1e-15) -> float:
    """Mean negative log-likelihood of the true class (probabilities clipped to ``eps``)."""
    probs = np.asarray(probs, dtype=np.float64)
    if not len(probs):
        return 0.0
    true = np.asarray(y_true, dtype=np.int64)
    picked = np.clip(probs[np.arange(len(true)), true], eps, 1.0)
    return float(-np.log(picked).mean())


def calibration_metrics(
    probs: np.ndarray, y_true: Sequence[int] | np.ndarray, *, n_bins: int = 15
) -> dict[str, Any]:
    """Top-label calibration of (N, C) class probabilities: ECE, MCE, Brier, log loss, bins."""
    probs = np.asarray(probs, dtype=np.float64)
    true = np.asarray(y_true, dtype=np.int64)
    pred = probs.argmax(axis=1) if len(probs) else np.zeros(0, dtype=np.int64)
    confidence = probs.max(axis=1) if len(probs) else np.zeros(0)
    result = reliability_bins(confidence, pred == true, n_bins=n_bins)
    result["brier"] = brier_score(probs, true)
    result["log_loss"] = log_loss(probs, true)
    result["mean_confidence"] = float(confidence.mean()) if len(confidence) else 0.0
    return result


def residual_summary(
    y_true: Sequence[float] | np.ndarray, y_pred: Sequence[float] | np.ndarray
) -> dict[str, Any]:
    """Residuals ``pred - true``: bias (mean), spread and quantiles."""
    error = np.asarray(y_pred, dtype=np.float64) - np.asarray(y_true, dtype=np.float64)
    if not len(error):
        return {"bias": 0.0, "std": 0.0, "quantiles": {}}
    qs = (0.05, 0.25, 0.5, 0.75, 0.95)
    return {
        "bias": float(error.mean()),
        "std": float(error.std()),
        "quantiles": {
            f"p{round(q * 100):02d}": float(v)
            for q, v in zip(qs, np.quantile(error, qs), strict=True)
        },
    }


def entity_spans(tags: Sequence[str]) -> list[tuple[str, int, int]]:
    """Entities in a BIO tag sequence as ``(type, start, end)`` token positions (end exclusive).

    Chunking follows conlleval and seqeval's default (lenient) mode, so model
    output that breaks BIO still scores the way the literature scores it: an
    entity starts at ``B-X``, or at ``I-X`` after ``O`` or after another type, and
    ends before any tag that is not ``I-`` of its own type.
    """
    spans: list[tuple[str, int, int]] = []
    current: str | None = None
    start = 0
    for position, tag in enumerate([*tags, "O"]):
        prefix, _, kind = tag.partition("-")
        inside = prefix in ("B", "I") and bool(kind)
        if current is not None and not (prefix == "I" and kind == current):
            spans.append((current, start, position))
            current = None
        if inside and (prefix == "B" or current is None):
            current, start = kind, position
    return spans


def entity_metrics(
    y_true: Sequence[Sequence[str]], y_pred: Sequence[Sequence[str]]
) -> dict[str, Any]:
    """Entity-level precision, recall and F1 (micro-averaged, as seqeval), and per type.

    An entity counts as found only when its type, start and end all match.
    """
    true = {(i, *span) for i, tags in enumerate(y_true) for span in entity_spans(tags)}
    pred = {(i, *span) for i, tags in enumerate(y_pred) for span in entity_spans(tags)}
    types = sorted({e[1] for e in true | pred})
    per_type = {
        kind: {
            **span_scores({e for e in true if e[1] == kind}, {e for e in pred if e[1] == kind}),
            "support": sum(1 for e in true if e[1] == kind),
        }
        for kind in types
    }
    return {
        **span_scores(true, pred),
        "per_type": per_type,
        "entities": len(true),
        "count": len(y_true),
    }


def span_scores(true: set[Any], pred: set[Any]) -> dict[str, float]:
    """Precision, recall and F1 of the predicted entities ``pred`` against ``true``
    (exact matches: whatever identifies an entity, e.g. row, type, start and end)."""
    hit = len(true & pred)
    precision = hit / len(pred) if pred else 0.0
    recall = hit / len(true) if true else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}
