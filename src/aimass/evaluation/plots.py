"""Report figures as PNG bytes (matplotlib's Agg canvas: no display, no global state).

Each function takes plain numbers from a section's JSON data and returns PNG
bytes sized to stay legible when the HTML is read at a laptop's width.
``pyplot`` is never imported, so rendering is thread-safe and never changes a
user's matplotlib backend.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

__all__ = [
    "bar_groups",
    "confusion_matrix_plot",
    "figure_png",
    "reliability_plot",
    "residual_plot",
    "robustness_plot",
]

DPI = 110
BLUE, ORANGE, GREY, RED = "#2563eb", "#ea580c", "#6b7280", "#dc2626"


def figure_png(draw: Callable[[Any], None], *, width: float = 7.0, height: float = 4.0) -> bytes:
    """Draw on a fresh Agg figure and return it as PNG bytes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    draw(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return buffer.getvalue()


def _short(label: str, limit: int = 18) -> str:
    return label if len(label) <= limit else label[: limit - 1] + "…"


def confusion_matrix_plot(matrix: Sequence[Sequence[int]], labels: Sequence[str]) -> bytes:
    """Row-normalised confusion matrix with counts in the cells."""
    counts = np.asarray(matrix, dtype=np.float64)
    rows = counts.sum(axis=1, keepdims=True)
    share = np.divide(counts, rows, out=np.zeros_like(counts), where=rows > 0)
    n = len(labels)
    size = min(3.0 + 0.45 * n, 9.0)

    def draw(fig: Any) -> None:
        ax = fig.add_subplot()
        image = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
        ticks = range(n)
        names = [_short(str(x)) for x in labels]
        ax.set_xticks(ticks, names, rotation=45 if n > 4 else 0, ha="right" if n > 4 else "center")
        ax.set_yticks(ticks, names)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        if n <= 15:
            for i in range(n):
                for j in range(n):
                    colour = "white" if share[i, j] > 0.6 else "black"
                    ax.text(
                        j,
                        i,
                        f"{int(counts[i, j])}\n{share[i, j]:.0%}",
                        ha="center",
                        va="center",
                        color=colour,
                        fontsize=8,
                    )
        fig.colorbar(image, ax=ax, fraction=0.046, label="share of the true class")

    return figure_png(draw, width=size + 1.2, height=size)


def reliability_plot(bins: Sequence[dict[str, Any]], ece: float) -> bytes:
    """Accuracy against confidence per bin, the diagonal, and the number of predictions per bin."""
    lower = np.array([b["lower"] for b in bins])
    upper = np.array([b["upper"] for b in bins])
    count = np.array([b["count"] for b in bins])
    acc = np.array([b["accuracy"] for b in bins])
    conf = np.array([b["confidence"] for b in bins])
    filled = count > 0

    def draw(fig: Any) -> None:
        top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])
        width = upper - lower
        top.bar(
            lower[filled],
            acc[filled],
            width=width[filled],
            align="edge",
            color=BLUE,
            alpha=0.8,
            edgecolor="white",
            label="accuracy in bin",
        )
        top.plot([0, 1], [0, 1], ls="--", color=GREY, label="perfect calibration")
        top.scatter(
            conf[filled], acc[filled], color=ORANGE, zorder=3, s=14, label="mean confidence"
        )
        top.set_ylim(0, 1)
        top.set_ylabel("accuracy")
        top.set_title(f"Reliability (ECE {ece:.3f})")
        top.legend(loc="upper left", fontsize=8)
        bottom.bar(lower, count, width=width, align="edge", color=GREY, edgecolor="white")
        bottom.set_ylabel("count")
        bottom.set_xlabel("confidence of the predicted class")
        bottom.set_xlim(0, 1)

    return figure_png(draw, width=6.5, height=5.0)


def residual_plot(y_true: np.ndarray, y_pred: np.ndarray) -> bytes:
    """Predicted against true, and residuals against predicted."""
    residual = y_pred - y_true

    def draw(fig: Any) -> None:
        left, right = fig.subplots(1, 2)
        lo, hi = float(min(y_true.min(), y_pred.min())), float(max(y_true.max(), y_pred.max()))
        left.scatter(y_true, y_pred, s=8, alpha=0.5, color=BLUE)
        left.plot([lo, hi], [lo, hi], ls="--", color=GREY)
        left.set_xlabel("true value")
        left.set_ylabel("predicted value")
        left.set_title("Predicted vs true")
        right.scatter(y_pred, residual, s=8, alpha=0.5, color=ORANGE)
        right.axhline(0.0, ls="--", color=GREY)
        right.set_xlabel("predicted value")
        right.set_ylabel("residual (predicted − true)")
        right.set_title("Residuals")

    return figure_png(draw, width=8.0, height=3.8)


def bar_groups(
    groups: Sequence[str],
    panels: Sequence[tuple[str, dict[str, Sequence[float]], Sequence[tuple[float, float]] | None]],
) -> bytes:
    """One panel per metric: bars per group (several series side by side), optional CI whiskers.

    Args:
        groups: Group names (x axis).
        panels: ``(title, {series: values per group}, intervals or None)``; the
            intervals, when given, belong to the first series.
    """
    names = [_short(str(g), 14) for g in groups]
    x = np.arange(len(groups))
    colours = [BLUE, ORANGE, "#16a34a", "#9333ea", GREY, RED]
    width = max(5.5, min(1.0 + 0.55 * len(groups) * len(panels), 10.0))

    def draw(fig: Any) -> None:
        axes = np.atleast_1d(fig.subplots(1, len(panels), squeeze=False)[0])
        for ax, (title, series, intervals) in zip(axes, panels, strict=True):
            k = max(len(series), 1)
            bar = 0.8 / k
            for i, (label, values) in enumerate(series.items()):
                offset = (i - (k - 1) / 2) * bar
                yerr = None
                if intervals is not None and i == 0:
                    vals = np.asarray(values, dtype=np.float64)
                    lo = np.array([a for a, _b in intervals])
                    hi = np.array([b for _a, b in intervals])
                    yerr = np.vstack([np.clip(vals - lo, 0, None), np.clip(hi - vals, 0, None)])
                ax.bar(
                    x + offset,
                    values,
                    width=bar,
                    color=colours[i % len(colours)],
                    label=_short(label, 24),
                    yerr=yerr,
                    capsize=3 if yerr is not None else 0,
                )
            ax.set_xticks(
                x,
                names,
                rotation=45 if len(groups) > 4 else 0,
                ha="right" if len(groups) > 4 else "center",
            )
            ax.set_title(title)
            values = [v for vs in series.values() for v in vs]
            if values and min(values) >= 0.0 and max(values) <= 1.0:
                ax.set_ylim(0.0, 1.05)  # rates: keep the full scale so gaps are not exaggerated
            if len(series) > 1:
                ax.legend(fontsize=7)

    return figure_png(draw, width=width, height=3.8)


def robustness_plot(rows: Sequence[dict[str, Any]], *, metric: str, clean: float) -> bytes:
    """The metric under each perturbation and strength, against the clean value."""
    by_name: dict[str, list[tuple[float, float]]] = {}
    for row in rows:
        by_name.setdefault(row["perturbation"], []).append((row["strength"], row[metric]))

    def draw(fig: Any) -> None:
        ax = fig.add_subplot()
        labels, values, colours = [], [], []
        palette = [BLUE, ORANGE, "#16a34a", "#9333ea", RED, GREY]
        for i, (name, points) in enumerate(by_name.items()):
            for strength, value in points:
                labels.append(f"{name}\n{strength:g}")
                values.append(value)
                colours.append(palette[i % len(palette)])
        x = np.arange(len(values))
        ax.bar(x, values, color=colours)
        ax.axhline(clean, ls="--", color=GREY, label=f"clean {metric} {clean:.3f}")
        ax.set_xticks(x, labels, fontsize=8)
        ax.set_ylabel(metric.replace("_", " "))
        ax.legend(fontsize=8)

    return figure_png(draw, width=max(6.0, min(1.2 + 0.7 * len(rows), 10.0)), height=3.6)
