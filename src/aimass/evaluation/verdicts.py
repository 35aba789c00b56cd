"""Verdicts: does each section of a report pass, warn or fail, and why.

Every section of a report gets a verdict — ``pass``, ``warn`` or ``fail`` — computed
from that section's JSON against the thresholds of :class:`Thresholds`, with one
short sentence per finding that names the number and the threshold. The report as a
whole gets the worst section verdict. All thresholds live here, so they are tested
and documented together (the table in ``docs/explanations.md`` lists them).

What the statuses mean:

* ``fail``: the report shows a problem that should stop an approval as it is (a class
  the model never predicts, a test set too small to measure anything, a large gap
  between groups or a large loss of quality under a realistic perturbation).
* ``warn``: a number a reviewer should look at before approving, or a check that
  could not run (a skipped section: the report cannot vouch for what it did not
  measure).
* ``pass``: every check of the section is within its thresholds. Informational
  sections (explanations, resources, privacy, generation samples) pass unless
  something in them failed or was skipped; a section that does not apply to the
  model passes and says why.

The rules read only a section's stored JSON (``key``, ``status``, ``reason``, ``data``),
so they apply to any report, including a stored one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any

__all__ = [
    "DEFAULT_THRESHOLDS",
    "FAIL",
    "PASS",
    "STATUSES",
    "WARN",
    "Thresholds",
    "Verdict",
    "report_verdict",
    "section_verdict",
    "worst",
]

PASS, WARN, FAIL = "pass", "warn", "fail"
STATUSES = (PASS, WARN, FAIL)
_RANK = {PASS: 0, WARN: 1, FAIL: 2}


@dataclass(frozen=True)
class Thresholds:
    """The thresholds every verdict is computed against.

    Rates (accuracy, F1, recall, selection rates, ECE) are on a 0–1 scale and their
    gaps and drops are absolute differences; errors in the target's own units (MAE)
    and perplexities are compared relatively, so one number fits every scale.

    Attributes:
        rows_fail: Fewer evaluated rows than this fail: a test set this small cannot
            measure anything (one row moves accuracy by more than 3 points).
        rows_warn: Fewer rows than this warn: the estimate is still unstable (the 95 %
            interval of an accuracy near 0.8 on 100 rows is about ±0.08).
        f1_accuracy_gap_warn: Accuracy above macro F1 by more than this warns: the
            minority classes are handled much worse than the headline suggests.
        class_recall_warn: A class (or entity type) with recall below this warns.
        ece_warn: Expected calibration error above this warns.
        ece_fail: Expected calibration error above this fails.
        fairness_gap_warn: A gap between groups in a rate (accuracy, selection rate,
            equalized odds, entity F1/recall) above this warns.
        fairness_gap_fail: ... and above this fails (except the selection-rate gap,
            demographic parity, which only warns: it includes real differences
            between the groups' labels).
        fairness_relative_warn: A relative gap between groups (MAE gap / overall MAE;
            highest / lowest group perplexity − 1) above this warns.
        fairness_relative_fail: ... and above this fails.
        group_rows_warn: A compared group with fewer rows than this warns: its gap to
            the other groups is not reliable.
        robustness_drop_warn: A drop in accuracy (entity F1) under a perturbation
            above this warns.
        robustness_drop_fail: ... and above this fails.
        robustness_relative_warn: A relative increase of MAE (perplexity) under a
            perturbation above this warns.
        robustness_relative_fail: ... and above this fails.
    """

    rows_fail: int = 30
    rows_warn: int = 100
    f1_accuracy_gap_warn: float = 0.2
    class_recall_warn: float = 0.1
    ece_warn: float = 0.1
    ece_fail: float = 0.2
    fairness_gap_warn: float = 0.1
    fairness_gap_fail: float = 0.2
    fairness_relative_warn: float = 0.25
    fairness_relative_fail: float = 0.5
    group_rows_warn: int = 30
    robustness_drop_warn: float = 0.05
    robustness_drop_fail: float = 0.15
    robustness_relative_warn: float = 0.1
    robustness_relative_fail: float = 0.3

    def to_dict(self) -> dict[str, float]:
        """JSON form (recorded in the report's top-level verdict)."""
        return asdict(self)


DEFAULT_THRESHOLDS = Thresholds()


@dataclass(frozen=True)
class Verdict:
    """A verdict and its reasons (one sentence each, the gravest first)."""

    status: str = PASS
    reasons: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON form: ``{"status": ..., "reasons": [...]}``."""
        return {"status": self.status, "reasons": list(self.reasons)}


def worst(statuses: Iterable[str]) -> str:
    """The gravest of ``statuses`` (``pass`` when there are none)."""
    return max(statuses, key=_RANK.__getitem__, default=PASS)


class _Findings:
    """Reasons collected with their status; the verdict is the worst of them."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str]] = []

    def add(self, status: str, reason: str) -> None:
        self.items.append((status, reason))

    def grade(
        self, value: float, warn: float, fail: float | None, reason: Callable[[str], str]
    ) -> None:
        """Add ``reason(thresholds text)`` when ``value`` is above ``warn`` (or ``fail``)."""
        bounds = f"warn above {warn:g}" + (f", fail above {fail:g}" if fail is not None else "")
        value = round(value, 9)  # 0.9 - 0.7 is exactly at the threshold, not above it
        if fail is not None and value > fail:
            self.add(FAIL, reason(bounds))
        elif value > warn:
            self.add(WARN, reason(bounds))

    def verdict(self) -> Verdict:
        ordered = sorted(self.items, key=lambda item: -_RANK[item[0]])
        return Verdict(worst(s for s, _ in ordered), tuple(r for _, r in ordered))


_Rule = Callable[[_Findings, dict[str, Any], dict[str, Any], Thresholds], None]


def _rows(f: _Findings, n: int, what: str, t: Thresholds) -> None:
    bounds = f"warn below {t.rows_warn}, fail below {t.rows_fail}"
    if n < t.rows_fail:
        f.add(
            FAIL,
            f"{what} has {n} rows; at least {t.rows_warn} are needed for a stable estimate and "
            f"below {t.rows_fail} the numbers mean little ({bounds})",
        )
    elif n < t.rows_warn:
        f.add(
            WARN,
            f"{what} has {n} rows; at least {t.rows_warn} are needed for a stable estimate "
            f"({bounds})",
        )


def _split(dataset: dict[str, Any]) -> str:
    split = dataset.get("split")
    return f"the {split} split" if split else "the evaluation data"


def _classification_quality(
    f: _Findings, data: dict[str, Any], dataset: dict[str, Any], t: Thresholds
) -> None:
    _rows(f, int(data["count"]), _split(dataset), t)
    labels, matrix = data["labels"], data["confusion_matrix"]
    for j, label in enumerate(labels):
        support = data["per_class"].get(label, {}).get("support", 0)
        predicted = sum(row[j] for row in matrix) if matrix else 0
        recall = data["per_class"].get(label, {}).get("recall", 0.0)
        if support and not predicted:
            f.add(
                FAIL,
                f"class {label!r} is in the test labels ({support} rows) but the model never "
                "predicts it",
            )
        elif support and recall < t.class_recall_warn:
            f.add(
                WARN,
                f"class {label!r} has recall {recall:.2f}: the model finds almost none of its "
                f"{support} rows (warn below {t.class_recall_warn:g})",
            )
    # Macro F1 over the classes in the test labels: a class absent from them scores 0 in the
    # stored macro F1 (scikit-learn's zero_division=0) without saying anything about the model.
    present = [m["f1"] for m in data["per_class"].values() if m["support"]]
    accuracy = data["accuracy"]
    f1 = sum(present) / len(present) if present else data["f1_macro"]
    f.grade(
        accuracy - f1,
        t.f1_accuracy_gap_warn,
        None,
        lambda b: (
            f"macro F1 {f1:.2f} is {accuracy - f1:.2f} below accuracy {accuracy:.2f}: "
            f"some classes are handled much worse than the accuracy suggests ({b})"
        ),
    )
    baseline = data["majority_baseline_accuracy"]
    if data["count"] and accuracy <= baseline:
        f.add(
            WARN,
            f"accuracy {accuracy:.2f} is no better than always predicting the most frequent "
            f"class ({baseline:.2f})",
        )


def _regression_quality(
    f: _Findings, data: dict[str, Any], dataset: dict[str, Any], t: Thresholds
) -> None:
    _rows(f, int(data["count"]), _split(dataset), t)
    if data["count"] and data["mae"] >= data["mean_baseline_mae"]:
        f.add(
            WARN,
            f"MAE {data['mae']:.4g} is no better than always predicting the mean "
            f"(MAE {data['mean_baseline_mae']:.4g})",
        )


def _language_quality(
    f: _Findings, data: dict[str, Any], dataset: dict[str, Any], t: Thresholds
) -> None:
    _rows(f, int(data["rows_scored"]), f"{_split(dataset)} (rows with a token to score)", t)


def _entity_quality(
    f: _Findings, data: dict[str, Any], dataset: dict[str, Any], t: Thresholds
) -> None:
    _rows(f, int(data["count"]), _split(dataset), t)
    for kind, m in data["per_type"].items():
        if not m["support"]:
            continue
        if m["recall"] == 0:
            f.add(
                FAIL,
                f"entity type {kind!r} occurs {m['support']} times in the test data but the "
                "model never finds one",
            )
        elif m["recall"] < t.class_recall_warn:
            f.add(
                WARN,
                f"entity type {kind!r} has recall {m['recall']:.2f} over {m['support']} "
                f"entities (warn below {t.class_recall_warn:g})",
            )


def _calibration(
    f: _Findings, data: dict[str, Any], dataset: dict[str, Any], t: Thresholds
) -> None:
    ece = data["ece"]
    f.grade(
        ece,
        t.ece_warn,
        t.ece_fail,
        lambda b: (
            f"expected calibration error is {ece:.3f}: the model's confidence is off by "
            f"{ece * 100:.0f} points on average ({b})"
        ),
    )


def _groups(f: _Findings, data: dict[str, Any], t: Thresholds) -> None:
    small = [g for g in data["groups"] if g["count"] < t.group_rows_warn]
    if small:
        listing = ", ".join(f"{g['group']!r} ({g['count']} rows)" for g in small[:10])
        more = f" and {len(small) - 10} more" if len(small) > 10 else ""
        f.add(
            WARN,
            f"group(s) {listing}{more} have fewer than {t.group_rows_warn} rows: gaps between "
            f"groups are not reliable at that size (warn below {t.group_rows_warn})",
        )
    excluded = data["excluded_groups"]
    if excluded:
        f.add(
            WARN,
            f"{len(excluded)} group(s) had fewer than {data['min_group_size']} rows and were "
            "not compared at all",
        )


def _gap(f: _Findings, value: float | None, what: str, t: Thresholds) -> None:
    if value is None:
        return
    f.grade(
        value,
        t.fairness_gap_warn,
        t.fairness_gap_fail,
        lambda b: f"the {what} differs by {value:.2f} between groups ({b})",
    )


def _classification_fairness(
    f: _Findings, data: dict[str, Any], dataset: dict[str, Any], t: Thresholds
) -> None:
    _gap(f, data["accuracy_difference"], "accuracy", t)
    # Demographic parity only warns: it also counts a real difference between the groups'
    # labels (a perfect model has it when the groups' base rates differ); equalized odds
    # conditions on the true label, so it measures what the model adds, and can fail.
    parity = data["demographic_parity_difference"]["max"]
    f.grade(
        parity,
        t.fairness_gap_warn,
        None,
        lambda b: (
            f"the selection rate of a class differs by {parity:.2f} between groups; part "
            f"of it may be a real difference in the groups' labels ({b})"
        ),
    )
    _gap(f, data["equalized_odds_difference"]["max"], "true- or false-positive rate of a class", t)
    _groups(f, data, t)


def _regression_fairness(
    f: _Findings, data: dict[str, Any], dataset: dict[str, Any], t: Thresholds
) -> None:
    overall, gap = data["overall"]["mae"], data["mae_difference"]
    if overall > 0:
        f.grade(
            gap / overall,
            t.fairness_relative_warn,
            t.fairness_relative_fail,
            lambda b: (
                f"the MAE differs by {gap:.4g} between groups, {gap / overall:.0%} of the "
                f"overall MAE {overall:.4g} (relative gap: {b})"
            ),
        )
    _groups(f, data, t)


def _language_fairness(
    f: _Findings, data: dict[str, Any], dataset: dict[str, Any], t: Thresholds
) -> None:
    ratio = data["perplexity_ratio"]
    if ratio is not None:
        f.grade(
            ratio - 1,
            t.fairness_relative_warn,
            t.fairness_relative_fail,
            lambda b: f"the highest group perplexity is {ratio:.2f}× the lowest (ratio − 1: {b})",
        )
    _groups(f, data, t)


def _entity_fairness(
    f: _Findings, data: dict[str, Any], dataset: dict[str, Any], t: Thresholds
) -> None:
    _gap(f, data["f1_difference"], "entity F1", t)
    _gap(f, data["recall_difference"], "entity recall", t)
    _groups(f, data, t)


def _robustness(field: str, what: str, *, relative: bool = False) -> _Rule:
    """A rule on the worst row's ``field``: an absolute drop, or a relative increase."""

    def rule(f: _Findings, data: dict[str, Any], dataset: dict[str, Any], t: Thresholds) -> None:
        rows = [r for r in data["results"] if r.get(field) is not None]
        if not rows:
            f.add(WARN, "no perturbation could be applied, so robustness was not measured")
            return
        w = max(rows, key=lambda r: r[field])
        where = f"under {w['perturbation']} at strength {w['strength']:g}"
        if relative and field == "perplexity_ratio":
            value = w[field] - 1
            f.grade(
                value,
                t.robustness_relative_warn,
                t.robustness_relative_fail,
                lambda b: (
                    f"perplexity rises to {w[field]:.2f}× the clean one {where} (ratio − 1: {b})"
                ),
            )
        elif relative:
            clean = data["clean"].get("mae") or 0.0
            if clean <= 0:
                return
            value = w[field] / clean
            f.grade(
                value,
                t.robustness_relative_warn,
                t.robustness_relative_fail,
                lambda b: (
                    f"MAE rises by {w[field]:.4g} ({value:.0%} of the clean {clean:.4g}) "
                    f"{where} (relative increase: {b})"
                ),
            )
        else:
            f.grade(
                w[field],
                t.robustness_drop_warn,
                t.robustness_drop_fail,
                lambda b: f"{what} drops by {w[field]:.2f} {where} ({b})",
            )

    return rule


def _resources(f: _Findings, data: dict[str, Any], dataset: dict[str, Any], t: Thresholds) -> None:
    memory = data["memory"]
    if memory["status"] == "failed":
        f.add(WARN, f"serving memory could not be measured: {memory.get('reason', 'no reason')}")


#: The rule of each section key; sections without one only get the status rules.
RULES: dict[str, _Rule] = {
    "quality.classification": _classification_quality,
    "quality.regression": _regression_quality,
    "quality.language-model": _language_quality,
    "quality.token-classification": _entity_quality,
    "calibration": _calibration,
    "fairness.classification": _classification_fairness,
    "fairness.regression": _regression_fairness,
    "fairness.language-model": _language_fairness,
    "fairness.token-classification": _entity_fairness,
    "robustness": _robustness("accuracy_drop", "accuracy"),
    "robustness.regression": _robustness("mae_increase", "MAE", relative=True),
    "robustness.language-model": _robustness("perplexity_ratio", "perplexity", relative=True),
    "robustness.token-classification": _robustness("f1_drop", "entity F1"),
    "resources": _resources,
}


def section_verdict(
    section: dict[str, Any],
    dataset: dict[str, Any] | None = None,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
) -> Verdict:
    """The verdict of one section of a report document.

    Args:
        section: The section's JSON (``key``, ``title``, ``status``, ``reason``, ``data``).
        dataset: The report's ``dataset`` object (names the split in reasons).
        thresholds: What to compare against.
    """
    f = _Findings()
    status, reason = section.get("status"), section.get("reason") or ""
    if status == "skipped":
        f.add(WARN, f"not checked: {reason}")
    elif status == "not-applicable":
        f.add(PASS, f"not applicable: {reason}")
    else:
        rule = RULES.get(section.get("key", ""))
        if rule is not None:
            rule(f, section.get("data") or {}, dataset or {}, thresholds)
    return f.verdict()


def report_verdict(sections: dict[str, dict[str, Any]]) -> Verdict:
    """The report's verdict: the worst section verdict, with every warning and failure.

    ``sections`` are the report's sections, each with its ``verdict`` already set.
    """
    found: list[tuple[str, str]] = []
    for section in sections.values():
        verdict = section.get("verdict") or {"status": PASS, "reasons": []}
        if verdict["status"] != PASS:
            found.extend(
                (verdict["status"], f"{section['title']}: {r}") for r in verdict["reasons"]
            )
    if not found:
        return Verdict(PASS, ("every section is within its thresholds",))
    found.sort(key=lambda item: -_RANK[item[0]])
    return Verdict(worst(s for s, _ in found), tuple(r for _, r in found))
