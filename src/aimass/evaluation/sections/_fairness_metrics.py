"""The computations behind the fairness sections: choosing the groups, Fairlearn metrics, intervals.

Which rows and groups are compared (groups below ``min_group_size`` are set
aside), the one-vs-rest demographic-parity and equalized-odds differences per
class, Fairlearn's ``MetricFrame``, the bootstrap intervals of the group means,
and the definitions reported with the numbers. :mod:`.fairness` builds the
sections on them.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from aimass.evaluation.base import ReportContext, SectionResult

MISSING = "(missing)"

CLASSIFICATION_DEFINITIONS = {
    "groups": "rows grouped by the value of the group field; groups below the minimum size are "
    "reported but excluded from the differences",
    "demographic_parity_difference": "per class c (one-vs-rest): max - min over groups of the rate "
    "at which c is predicted; the headline is the worst class",
    "equalized_odds_difference": "per class c (one-vs-rest): the larger of (max - min over groups "
    "of the true-positive rate for c) and (max - min of the false-positive rate for c); the "
    "headline is the worst class; undefined for a class that some group has no positive or no "
    "negative examples of",
    "accuracy_difference": "max - min over groups of accuracy",
    "binary": "with two classes both one-vs-rest problems give identical differences, so the "
    "numbers equal the usual binary definitions whichever class is called positive",
    "confidence_intervals": "95% bootstrap intervals (rows resampled with replacement, as "
    "Fairlearn's MetricFrame does)",
}
REGRESSION_DEFINITIONS = {
    "groups": CLASSIFICATION_DEFINITIONS["groups"],
    "mean_prediction_difference": "max - min over groups of the mean predicted value "
    "(statistical parity of the prediction, the regression analogue of demographic parity)",
    "mae_difference": "max - min over groups of the mean absolute error (error parity)",
    "equalized_odds": "not defined for regression; not reported",
    "confidence_intervals": CLASSIFICATION_DEFINITIONS["confidence_intervals"],
}


def group_values(ctx: ReportContext) -> np.ndarray:
    """The group of each row, missing values as ``(missing)``."""
    assert ctx.data.groups is not None
    return np.array([MISSING if g is None else str(g) for g in ctx.data.groups], dtype=object)


def parity_by_class(
    y_true: np.ndarray, y_pred: np.ndarray, groups: np.ndarray, classes: int
) -> list[float]:
    """Fairlearn demographic-parity difference of each one-vs-rest problem."""
    from fairlearn.metrics import demographic_parity_difference

    return [
        float(demographic_parity_difference(y_true == c, y_pred == c, sensitive_features=groups))
        for c in range(classes)
    ]


def equalized_odds_by_class(
    y_true: np.ndarray, y_pred: np.ndarray, groups: np.ndarray, classes: int
) -> list[float | None]:
    """Fairlearn equalized-odds difference per one-vs-rest problem (``None`` when undefined)."""
    from fairlearn.metrics import equalized_odds_difference

    names = np.unique(groups)
    out: list[float | None] = []
    for c in range(classes):
        positive = y_true == c
        defined = all(positive[groups == g].any() and (~positive[groups == g]).any() for g in names)
        out.append(
            float(equalized_odds_difference(positive, y_pred == c, sensitive_features=groups))
            if defined
            else None
        )
    return out


def _split_groups(ctx: ReportContext) -> tuple[np.ndarray, list[str], list[dict[str, Any]]] | str:
    """``(mask of rows in eligible groups, eligible group names, excluded groups)`` or a reason."""
    groups = group_values(ctx)
    sizes = Counter(groups.tolist())
    minimum = ctx.options.min_group_size
    eligible = sorted((g for g, n in sizes.items() if n >= minimum), key=lambda g: (-sizes[g], g))
    excluded = [
        {"group": g, "count": n}
        for g, n in sorted(sizes.items(), key=lambda kv: (-kv[1], kv[0]))
        if n < minimum
    ]
    if len(eligible) < 2:
        return (
            f"field {ctx.data.group_field!r} has {len(sizes)} group(s) but only "
            f"{len(eligible)} with at "
            f"least {minimum} rows in split {ctx.data.split!r}; fairness needs two groups of that "
            "size (lower --min-group-size, or use a larger split or a coarser field)"
        )
    return np.isin(groups, eligible), eligible, excluded


def _metric_frame(
    metrics: dict[str, Any], y_true: np.ndarray, y_pred: np.ndarray, groups: np.ndarray, **kw: Any
) -> Any:
    from fairlearn.metrics import MetricFrame

    return MetricFrame(
        metrics=metrics, y_true=y_true, y_pred=y_pred, sensitive_features=groups, **kw
    )


def bootstrap_group_means(
    values: np.ndarray, groups: np.ndarray, *, n_boot: int, seed: int
) -> dict[str, list[float]]:
    """95% bootstrap interval of each group's mean of ``values`` (per-row correctness gives
    accuracy, per-row absolute error gives MAE).

    Rows are resampled with replacement from the whole set, as Fairlearn's
    ``MetricFrame(n_boot=...)`` does, but with NumPy counting (hundreds of times faster);
    a group missing from a resample does not count for that resample.
    """
    names, codes = np.unique(groups, return_inverse=True)
    rng = np.random.Generator(np.random.PCG64(seed))
    n, k = len(values), len(names)
    means = np.full((n_boot, k), np.nan)
    for b in range(n_boot):
        idx = rng.integers(0, n, size=n)
        count = np.bincount(codes[idx], minlength=k)
        total = np.bincount(codes[idx], weights=values[idx], minlength=k)
        np.divide(total, count, out=means[b], where=count > 0)
    low = np.nanquantile(means, 0.025, axis=0)
    high = np.nanquantile(means, 0.975, axis=0)
    return {str(g): [float(low[i]), float(high[i])] for i, g in enumerate(names)}


def _intervals(
    values: np.ndarray, groups: np.ndarray, ctx: ReportContext
) -> dict[str, list[float]]:
    """95% bootstrap intervals per group (empty when n_boot is 0)."""
    if not ctx.options.n_boot:
        return {}
    return bootstrap_group_means(
        values.astype(np.float64), groups, n_boot=ctx.options.n_boot, seed=ctx.options.seed
    )


def _skip(ctx: ReportContext) -> SectionResult | None:
    if ctx.data.group_field is None:
        fields = ", ".join(ctx.data.fields)
        hint = (
            f"this dataset's fields: {fields} (e.g. --group-field {ctx.data.fields[0]})"
            if ctx.data.fields
            else "this dataset has no extra fields: re-import it with a column that names each "
            "row's group"
        )
        return SectionResult.skipped(f"no group field was given; {hint}")
    return None


def _rate_of(y_true: np.ndarray, y_pred: np.ndarray, *, c: int) -> float:
    return float(np.mean(np.asarray(y_pred) == c))


def _mean_prediction(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return float(np.mean(y_pred))


def _mean_target(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return float(np.mean(y_true))
