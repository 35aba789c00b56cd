"""Verdicts: every rule at and around its thresholds, on hand-written section JSON."""

import copy

import pytest

from aimass.evaluation import (
    DEFAULT_THRESHOLDS,
    REPORT_SCHEMA,
    Thresholds,
    report_verdict,
    section_verdict,
)
from aimass.evaluation.report import render_html
from aimass.evaluation.verdicts import RULES, worst

DATASET = {"split": "test"}


def _section(key, data, *, status="ok", reason=None, title="Section"):
    return {"key": key, "title": title, "status": status, "reason": reason, "data": data}


def _verdict(key, data, **kwargs):
    return section_verdict(_section(key, data), DATASET, **kwargs)


def classification(
    matrix=((90, 10), (10, 90)),
    labels=("neg", "pos"),
):
    """Classification quality JSON from a confusion matrix (rows true, columns predicted)."""
    matrix = [list(row) for row in matrix]
    n = sum(map(sum, matrix))
    per_class, f1s = {}, []
    for i, label in enumerate(labels):
        support, predicted = sum(matrix[i]), sum(row[i] for row in matrix)
        tp = matrix[i][i]
        precision = tp / predicted if predicted else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[label] = {"precision": precision, "recall": recall, "f1": f1, "support": support}
        f1s.append(f1)
    return {
        "accuracy": sum(matrix[i][i] for i in range(len(labels))) / n,
        "f1_macro": sum(f1s) / len(f1s),
        "per_class": per_class,
        "confusion_matrix": matrix,
        "count": n,
        "labels": list(labels),
        "majority_baseline_accuracy": max(sum(r) for r in matrix) / n,
    }


# -- test-set size ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rows", "status"),
    [
        (6, "fail"),
        (29, "fail"),
        (30, "warn"),
        (50, "warn"),
        (99, "warn"),
        (100, "pass"),
        (200, "pass"),
    ],
)
def test_the_test_set_size_rule(rows, status):
    right = rows // 2
    data = classification(((right, 0), (0, rows - right)))
    verdict = _verdict("quality.classification", data)
    assert verdict.status == status
    if status != "pass":
        assert verdict.reasons[0].startswith(f"the test split has {rows} rows; at least 100")
        assert "(warn below 100, fail below 30)" in verdict.reasons[0]


def test_a_six_row_test_set_fails_with_the_number_and_the_threshold():
    verdict = _verdict("quality.classification", classification(((3, 0), (0, 3))))
    assert verdict.status == "fail"
    assert verdict.reasons == (
        "the test split has 6 rows; at least 100 are needed for a stable estimate and below 30 "
        "the numbers mean little (warn below 100, fail below 30)",
    )


# -- classification quality --------------------------------------------------------------


def test_a_good_classifier_passes():
    verdict = _verdict("quality.classification", classification())
    assert verdict.status == "pass" and verdict.reasons == ()
    assert verdict.to_dict() == {"status": "pass", "reasons": []}


def test_a_class_the_model_never_predicts_fails():
    data = classification(((120, 0), (80, 0)))
    verdict = _verdict("quality.classification", data)
    assert verdict.status == "fail"
    assert verdict.reasons[0] == (
        "class 'pos' is in the test labels (80 rows) but the model never predicts it"
    )
    # Always predicting one class is also no better than the majority baseline.
    assert any(
        "no better than always predicting the most frequent class" in r for r in verdict.reasons
    )


@pytest.mark.parametrize(("found", "status"), [(9, "warn"), (10, "pass"), (11, "pass")])
def test_a_class_with_recall_below_a_tenth_warns(found, status):
    # Three classes of 100 rows; class c is found `found` times in 100 (recall 0.09 .. 0.11).
    matrix = ((100, 0, 0), (0, 100, 0), (0, 100 - found, found))
    verdict = _verdict("quality.classification", classification(matrix, ("a", "b", "c")))
    recall_reasons = [r for r in verdict.reasons if "recall" in r]
    assert bool(recall_reasons) == (status == "warn")
    if recall_reasons:
        assert recall_reasons[0] == (
            "class 'c' has recall 0.09: the model finds almost none of its 100 rows "
            "(warn below 0.1)"
        )


def test_macro_f1_far_below_accuracy_warns():
    # 900 majority rows all right, 100 minority rows: 5 found, 95 missed.
    data = classification(((900, 0), (95, 5)))
    assert data["accuracy"] - data["f1_macro"] > 0.2
    verdict = _verdict("quality.classification", data)
    assert verdict.status == "warn"
    gap = [r for r in verdict.reasons if "macro F1" in r]
    assert gap and "below accuracy 0.91" in gap[0] and "(warn above 0.2)" in gap[0]


def _with_f1(f1, accuracy=0.9):
    data = classification()
    for m in data["per_class"].values():
        m["f1"] = f1
    return {**data, "accuracy": accuracy, "f1_macro": f1}


def test_a_gap_at_the_threshold_does_not_warn():
    def gap_reasons(data):
        return [r for r in _verdict("quality.classification", data).reasons if "macro F1" in r]

    assert not gap_reasons(_with_f1(0.7))
    assert gap_reasons(_with_f1(0.69))


def test_the_gap_ignores_classes_absent_from_the_test_labels():
    # Class c has no rows: its stored F1 is 0 and drags the stored macro F1 down to 2/3.
    data = classification(((100, 0, 0), (0, 100, 0), (0, 0, 0)), labels=("a", "b", "c"))
    assert data["f1_macro"] == pytest.approx(2 / 3)
    assert _verdict("quality.classification", data).reasons == ()


# -- regression, language models, NER quality ----------------------------------------------


def test_regression_quality_no_better_than_the_mean_warns():
    data = {"count": 200, "mae": 2.0, "mean_baseline_mae": 1.5}
    verdict = _verdict("quality.regression", data)
    assert (
        verdict.status == "warn"
        and "no better than always predicting the mean" in verdict.reasons[0]
    )
    assert _verdict("quality.regression", {**data, "mae": 1.0}).status == "pass"
    assert _verdict("quality.regression", {**data, "mae": 1.0, "count": 12}).status == "fail"


def test_language_model_quality_counts_the_scored_rows():
    assert _verdict("quality.language-model", {"rows": 200, "rows_scored": 200}).status == "pass"
    verdict = _verdict("quality.language-model", {"rows": 200, "rows_scored": 20})
    assert verdict.status == "fail" and "20 rows" in verdict.reasons[0]


def test_an_entity_type_never_found_fails_and_a_rare_one_warns():
    per_type = {
        "PER": {"precision": 0.9, "recall": 0.9, "f1": 0.9, "support": 50},
        "LOC": {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 40},
        "ORG": {"precision": 0.5, "recall": 0.05, "f1": 0.09, "support": 40},
        "MISC": {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0},
    }
    verdict = _verdict("quality.token-classification", {"count": 150, "per_type": per_type})
    assert verdict.status == "fail"
    assert verdict.reasons == (
        "entity type 'LOC' occurs 40 times in the test data but the model never finds one",
        "entity type 'ORG' has recall 0.05 over 40 entities (warn below 0.1)",
    )


# -- calibration -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ece", "status"),
    [(0.05, "pass"), (0.1, "pass"), (0.11, "warn"), (0.2, "warn"), (0.21, "fail")],
)
def test_calibration_error_thresholds(ece, status):
    verdict = _verdict("calibration", {"ece": ece})
    assert verdict.status == status
    if status != "pass":
        assert f"expected calibration error is {ece:.3f}" in verdict.reasons[0]
        assert "(warn above 0.1, fail above 0.2)" in verdict.reasons[0]


# -- fairness ----------------------------------------------------------------------------


def fairness(gap=0.0, *, parity=0.0, odds=0.0, counts=(100, 100), excluded=()):
    return {
        "groups": [{"group": f"g{i}", "count": c} for i, c in enumerate(counts)],
        "excluded_groups": [{"group": g, "count": 2} for g in excluded],
        "min_group_size": 20,
        "accuracy_difference": gap,
        "demographic_parity_difference": {"per_class": {}, "max": parity},
        "equalized_odds_difference": {"per_class": {}, "max": odds},
    }


@pytest.mark.parametrize(
    ("gap", "status"),
    [(0.05, "pass"), (0.1, "pass"), (0.15, "warn"), (0.2, "warn"), (0.25, "fail")],
)
def test_a_fairness_gap_warns_above_a_tenth_and_fails_above_a_fifth(gap, status):
    verdict = _verdict("fairness.classification", fairness(gap))
    assert verdict.status == status
    if status != "pass":
        assert verdict.reasons == (
            f"the accuracy differs by {gap:.2f} between groups (warn above 0.1, fail above 0.2)",
        )


def test_parity_and_equalized_odds_gaps_count_too():
    verdict = _verdict("fairness.classification", fairness(parity=0.3, odds=0.12))
    assert verdict.status == "warn"
    assert verdict.reasons == (
        "the selection rate of a class differs by 0.30 between groups; part of it may be a real "
        "difference in the groups' labels (warn above 0.1)",
        "the true- or false-positive rate of a class differs by 0.12 between groups "
        "(warn above 0.1, fail above 0.2)",
    )
    # Demographic parity never fails on its own; equalized odds does.
    assert _verdict("fairness.classification", fairness(parity=0.9)).status == "warn"
    assert _verdict("fairness.classification", fairness(odds=0.25)).status == "fail"
    # Equalized odds undefined for every class: no finding from it.
    data = fairness()
    data["equalized_odds_difference"]["max"] = None
    assert _verdict("fairness.classification", data).status == "pass"


def test_small_and_excluded_groups_warn_that_the_gap_is_not_reliable():
    verdict = _verdict("fairness.classification", fairness(counts=(100, 29, 30), excluded=("x",)))
    assert verdict.status == "warn"
    assert verdict.reasons == (
        "group(s) 'g1' (29 rows) have fewer than 30 rows: gaps between groups are not reliable "
        "at that size (warn below 30)",
        "1 group(s) had fewer than 20 rows and were not compared at all",
    )


def test_a_large_gap_in_small_groups_still_fails():
    verdict = _verdict("fairness.classification", fairness(0.25, counts=(10, 10)))
    assert verdict.status == "fail" and len(verdict.reasons) == 2


def test_regression_fairness_is_relative_to_the_overall_mae():
    base = {"groups": [], "excluded_groups": [], "min_group_size": 20, "overall": {"mae": 2.0}}
    assert _verdict("fairness.regression", {**base, "mae_difference": 0.5}).status == "pass"
    assert _verdict("fairness.regression", {**base, "mae_difference": 0.6}).status == "warn"
    verdict = _verdict("fairness.regression", {**base, "mae_difference": 1.2})
    assert verdict.status == "fail" and "60% of the overall MAE 2" in verdict.reasons[0]


def test_language_model_and_entity_fairness():
    base = {"groups": [], "excluded_groups": [], "min_group_size": 20}
    assert _verdict("fairness.language-model", {**base, "perplexity_ratio": 1.2}).status == "pass"
    assert _verdict("fairness.language-model", {**base, "perplexity_ratio": 1.3}).status == "warn"
    assert _verdict("fairness.language-model", {**base, "perplexity_ratio": 1.6}).status == "fail"
    assert _verdict("fairness.language-model", {**base, "perplexity_ratio": None}).status == "pass"
    entity = {**base, "f1_difference": 0.05, "recall_difference": 0.25}
    verdict = _verdict("fairness.token-classification", entity)
    assert verdict.status == "fail" and "entity recall differs by 0.25" in verdict.reasons[0]


# -- robustness --------------------------------------------------------------------------


def robustness(*drops, field="accuracy_drop", clean=None):
    return {
        "clean": clean or {"accuracy": 0.9},
        "results": [
            {"perturbation": f"p{i}", "strength": 0.3, field: d} for i, d in enumerate(drops)
        ],
    }


@pytest.mark.parametrize(
    ("drop", "status"),
    [(-0.02, "pass"), (0.05, "pass"), (0.06, "warn"), (0.15, "warn"), (0.2, "fail")],
)
def test_an_accuracy_drop_under_perturbation(drop, status):
    verdict = _verdict("robustness", robustness(0.0, drop))
    assert verdict.status == status
    if status != "pass":
        assert verdict.reasons == (
            f"accuracy drops by {drop:.2f} under p1 at strength 0.3 "
            "(warn above 0.05, fail above 0.15)",
        )


def test_robustness_names_only_the_worst_perturbation_and_warns_when_none_ran():
    verdict = _verdict("robustness", robustness(0.1, 0.3, 0.2))
    assert verdict.status == "fail" and len(verdict.reasons) == 1 and "p1" in verdict.reasons[0]
    verdict = _verdict("robustness", robustness())
    assert verdict.status == "warn" and "no perturbation could be applied" in verdict.reasons[0]


def test_relative_robustness_for_regression_language_models_and_ner():
    mae = {"clean": {"mae": 1.0}}
    rows = robustness(0.05, field="mae_increase", clean=mae["clean"])
    assert _verdict("robustness.regression", rows).status == "pass"
    rows = robustness(0.2, field="mae_increase", clean=mae["clean"])
    assert _verdict("robustness.regression", rows).status == "warn"
    rows = robustness(0.4, field="mae_increase", clean=mae["clean"])
    assert _verdict("robustness.regression", rows).status == "fail"
    ppl = robustness(1.05, 1.5, field="perplexity_ratio", clean={"perplexity": 10.0})
    verdict = _verdict("robustness.language-model", ppl)
    assert verdict.status == "fail" and "1.50× the clean one" in verdict.reasons[0]
    ner = robustness(0.07, field="f1_drop", clean={"f1": 0.8})
    verdict = _verdict("robustness.token-classification", ner)
    assert verdict.status == "warn" and verdict.reasons[0].startswith("entity F1 drops by 0.07")


# -- informational sections, statuses, the report verdict -----------------------------------


def test_informational_sections_pass_unless_skipped_or_failed():
    assert _verdict("explanations", {"method": "x", "examples": []}).status == "pass"
    memory = {"memory": {"status": "ok"}}
    assert _verdict("resources", memory).status == "pass"
    assert _verdict("resources", {"memory": {"status": "skipped", "reason": "off"}}).status == (
        "pass"
    )
    verdict = _verdict("resources", {"memory": {"status": "failed", "reason": "out of memory"}})
    assert verdict.reasons == ("serving memory could not be measured: out of memory",)
    skipped = _section("explanations", {}, status="skipped", reason="no examples were asked for")
    verdict = section_verdict(skipped)
    assert verdict.status == "warn" and verdict.reasons == (
        "not checked: no examples were asked for",
    )
    na = _section("privacy", {}, status="not-applicable", reason="trained without DP")
    verdict = section_verdict(na)
    assert verdict.status == "pass" and verdict.reasons == ("not applicable: trained without DP",)
    # A section aimass has no rule for (a plugin's) passes when it ran.
    assert section_verdict(_section("custom.thing", {"x": 1})).status == "pass"


def test_thresholds_can_be_changed_and_are_all_documented():
    strict = Thresholds(rows_warn=500)
    assert _verdict("quality.classification", classification(), thresholds=strict).status == "warn"
    assert set(DEFAULT_THRESHOLDS.to_dict()) == set(Thresholds.__dataclass_fields__)
    doc = Thresholds.__doc__ or ""
    assert all(name in doc for name in DEFAULT_THRESHOLDS.to_dict())
    assert "calibration" in RULES and "robustness" in RULES


def test_the_report_verdict_is_the_worst_section_verdict():
    assert worst([]) == "pass" and worst(["pass", "warn", "pass"]) == "warn"
    sections = {
        "quality": {"title": "Quality", "verdict": {"status": "warn", "reasons": ["small"]}},
        "fairness": {"title": "Fairness", "verdict": {"status": "fail", "reasons": ["gap"]}},
        "privacy": {"title": "Privacy", "verdict": {"status": "pass", "reasons": ["n/a"]}},
    }
    verdict = report_verdict(sections)
    assert verdict.status == "fail"
    assert verdict.reasons == ("Fairness: gap", "Quality: small")
    for s in sections.values():
        s["verdict"] = {"status": "pass", "reasons": []}
    assert report_verdict(sections).to_dict() == {
        "status": "pass",
        "reasons": ["every section is within its thresholds"],
    }


def test_the_schema_accepts_verdicts_and_refuses_unknown_statuses():
    import jsonschema

    section_schema = REPORT_SCHEMA["properties"]["sections"]["properties"]["quality"]
    verdict_schema = section_schema["properties"]["verdict"]
    jsonschema.validate({"status": "warn", "reasons": ["x"]}, verdict_schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"status": "ok", "reasons": []}, verdict_schema)
    # Optional, so reports stored before verdicts existed still validate.
    assert "verdict" not in section_schema["required"]
    assert "verdict" not in REPORT_SCHEMA["required"]


def test_a_report_without_verdicts_still_renders():
    document = {
        "model": {
            "task": "classification",
            "name": "m",
            "version": 1,
            "architecture": "bert",
            "digest": "0" * 64,
        },
        "dataset": {
            "name": "d",
            "version": 1,
            "split": "test",
            "rows": 6,
            "group_field": None,
            "digest": "1" * 64,
        },
        "summary": {},
        "sections": {
            "privacy": {
                "key": "privacy",
                "title": "Privacy",
                "status": "not-applicable",
                "reason": "no DP",
                "data": {},
                "figures": [],
                "notes": [],
            },
        },
        "aimass_version": "0",
        "created_at": "2024-01-01T00:00:00+00:00",
        "format": "aimass.evaluation-report",
        "format_version": 1,
    }
    old = render_html(copy.deepcopy(document))
    assert '<span class="badge not-applicable">not-applicable</span>' in old
    assert "Overall verdict" not in old
    document["sections"]["privacy"]["verdict"] = {
        "status": "pass",
        "reasons": ["not applicable: no DP"],
    }
    document["verdict"] = {"status": "pass", "reasons": ["every section is within its thresholds"]}
    new = render_html(document)
    assert '<span class="badge pass" title="verdict: pass">pass</span>' in new
    assert "Overall verdict" in new
