"""Label smoothing: the training loss aims below certainty; evaluation stays plain."""

import pytest

from aimass.errors import InvalidArgument
from aimass.jobs.train import TrainSpec
from aimass.training.config import TrainConfig
from tests.conftest import ner_rows, sentiment_rows

FINETUNE = {"mode": "finetune", "epochs": 4, "lr": 3e-3, "batch_size": 16}


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"label_smoothing": -0.1}, "use a number in"),
        ({"label_smoothing": 1}, "use a number in"),
        ({"label_smoothing": "0.1"}, "use a number in"),
        ({"label_smoothing": 0.1, "task": "regression"}, "no classes to smooth over"),
        ({"label_smoothing": 0.1, "teacher": "big@1"}, "soft targets already"),
    ],
)
def test_bad_values_are_refused(config, message):
    with pytest.raises(InvalidArgument, match=message):
        TrainConfig(**config).resolved()


def test_off_keeps_the_config_digest():
    assert "label_smoothing" not in TrainConfig().resolved().to_dict()
    assert TrainConfig(label_smoothing=0.1).resolved().to_dict()["label_smoothing"] == 0.1


def _confidence(ws, version, texts):
    """The mean probability the model gives its own prediction."""
    predictions = ws.serving.predict(f"{version.name}@{version.version}", texts)
    return sum(p["score"] for p in predictions) / len(predictions)


def test_a_smoothed_classifier_is_less_certain(ready_with_tags):
    texts = [r["text"] for r in sentiment_rows(40, seed=3)]
    confidence = {}
    for smoothing in (0.0, 0.9):
        config = {**FINETUNE, "label_smoothing": smoothing}
        version = ready_with_tags.jobs.train(
            TrainSpec(dataset="s", base="tiny", model=f"m{int(smoothing * 10)}", config=config)
        )
        assert version.metrics["test"]["accuracy"] > 0.9
        confidence[smoothing] = _confidence(ready_with_tags, version, texts)
    # With two classes and s = 0.9 the training loss is lowest at p = 1 - s + s/2 = 0.55.
    assert confidence[0.9] < 0.6 < confidence[0.0]
    assert version.lineage.config["label_smoothing"] == 0.9


def test_a_smoothed_tagger_is_less_certain_of_its_entities(ready_with_tags):
    texts = [" ".join(r["tokens"]) for r in ner_rows(30, seed=3)]
    scores = {}
    for smoothing in (0.0, 0.9):
        # A tiny tagger needs more steps than the classifier to grow confident.
        config = {**FINETUNE, "epochs": 10, "lr": 1e-2}
        config.update(task="token-classification", label_smoothing=smoothing)
        version = ready_with_tags.jobs.train(
            TrainSpec(dataset="n", base="tiny", model=f"t{int(smoothing * 10)}", config=config)
        )
        found = ready_with_tags.serving.predict(f"{version.name}@{version.version}", texts)
        entities = [e for row in found for e in row["entities"]]
        assert len(entities) >= len(texts)  # a person and a place in each sentence
        scores[smoothing] = sum(e["score"] for e in entities) / len(entities)
    # Five tags: s = 0.9 puts at most 1 - s + s/5 = 0.28 on the right one.
    assert scores[0.9] < 0.3 < scores[0.0]
