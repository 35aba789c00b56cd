"""Sections on hand-made models, where every number can be worked out by hand."""

import numpy as np
import pytest

from aimass.evaluation import EvaluationData, ModelUnderTest, ReportContext, ReportOptions
from aimass.evaluation.sections.explanations import pick_examples
from aimass.evaluation.sections.quality import CalibrationSection, ClassificationQuality
from aimass.evaluation.sections.resources import PrivacySection, energy_estimate, measure_latency
from aimass.evaluation.sections.robustness import Robustness
from aimass.metrics import calibration_metrics
from tests.evaluation.helpers import fixed_context, onehot


def _shouting_model():
    """Predicts 'pos' (0.9) exactly when the text has an upper-case letter."""

    def score(texts):
        return np.array([[0.1, 0.9] if any(c.isupper() for c in t) else [0.9, 0.1] for t in texts])

    return ModelUnderTest(
        name="shout",
        version=1,
        digest="0" * 64,
        task="classification",
        architecture="test",
        labels=("neg", "pos"),
        score=score,
        predict=score,
    )


def test_robustness_flip_rates_by_hand():
    texts = [f"plain lower case text number {w}" for w in ("one", "two", "three", "four")]
    data = EvaluationData(
        name="d", version=1, digest="1" * 64, split="test", texts=texts, labels=["neg", "pos"] * 2
    )
    options = ReportOptions(perturbations=("casing", "whitespace"), robustness_sample=10)
    result = Robustness().compute(ReportContext(_shouting_model(), data, options))
    rows = {(r["perturbation"], r["strength"]): r for r in result.data["results"]}
    assert result.data["clean"]["accuracy"] == 0.5  # always 'neg' on lower-case text
    for strength in (0.5, 1.0):  # any upper-cased word turns every prediction to 'pos'
        row = rows[("casing", strength)]
        assert (row["flip_rate"], row["accuracy"], row["changed_rate"]) == (1.0, 0.5, 1.0)
    for strength in (0.5, 1.0):  # whitespace changes every text but no prediction
        row = rows[("whitespace", strength)]
        assert (row["flip_rate"], row["accuracy_drop"], row["changed_rate"]) == (0.0, 0.0, 1.0)
    assert result.summary == {"worst_flip_rate": 1.0, "worst_perturbation": "casing@0.5"}
    assert result.data["unavailable"] == []  # pii-masking was not asked for


def test_quality_and_calibration_sections():
    y_true = [0, 0, 1, 1, 1]
    probs = np.array([[0.9, 0.1], [0.4, 0.6], [0.2, 0.8], [0.3, 0.7], [0.6, 0.4]])
    ctx = fixed_context(probs, [("neg", "pos")[i] for i in y_true])
    quality = ClassificationQuality().compute(ctx).data
    assert quality["accuracy"] == pytest.approx(3 / 5)
    assert quality["confusion_matrix"] == [[1, 1], [1, 2]]
    assert quality["majority_baseline_accuracy"] == pytest.approx(3 / 5)
    assert {(c["true"], c["predicted"]) for c in quality["top_confusions"]} == {
        ("neg", "pos"),
        ("pos", "neg"),
    }
    calibration = CalibrationSection().compute(ctx)
    assert calibration.data["ece"] == pytest.approx(calibration_metrics(probs, y_true)["ece"])
    assert calibration.summary == {"ece": calibration.data["ece"]}
    assert calibration.figures["reliability"].startswith(b"\x89PNG")


def test_examples_alternate_right_and_wrong_predictions():
    pred = [0, 1, 1, 0, 1, 0]
    y_true = [0, 1, 0, 1, 1, 0]  # rows 2 and 3 are wrong
    probs = onehot(pred)
    probs[1] = [0.01, 0.99]  # the most confident right prediction
    probs[3] = [0.95, 0.05]  # the most confident wrong one
    ctx = fixed_context(probs, [("neg", "pos")[i] for i in y_true])
    assert pick_examples(ctx, 4)[:2] == [1, 3]
    assert set(pick_examples(ctx, 4)) >= {1, 2, 3}
    assert len(pick_examples(ctx, 10)) == 6


def test_latency_is_measured_after_warm_up():
    calls = []
    result = measure_latency(
        lambda texts: calls.append(len(texts)), ["a", "b", "c"], ["x"] * 8, runs=5, batch_runs=3
    )
    # 2 single + 1 batch warm-up calls, then 5 single and 3 batched timed calls.
    assert calls == [1, 1, 8, 1, 1, 1, 1, 1, 8, 8, 8]
    assert result["single"]["runs"] == 5 and result["batched"]["batch_size"] == 8
    assert result["batched"]["throughput_per_s"] == pytest.approx(
        8000 / result["batched"]["median_ms"]
    )


def test_energy_estimate_arithmetic():
    energy = energy_estimate(threads=2, watts_per_core=10.0, per_item_s=0.01, training_s=3600.0)
    assert energy["assumed_watts"] == 20.0
    assert energy["inference_per_1000"]["joules"] == pytest.approx(200.0)  # 10 s × 20 W
    assert energy["training"]["wh"] == pytest.approx(20.0)
    assert (energy["training"]["low_wh"], energy["training"]["high_wh"]) == pytest.approx(
        (10.0, 40.0)
    )
    assert (
        energy_estimate(threads=1, watts_per_core=5, per_item_s=0.1, training_s=None)["training"]
        is None
    )


def test_privacy_section_shows_the_dp_record():
    model = _shouting_model()
    data = EvaluationData(
        name="d", version=1, digest="1" * 64, split="test", texts=["a"], labels=["neg"]
    )
    none = PrivacySection().compute(ReportContext(model, data, ReportOptions()))
    assert none.status == "not-applicable" and "without differential privacy" in none.reason
    private = ModelUnderTest(
        **{**model.__dict__, "privacy": {"epsilon": 3.0, "delta": 1e-5, "accountant": "prv"}}
    )
    result = PrivacySection().compute(ReportContext(private, data, ReportOptions()))
    assert result.summary == {"privacy_epsilon": 3.0, "privacy_delta": 1e-5}
    assert "accountant" in PrivacySection().render(result.data, {})
