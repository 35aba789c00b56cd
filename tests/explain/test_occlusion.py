"""Occlusion (leave one word out): a hand-computed case, and agreement with predict."""

import numpy as np
import pytest

from aimass.errors import InvalidArgument
from aimass.explain import ExplainTarget, get_explainer
from aimass.explain.occlusion import MAX_WORDS, without_span


def _bag_of_words_target():
    """P(pos) = 0.5 + 0.2·[good] - 0.1·[bad]: every occlusion score can be worked out by hand."""

    def score(texts):
        rows = []
        for text in texts:
            words = text.split()
            p = 0.5 + 0.2 * ("good" in words) - 0.1 * ("bad" in words)
            rows.append([1.0 - p, p])
        return np.array(rows)

    return ExplainTarget(task="classification", labels=("neg", "pos"), score=score, name="bag")


def test_hand_computed_case():
    e = get_explainer("occlusion").explain(_bag_of_words_target(), ["good not bad"])[0]
    # f(x)[pos] = 0.6; without "good" 0.4 → +0.2; without "not" 0.6 → 0; without "bad" 0.7 → -0.1.
    assert e.target == "pos" and e.output == "probability"
    assert [(w.word, w.start, w.end) for w in e.words] == [
        ("good", 0, 4),
        ("not", 5, 8),
        ("bad", 9, 12),
    ]
    assert [w.score for w in e.words] == pytest.approx([0.2, 0.0, -0.1])
    assert e.details["output_at_input"] == pytest.approx(0.6)
    assert e.tokens == []
    # Explaining the other class flips every sign.
    neg = get_explainer("occlusion").explain(_bag_of_words_target(), ["good not bad"], label="neg")[
        0
    ]
    assert [w.score for w in neg.words] == pytest.approx([-0.2, 0.0, 0.1])


def test_regression_target():
    target = ExplainTarget(
        task="regression",
        labels=(),
        score=lambda texts: np.array([[float(len(t.split()))] for t in texts]),
    )
    e = get_explainer("occlusion").explain(target, ["one two three"])[0]
    assert e.target == "value" and e.output == "value"
    assert [w.score for w in e.words] == pytest.approx([1.0, 1.0, 1.0])


def test_agrees_with_predict_on_a_real_model(predictor):
    text = "the film was good and happy"
    e = predictor.explain([text], method="occlusion")[0]
    base = predictor.predict([text])[0]
    label = e["target"]
    assert label == base["label"]
    for w in e["words"]:
        reduced = without_span(text, w["start"], w["end"])
        p = predictor.predict([reduced])[0]["probabilities"][label]
        assert w["score"] == pytest.approx(base["probabilities"][label] - p, abs=1e-5)


def test_without_span_keeps_one_space():
    assert without_span("a good film", 2, 6) == "a film"
    assert without_span("good film", 0, 4) == "film"
    assert without_span("film!", 4, 5) == "film"


def test_too_many_words_is_a_clear_error():
    text = " ".join(["w"] * (MAX_WORDS + 1))
    with pytest.raises(InvalidArgument, match="one prediction per word"):
        get_explainer("occlusion").explain(_bag_of_words_target(), [text])
