"""Pure metric functions over NumPy arrays (checked against scikit-learn in tests).

Kept free of torch and of any aimass state so training, evaluation and
benchmarks share one definition of every number aimass reports.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["classification_metrics", "confusion_matrix", "regression_metrics", "softmax"]


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
) -> dict[str, Any]:
    """Accuracy, macro precision/recall/F1, per-class scores and the confusion matrix.

    Macro averages run over every class in ``labels`` (scikit-learn's
    ``average="macro"`` with ``labels=range(C)`` and ``zero_division=0``).
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
    return {
        "accuracy": float(tp.sum() / max(len(true), 1)),
        "precision_macro": float(precision.mean()),
        "recall_macro": float(recall.mean()),
        "f1_macro": float(f1.mean()),
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
