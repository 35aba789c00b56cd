"""Token classification (NER): entity-level precision/recall/F1 overall, per type, by group
and under perturbation, plus a token-level tag confusion matrix.

Entities are scored as training scores them (:func:`aimass.metrics.entity_metrics`,
seqeval-style: an entity counts only when type, start and end all match;
micro-averaged). The model tags each dataset word by its first sub-word
(``ModelUnderTest.tag``), so gold and predicted tags line up word by word.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from aimass.evaluation import plots
from aimass.evaluation.base import ReportContext, Section, SectionResult, register_section
from aimass.evaluation.html import esc, img, kv_table, table
from aimass.evaluation.perturbations import Perturbation
from aimass.evaluation.sections.fairness import (
    PLOT_GROUPS,
    GroupFairness,
    definitions,
    excluded_note,
    intro,
)
from aimass.evaluation.sections.robustness import PerturbationRobustness
from aimass.metrics import classification_metrics, entity_metrics, entity_spans

__all__ = ["EntityFairness", "EntityQuality", "EntityRobustness", "tag_confusion"]


def tag_confusion(
    gold: list[list[str]], pred: list[list[str]], labels: list[str]
) -> dict[str, Any]:
    """Token-level accuracy, per-tag scores and the (tags × tags) confusion matrix."""
    index = {label: i for i, label in enumerate(labels)}
    true = np.array([index[t] for row in gold for t in row], dtype=np.int64)
    found = np.array([index.get(t, 0) for row in pred for t in row], dtype=np.int64)
    return classification_metrics(true, found, labels)


def _rows(ctx: ReportContext, idx: np.ndarray | None = None) -> tuple[list[Any], list[Any]]:
    gold, pred = ctx.data.labels, ctx.predicted_tags
    if idx is None:
        return list(gold), list(pred)
    return [gold[i] for i in idx], [pred[i] for i in idx]


class EntityQuality(Section):
    """Entity P/R/F1 (micro and per type), token accuracy and the tag confusion matrix."""

    key = "quality.token-classification"
    name = "quality"
    title = "Quality"

    def compute(self, ctx: ReportContext) -> SectionResult:
        gold, pred = _rows(ctx)
        entities = entity_metrics(gold, pred)
        labels = list(ctx.model.labels)
        tokens = tag_confusion(gold, pred, labels)
        data = {
            "precision": entities["precision"],
            "recall": entities["recall"],
            "f1": entities["f1"],
            "per_type": entities["per_type"],
            "entities": entities["entities"],
            "predicted_entities": sum(len(entity_spans(row)) for row in pred),
            "count": len(gold),
            "sentence_accuracy": float(np.mean([g == p for g, p in zip(gold, pred, strict=True)]))
            if gold
            else 0.0,
            "token_accuracy": tokens["accuracy"],
            "tokens": int(sum(len(row) for row in gold)),
            "labels": labels,
            "confusion_matrix": tokens["confusion_matrix"],
            "scoring": "entity-level, seqeval-style (type, start and end must match), "
            "micro-averaged over all entities",
        }
        return SectionResult(
            data=data,
            figures={
                "confusion_matrix": plots.confusion_matrix_plot(data["confusion_matrix"], labels)
            },
            summary={
                "entity_f1": data["f1"],
                "entity_precision": data["precision"],
                "entity_recall": data["recall"],
                "token_accuracy": data["token_accuracy"],
            },
        )

    def render(self, data: dict[str, Any], figures: dict[str, str]) -> str:
        return (
            f'<p class="note">Scoring: {esc(data["scoring"])}.</p>'
            + kv_table(
                [
                    ("sentences", data["count"]),
                    (
                        "gold entities / predicted entities",
                        f"{data['entities']:,} / {data['predicted_entities']:,}",
                    ),
                    ("entity precision (micro)", data["precision"]),
                    ("entity recall (micro)", data["recall"]),
                    ("entity F1 (micro)", data["f1"]),
                    ("token (tag) accuracy", data["token_accuracy"]),
                    ("sentences tagged entirely right", data["sentence_accuracy"]),
                ]
            )
            + "<h3>Per entity type</h3>"
            + table(
                ("type", "precision", "recall", "F1", "support"),
                [
                    (t, v["precision"], v["recall"], v["f1"], v["support"])
                    for t, v in data["per_type"].items()
                ],
            )
            + "<h3>Tag confusion matrix</h3>"
            + '<p class="note">Word-level: rows are gold tags, columns predicted tags.</p>'
            + img(figures.get("confusion_matrix"), "tag confusion matrix")
        )


ENTITY_FAIRNESS_DEFINITIONS = {
    "groups": "rows grouped by the value of the group field; groups below the minimum size are "
    "reported but excluded from the differences",
    "f1": "per group: micro entity F1 over the group's sentences",
    "f1_difference": "max - min over groups of entity F1",
    "recall_difference": "max - min over groups of entity recall (how unevenly entities are "
    "missed)",
    "parity_metrics": "demographic parity and equalized odds are defined per predicted class of "
    "a row; a tagger predicts spans, so the entity-level gaps above are reported instead",
}


class EntityFairness(GroupFairness):
    """Entity F1, precision and recall per group, and their largest gaps."""

    key = "fairness.token-classification"

    def compare_groups(
        self, ctx: ReportContext, mask: np.ndarray, groups: np.ndarray, eligible: list[str]
    ) -> SectionResult:
        gold, pred = _rows(ctx, np.flatnonzero(mask))
        by_group = []
        for g in eligible:
            rows = np.flatnonzero(groups == g)
            m = entity_metrics([gold[i] for i in rows], [pred[i] for i in rows])
            by_group.append(
                {
                    "group": g,
                    "count": len(rows),
                    "entities": m["entities"],
                    "precision": m["precision"],
                    "recall": m["recall"],
                    "f1": m["f1"],
                }
            )
        overall = entity_metrics(gold, pred)
        f1s = [g["f1"] for g in by_group]
        recalls = [g["recall"] for g in by_group]
        data = {
            "groups": by_group,
            "overall": {
                "f1": overall["f1"],
                "precision": overall["precision"],
                "recall": overall["recall"],
            },
            "f1_difference": max(f1s) - min(f1s),
            "recall_difference": max(recalls) - min(recalls),
            "definitions": ENTITY_FAIRNESS_DEFINITIONS,
        }
        shown = by_group[:PLOT_GROUPS]
        figure = plots.bar_groups(
            [g["group"] for g in shown],
            [
                (
                    "entity scores",
                    {k: [g[k] for g in shown] for k in ("precision", "recall", "f1")},
                    None,
                )
            ],
        )
        return SectionResult(
            data=data,
            figures={"groups": figure},
            summary={
                "entity_f1_difference": data["f1_difference"],
                "entity_recall_difference": data["recall_difference"],
            },
        )

    def render(self, data: dict[str, Any], figures: dict[str, str]) -> str:
        return (
            intro(data)
            + kv_table(
                [
                    ("entity F1 difference between groups", data["f1_difference"]),
                    ("entity recall difference between groups", data["recall_difference"]),
                    ("overall entity F1 (compared rows)", data["overall"]["f1"]),
                ]
            )
            + img(figures.get("groups"), "entity scores per group")
            + "<h3>Per group</h3>"
            + table(
                ("group", "sentences", "entities", "precision", "recall", "F1"),
                [
                    (g["group"], g["count"], g["entities"], g["precision"], g["recall"], g["f1"])
                    for g in data["groups"]
                ],
            )
            + excluded_note(data)
            + definitions(data)
        )


class EntityRobustness(PerturbationRobustness):
    """Entity F1 when the words' characters change (typos, casing, whitespace).

    Only perturbations that keep the words in number and order apply: the gold
    tags belong to words, so after a word is dropped or a name is replaced by a
    placeholder there is no gold tag sequence to score against.
    """

    key = "robustness.token-classification"
    metric = "f1"
    worst = ("worst_f1_drop", "f1_drop")

    def inputs(self, ctx: ReportContext, idx: np.ndarray) -> list[str]:
        assert ctx.data.tokens is not None
        return [" ".join(ctx.data.tokens[i]) for i in idx]

    def perturbed_input(self, ctx: ReportContext) -> str:
        return "the words of each sentence (joined by spaces, perturbed, split again)"

    def not_applicable(self, perturbation: Perturbation) -> str | None:
        if perturbation.keeps_words:
            return None
        return (
            "it adds, removes or merges words, so the gold tags no longer line up with the "
            "words and entity F1 is undefined"
        )

    def measure(
        self,
        ctx: ReportContext,
        idx: np.ndarray,
        perturbed: list[str] | None,
        clean: dict[str, Any] | None,
    ) -> dict[str, Any]:
        gold, pred = _rows(ctx, idx)
        if perturbed is not None:
            assert ctx.data.tokens is not None
            words = [text.split() for text in perturbed]
            # keeps_words perturbations never change the word count; guard the alignment anyway.
            words = [
                w if len(w) == len(ctx.data.tokens[i]) else ctx.data.tokens[i]
                for w, i in zip(words, idx, strict=True)
            ]
            pred = ctx.tags(words)
        m = entity_metrics(gold, pred)
        out: dict[str, Any] = {"f1": m["f1"], "precision": m["precision"], "recall": m["recall"]}
        if clean is not None:
            clean_pred = _rows(ctx, idx)[1]
            out["f1_drop"] = clean["f1"] - m["f1"]
            out["flip_rate"] = (
                float(np.mean([a != b for a, b in zip(pred, clean_pred, strict=True)]))
                if len(idx)
                else 0.0
            )
        return out

    def columns(self, data: dict[str, Any]) -> list[tuple[str, str]]:
        return [
            ("entity F1", "f1"),
            ("F1 drop", "f1_drop"),
            ("sentences re-tagged", "flip_rate"),
            ("precision", "precision"),
            ("recall", "recall"),
        ]

    def clean_note(self, data: dict[str, Any]) -> str:
        return (
            f"clean entity F1 {data['clean']['f1']:.4f} on the same rows; sentences re-tagged: "
            "share whose predicted tag sequence changed"
        )


register_section(EntityQuality())
register_section(EntityFairness())
register_section(EntityRobustness())
