"""Metric functions agree with scikit-learn on the same arrays."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sklearn import metrics as sk
from sklearn.calibration import calibration_curve

from aimass.metrics import (
    brier_score,
    calibration_metrics,
    classification_metrics,
    log_loss,
    regression_metrics,
    reliability_bins,
    residual_summary,
    softmax,
)


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


def _probs(seed, n=300, classes=3):
    rng = np.random.default_rng(seed)
    probs = softmax(rng.normal(scale=2.0, size=(n, classes)))
    y_true = np.array([rng.choice(classes, p=p) for p in probs])
    return probs, y_true


@pytest.mark.parametrize("seed", range(4))
def test_reliability_bins_match_sklearn_calibration_curve(seed):
    probs, y_true = _probs(seed, classes=2)
    # Exact bin edges must land in the lower bin, as in scikit-learn.
    p1 = np.concatenate([probs[:, 1], [0.0, 0.2, 0.4, 1.0]])
    y = np.concatenate([y_true, [0, 1, 0, 1]])
    got = reliability_bins(p1, y == 1, n_bins=10)
    prob_true, prob_pred = calibration_curve(y, p1, n_bins=10, strategy="uniform")
    filled = [b for b in got["bins"] if b["count"]]
    assert [b["accuracy"] for b in filled] == pytest.approx(prob_true)
    assert [b["confidence"] for b in filled] == pytest.approx(prob_pred)
    assert sum(b["count"] for b in got["bins"]) == len(p1)


@pytest.mark.parametrize("seed", range(4))
def test_ece_matches_a_slow_oracle(seed):
    probs, y_true = _probs(seed)
    conf, pred = probs.max(axis=1), probs.argmax(axis=1)
    n_bins = 15
    ece, gaps = 0.0, []
    for k in range(n_bins):
        lo, hi = k / n_bins, (k + 1) / n_bins
        members = [
            i for i in range(len(conf)) if (lo < conf[i] <= hi) or (k == 0 and conf[i] <= hi)
        ]
        if members:
            acc = np.mean([pred[i] == y_true[i] for i in members])
            avg = np.mean([conf[i] for i in members])
            ece += len(members) / len(conf) * abs(acc - avg)
            gaps.append(abs(acc - avg))
    got = calibration_metrics(probs, y_true, n_bins=n_bins)
    assert got["ece"] == pytest.approx(ece)
    assert got["mce"] == pytest.approx(max(gaps))


def test_a_perfectly_calibrated_constant_has_zero_ece():
    conf = np.full(1000, 0.7)
    correct = np.arange(1000) < 700
    assert reliability_bins(conf, correct)["ece"] == pytest.approx(0.0)


@pytest.mark.parametrize("seed", range(3))
def test_brier_and_log_loss_match_sklearn(seed):
    probs, y_true = _probs(seed, classes=3)
    assert log_loss(probs, y_true) == pytest.approx(sk.log_loss(y_true, probs, labels=range(3)))
    assert brier_score(probs, y_true) == pytest.approx(
        sk.brier_score_loss(y_true, probs, labels=range(3), scale_by_half=False)
    )
    binary, y2 = _probs(seed, classes=2)
    assert brier_score(binary, y2) == pytest.approx(2 * sk.brier_score_loss(y2, binary[:, 1]))


def test_residual_summary():
    got = residual_summary([1.0, 2.0, 3.0, 4.0], [1.5, 2.0, 2.0, 5.0])
    assert got["bias"] == pytest.approx(0.125)
    assert got["quantiles"]["p50"] == pytest.approx(np.median([0.5, 0.0, -1.0, 1.0]))


# -- entity-level scores (NER) ----------------------------------------------------------


def _oracle_spans(tags):
    """Slow, obvious reading of conlleval chunking: walk each token, compare with its neighbour."""
    spans = []
    for i, tag in enumerate(tags):
        if tag == "O" or "-" not in tag or tag.split("-", 1)[0] not in "BI" or not tag[2:]:
            continue
        kind = tag[2:]
        prev = tags[i - 1] if i else "O"
        continues = tag.startswith("I-") and prev[2:] == kind and prev[:2] in ("B-", "I-")
        if continues:
            continue
        end = i + 1
        while end < len(tags) and tags[end] == f"I-{kind}":
            end += 1
        spans.append((kind, i, end))
    return spans


TAG_ALPHABET = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "I-ORG"]


@given(st.lists(st.sampled_from(TAG_ALPHABET), max_size=12))
def test_entity_spans_match_the_oracle(tags):
    from aimass.metrics import entity_spans

    assert entity_spans(tags) == _oracle_spans(tags)


@given(
    st.lists(
        st.tuples(
            st.lists(st.sampled_from(TAG_ALPHABET), min_size=1, max_size=8),
            st.lists(st.sampled_from(TAG_ALPHABET), min_size=1, max_size=8),
        ),
        min_size=1,
        max_size=6,
    )
)
def test_entity_metrics_match_seqeval(pairs):
    seqeval = pytest.importorskip("seqeval.metrics")
    from aimass.metrics import entity_metrics

    true = [t for t, _ in pairs]
    pred = [p[: len(t)] + ["O"] * (len(t) - len(p)) for t, p in pairs]
    ours = entity_metrics(true, pred)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert ours["precision"] == pytest.approx(seqeval.precision_score(true, pred))
        assert ours["recall"] == pytest.approx(seqeval.recall_score(true, pred))
        assert ours["f1"] == pytest.approx(seqeval.f1_score(true, pred))


def test_entity_metrics_by_hand():
    from aimass.metrics import entity_metrics

    true = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"]]
    pred = [["B-PER", "I-PER", "O", "B-PER"], ["B-ORG", "O"]]
    result = entity_metrics(true, pred)
    assert result["precision"] == pytest.approx(2 / 3)
    assert result["recall"] == pytest.approx(2 / 3)
    assert result["per_type"]["LOC"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert result["per_type"]["PER"]["precision"] == 0.5
    assert result["entities"] == 3
