"""Fairness numbers against a plain NumPy oracle on the same arrays (and Fairlearn's own)."""

import numpy as np
import pytest
from fairlearn.metrics import demographic_parity_difference, equalized_odds_difference

from aimass.evaluation.sections.fairness import (
    ClassificationFairness,
    RegressionFairness,
    equalized_odds_by_class,
    parity_by_class,
)
from tests.evaluation.helpers import fixed_context, onehot

LABELS = ("a", "b", "c")


def _oracle(y_true, y_pred, groups, classes):
    """Per-group accuracy and the one-vs-rest disparities, written out plainly."""
    names = sorted(set(groups))
    acc = {
        g: np.mean([t == p for t, p, h in zip(y_true, y_pred, groups, strict=True) if h == g])
        for g in names
    }
    dp, eo = [], []
    for c in range(classes):
        sel = [
            np.mean([p == c for p, h in zip(y_pred, groups, strict=True) if h == g]) for g in names
        ]
        dp.append(max(sel) - min(sel))
        tpr, fpr = [], []
        for g in names:
            rows = [(t, p) for t, p, h in zip(y_true, y_pred, groups, strict=True) if h == g]
            pos = [p == c for t, p in rows if t == c]
            neg = [p == c for t, p in rows if t != c]
            tpr.append(np.mean(pos))
            fpr.append(np.mean(neg))
        eo.append(max(max(tpr) - min(tpr), max(fpr) - min(fpr)))
    return acc, dp, eo


def _data(seed, n=300, classes=3):
    rng = np.random.default_rng(seed)
    groups = rng.choice(["north", "south", "east"], size=n, p=[0.5, 0.3, 0.2])
    y_true = rng.integers(0, classes, size=n)
    bias = np.where(groups == "south", 1, 0)  # the model over-predicts the next class in the south
    y_pred = np.where(
        rng.random(n) < 0.7, y_true, (y_true + bias + rng.integers(0, classes, n)) % classes
    )
    return y_true, y_pred, groups


@pytest.mark.parametrize("seed", range(3))
def test_section_matches_the_oracle(seed):
    y_true, y_pred, groups = _data(seed)
    ctx = fixed_context(
        onehot(y_pred, 3),
        [LABELS[i] for i in y_true],
        list(groups),
        class_names=LABELS,
        min_group_size=1,
        n_boot=200,
    )
    result = ClassificationFairness().compute(ctx)
    assert result.status == "ok"
    acc, dp, eo = _oracle(y_true.tolist(), y_pred.tolist(), groups.tolist(), 3)
    data = result.data
    for g in data["groups"]:
        assert g["accuracy"] == pytest.approx(acc[g["group"]])
        lo, hi = g["accuracy_ci"]
        assert lo <= g["accuracy"] + 0.05 and hi >= g["accuracy"] - 0.05 and lo <= hi
    assert [g["group"] for g in data["groups"]] == ["north", "south", "east"]  # largest first
    assert list(data["demographic_parity_difference"]["per_class"].values()) == pytest.approx(dp)
    assert list(data["equalized_odds_difference"]["per_class"].values()) == pytest.approx(eo)
    assert data["demographic_parity_difference"]["max"] == pytest.approx(max(dp))
    assert data["accuracy_difference"] == pytest.approx(max(acc.values()) - min(acc.values()))
    assert result.summary["equalized_odds_difference"] == pytest.approx(max(eo))
    assert result.figures["groups"].startswith(b"\x89PNG")


def test_binary_numbers_equal_fairlearns_whichever_class_is_positive():
    y_true, y_pred, groups = _data(7, classes=2)
    dp = parity_by_class(y_true, y_pred, groups, 2)
    eo = equalized_odds_by_class(y_true, y_pred, groups, 2)
    assert dp[0] == pytest.approx(dp[1])
    assert eo[0] == pytest.approx(eo[1])
    assert dp[1] == pytest.approx(
        demographic_parity_difference(y_true, y_pred, sensitive_features=groups)
    )
    assert eo[1] == pytest.approx(
        equalized_odds_difference(y_true, y_pred, sensitive_features=groups)
    )


def test_small_groups_are_listed_but_not_compared():
    y_true, y_pred, groups = _data(1)
    groups = groups.astype(object)
    groups[:3] = "tiny"
    groups[3] = None  # a missing value is its own group
    ctx = fixed_context(
        onehot(y_pred, 3),
        [LABELS[i] for i in y_true],
        list(groups),
        class_names=LABELS,
        min_group_size=20,
        n_boot=0,
    )
    data = ClassificationFairness().compute(ctx).data
    assert {g["group"] for g in data["groups"]} == {"north", "south", "east"}
    assert {"group": "tiny", "count": 3} in data["excluded_groups"]
    assert {"group": "(missing)", "count": 1} in data["excluded_groups"]
    assert data["rows_compared"] == 300 - 4
    assert all(g["accuracy_ci"] is None for g in data["groups"])  # no bootstrap asked for


def test_skipped_with_a_reason():
    y_true, y_pred, _groups = _data(2)
    labels = [LABELS[i] for i in y_true]
    no_field = fixed_context(onehot(y_pred, 3), labels, None, class_names=LABELS)
    result = ClassificationFairness().compute(no_field)
    assert result.status == "skipped" and "--group-field g" in result.reason
    one_big = fixed_context(onehot(y_pred, 3), labels, ["x"] * 299 + ["y"], class_names=LABELS)
    result = ClassificationFairness().compute(one_big)
    assert result.status == "skipped" and "only 1 with at least 20 rows" in result.reason


def test_equalized_odds_is_undefined_when_a_group_lacks_a_class():
    y_true = np.array([0, 1, 0, 1, 0, 0, 0, 0])
    y_pred = np.array([0, 1, 1, 1, 0, 0, 1, 0])
    groups = np.array(list("aaaabbbb"))  # group b has no positive example of class 1
    assert equalized_odds_by_class(y_true, y_pred, groups, 2) == [None, None]
    ctx = fixed_context(
        onehot(y_pred), [("neg", "pos")[i] for i in y_true], list(groups), min_group_size=1
    )
    result = ClassificationFairness().compute(ctx)
    assert result.data["equalized_odds_difference"]["max"] is None
    assert any("undefined" in note for note in result.notes)


def test_regression_fairness_matches_numpy():
    rng = np.random.default_rng(0)
    groups = rng.choice(["a", "b"], size=200)
    y_true = rng.normal(size=200)
    y_pred = y_true + np.where(groups == "b", 0.5, 0.0) + rng.normal(scale=0.1, size=200)
    ctx = fixed_context(
        y_pred[:, None], y_true.tolist(), list(groups), task="regression", n_boot=20
    )
    result = RegressionFairness().compute(ctx)
    data = result.data
    mae = {g: np.abs(y_pred[groups == g] - y_true[groups == g]).mean() for g in "ab"}
    mean_pred = {g: y_pred[groups == g].mean() for g in "ab"}
    for g in data["groups"]:
        assert g["mae"] == pytest.approx(mae[g["group"]])
        assert g["mean_prediction"] == pytest.approx(mean_pred[g["group"]])
    assert data["mae_difference"] == pytest.approx(abs(mae["a"] - mae["b"]))
    assert data["mean_prediction_difference"] == pytest.approx(abs(mean_pred["a"] - mean_pred["b"]))
    assert "not defined for regression" in data["definitions"]["equalized_odds"]


def test_bootstrap_intervals_agree_with_fairlearns_bootstrap():
    from fairlearn.metrics import MetricFrame
    from sklearn.metrics import accuracy_score

    from aimass.evaluation.sections.fairness import bootstrap_group_means

    y_true, y_pred, groups = _data(5, n=600)
    ours = bootstrap_group_means((y_true == y_pred).astype(float), groups, n_boot=400, seed=0)
    frame = MetricFrame(
        metrics={"acc": accuracy_score},
        y_true=y_true,
        y_pred=y_pred,
        sensitive_features=groups,
        n_boot=100,
        ci_quantiles=[0.025, 0.975],
        random_state=0,
    )
    low, high = frame.by_group_ci
    for g in ("north", "south", "east"):
        assert ours[g][0] == pytest.approx(low.loc[g, "acc"], abs=0.04)
        assert ours[g][1] == pytest.approx(high.loc[g, "acc"], abs=0.04)
