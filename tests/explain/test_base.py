"""The explainer registry, word segmentation, and explainers refusing models they cannot explain."""

from typing import ClassVar

import numpy as np
import pytest

from aimass.errors import InvalidArgument, ResourceExhausted, UnsupportedModel
from aimass.explain import (
    ExplainTarget,
    TokenScore,
    get_explainer,
    list_explainers,
    resolve_target,
    split_words,
    token_words,
)
from aimass.serving.predictor import Predictor, explainer_name


def test_registry_lists_the_three_methods_and_names_them_in_errors():
    assert [e.name for e in list_explainers()] == ["attention", "integrated-gradients", "occlusion"]
    with pytest.raises(InvalidArgument, match="attention, integrated-gradients, occlusion") as err:
        get_explainer("shap")
    assert err.value.code == "INVALID_ARGUMENT"


def test_split_words_handles_punctuation_cjk_and_accents():
    text = "Naïve café, 東京 don't!"
    words = [text[s:e] for s, e in split_words(text)]
    assert words == ["Naïve", "café", ",", "東", "京", "don", "'", "t", "!"]


def test_token_scores_sum_into_the_words_they_overlap():
    text = "unhappy film"
    tokens = [
        TokenScore("[CLS]", None, None, 5.0, special=True),
        TokenScore("un", 0, 2, 0.25),
        TokenScore("##happy", 2, 7, 0.5),
        TokenScore("film", 8, 12, -0.125),
        TokenScore("[SEP]", None, None, 5.0, special=True),
    ]
    words = token_words(text, tokens)
    assert [(w.word, w.score) for w in words] == [("unhappy", 0.75), ("film", -0.125)]


def test_resolve_target_checks_labels_and_tasks():
    cls = ExplainTarget(
        task="classification", labels=("a", "b"), score=lambda t: np.zeros((len(t), 2))
    )
    assert resolve_target(cls, None, np.array([0.2, 0.8])) == (1, "b")
    assert resolve_target(cls, "a", np.array([0.2, 0.8])) == (0, "a")
    with pytest.raises(InvalidArgument, match="'c' is not one of"):
        resolve_target(cls, "c", np.array([0.2, 0.8]))
    reg = ExplainTarget(task="regression", labels=(), score=lambda t: np.zeros((len(t), 1)))
    with pytest.raises(InvalidArgument, match="predicts a value"):
        resolve_target(reg, "a", np.array([1.0]))


class _BlackBox(Predictor):
    """A predictor that only exposes scores (no network): what an ONNX or remote model would be."""

    tasks: ClassVar[tuple[str, ...]] = ("test-black-box",)

    def __init__(self):  # no bundle needed
        pass

    @property
    def task(self):
        return "classification"

    def predict(self, texts, *, batch_size=32):
        return [{"label": "pos"} for _ in texts]

    def explain_target(self):
        def score(texts):
            return np.array([[0.3, 0.7] if "good" in t else [0.6, 0.4] for t in texts])

        return ExplainTarget(
            task="classification", labels=("neg", "pos"), score=score, name="a black box"
        )


class _Unexplainable(_BlackBox):
    @property
    def task(self):
        return "ner"

    def explain_target(self):  # the base class's refusal
        return Predictor.explain_target(self)


def test_gradient_methods_refuse_a_black_box_but_occlusion_explains_it():
    model = _BlackBox()
    for method in ("integrated-gradients", "attention"):
        with pytest.raises(UnsupportedModel, match="use 'occlusion'") as err:
            model.explain(["good film"], method=method)
        assert err.value.code == "UNSUPPORTED_MODEL"
    e = model.explain(["good film"], method="occlusion")[0]
    assert [w["word"] for w in e["words"]] == ["good", "film"]
    assert "entities" not in e  # a tagger's field only
    assert e["words"][0]["score"] == pytest.approx(0.3)


def test_a_task_without_explanations_is_refused_clearly():
    with pytest.raises(UnsupportedModel, match="Explainers for 'ner' models: none"):
        _Unexplainable().explain(["x"], method="occlusion")
    target = ExplainTarget(task="ner", labels=(), score=lambda t: np.zeros((len(t), 1)))
    with pytest.raises(UnsupportedModel, match="does not apply to 'ner' models"):
        get_explainer("occlusion").check(target)


def test_explain_argument_forms():
    assert explainer_name(None) is None and explainer_name(False) is None
    assert explainer_name(True) == "integrated-gradients"
    assert explainer_name("occlusion") == "occlusion"
    with pytest.raises(InvalidArgument):
        explainer_name(3)


def test_predict_with_explanations(ws, predictor):
    results = predictor.predict(["good great film", "bad awful movie"], explain="occlusion")
    assert [r["label"] for r in results] == [
        r["label"] for r in predictor.predict(["good great film", "bad awful movie"])
    ]
    assert all(r["explanation"]["method"] == "occlusion" for r in results)
    via_ws = ws.serving.predict("m", ["good great film"], explain=True)[0]["explanation"]
    assert via_ws["method"] == "integrated-gradients" and via_ws["target"] == results[0]["label"]
    assert "explanation" not in ws.serving.predict("m", ["good great film"])[0]


def test_explanation_batch_limit(ws):
    ws.settings.max_explain_batch = 2
    try:
        with pytest.raises(ResourceExhausted, match="AIMASS_MAX_EXPLAIN_BATCH"):
            ws.serving.predict("m", ["a", "b", "c"], explain="occlusion")
        with pytest.raises(ResourceExhausted):
            ws.serving.explain("m", ["a", "b", "c"])
        assert (
            len(ws.serving.predict("m", ["a", "b", "c"])) == 3
        )  # plain predictions keep their own limit
    finally:
        ws.settings.max_explain_batch = 16
