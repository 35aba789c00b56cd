"""Metric functions agree with scikit-learn on the same arrays."""

import numpy as np
import pytest
from sklearn import metrics as sk

from aimass.metrics import classification_metrics, regression_metrics, softmax


@pytest.mark.parametrize("seed", range(5))
def test_classification_matches_sklearn(seed):
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, 4, size=200)
    y_pred = np.where(rng.random(200) < 0.6, y_true, rng.integers(0, 4, size=200))
    y_pred[y_pred == 3] = 2  # one class never predicted: zero_division matters
    labels = ["a", "b", "c", "d"]
    got = classification_metrics(y_true, y_pred, labels)
    kw = {"labels": range(4), "average": "macro", "zero_division": 0}
    assert got["accuracy"] == pytest.approx(sk.accuracy_score(y_true, y_pred))
    assert got["precision_macro"] == pytest.approx(sk.precision_score(y_true, y_pred, **kw))
    assert got["recall_macro"] == pytest.approx(sk.recall_score(y_true, y_pred, **kw))
    assert got["f1_macro"] == pytest.approx(sk.f1_score(y_true, y_pred, **kw))
    assert got["confusion_matrix"] == sk.confusion_matrix(y_true, y_pred, labels=range(4)).tolist()
    per_class_f1 = sk.f1_score(y_true, y_pred, labels=range(4), average=None, zero_division=0)
    assert [got["per_class"][c]["f1"] for c in labels] == pytest.approx(per_class_f1)


@pytest.mark.parametrize("seed", range(5))
def test_regression_matches_sklearn(seed):
    rng = np.random.default_rng(seed)
    y_true = rng.normal(size=100)
    y_pred = y_true + rng.normal(scale=0.5, size=100)
    got = regression_metrics(y_true, y_pred)
    assert got["mae"] == pytest.approx(sk.mean_absolute_error(y_true, y_pred))
    assert got["rmse"] == pytest.approx(np.sqrt(sk.mean_squared_error(y_true, y_pred)))
    assert got["r2"] == pytest.approx(sk.r2_score(y_true, y_pred))


def test_r2_without_target_variance_follows_sklearn():
    assert regression_metrics([1, 1, 1], [1, 1, 1])["r2"] == sk.r2_score([1, 1, 1], [1, 1, 1])
    assert regression_metrics([1, 1, 1], [1, 2, 1])["r2"] == sk.r2_score([1, 1, 1], [1, 2, 1])


def test_softmax_rows_sum_to_one_and_are_stable():
    probs = softmax(np.array([[1000.0, 0.0], [1.0, 1.0]]))
    assert probs.sum(axis=1) == pytest.approx([1.0, 1.0])
    assert probs[0, 0] == pytest.approx(1.0)
