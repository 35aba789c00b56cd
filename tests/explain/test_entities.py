"""Explanations of a NER tagger's entities: occlusion and integrated gradients, per entity.

The tagger is trained on sentences where one word's type depends on the word
before it ("very film" is a person, "not film" a place, "film" after any other
word is no entity), so a faithful explanation must credit that cue word more
than any filler around it.
"""

from __future__ import annotations

import random

import numpy as np
import pytest

from aimass.errors import InvalidArgument, UnsupportedModel
from aimass.explain.base import ExplainTarget, TaggedEntity, Tagger, Tagging
from aimass.explain.entities import occlude_entities, word_positions
from aimass.explain.words import split_words
from tests.conftest import TINY_FINETUNE, write_jsonl
from tests.explain.conftest import assert_adds_up

NAMES = ["film", "movie", "plot"]
FILLERS = ["the", "a", "was", "is", "and", "it"]
CUES = {"very": "PER", "not": "LOC"}


def cue_rows(n: int, *, seed: int = 0) -> list[dict[str, object]]:
    """One or two five-word parts, each fillers with ``cue name`` somewhere: the name's
    type is its cue's, and a third of the names follow a filler instead (no entity)."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        tokens, tags = [], []
        for _part in range(rng.choice([1, 2])):
            cue, name = rng.choice([*CUES, rng.choice(FILLERS)]), rng.choice(NAMES)
            at = rng.randrange(4)
            part = [rng.choice(FILLERS) for _ in range(3)]
            part[at:at] = [cue, name]
            part_tags = ["O"] * 5
            if cue in CUES:
                part_tags[at + 1] = f"B-{CUES[cue]}"
            tokens += part
            tags += part_tags
        rows.append({"tokens": tokens, "tags": tags})
    return rows


@pytest.fixture(scope="module")
def tagger(tmp_path_factory, tiny_bert_dir):
    """A workspace with the cue tagger 'n' (inputs cut at 16 tokens, so long texts take
    several windows) and its predictor."""
    from aimass.data.importer import ImportOptions
    from aimass.jobs.train import TrainSpec
    from aimass.settings import Settings
    from aimass.workspace import Workspace

    root = tmp_path_factory.mktemp("entities")
    ws = Workspace(Settings(home=root / "home", device="cpu", num_threads=1))
    ws.bases.import_(str(tiny_bert_dir), name="tiny")
    path = write_jsonl(root / "cues.jsonl", cue_rows(600))
    ws.datasets.import_file(path, name="cues", options=ImportOptions(kind="tokens"))
    config = {
        **TINY_FINETUNE,
        "task": "token-classification",
        "epochs": 40,
        "lr": 3e-3,
        "max_length": 16,
    }
    ws.jobs.train(TrainSpec(dataset="cues", base="tiny", model="n", config=config))
    yield ws, ws.serving.load("n")
    ws.close()


def only(explanation, text):
    (entity,) = explanation["entities"]
    assert text[entity["start"] : entity["end"]] == entity["text"]
    return entity, {w["word"]: w["score"] for w in entity["words"]}


@pytest.mark.parametrize("method", ["occlusion", "integrated-gradients"])
def test_the_cue_word_explains_the_entity_more_than_any_filler(tagger, method):
    _ws, ner = tagger
    for text, label in (("the very film was it", "PER"), ("it is not plot and", "LOC")):
        (prediction,) = ner.predict([text])
        assert [e["label"] for e in prediction["entities"]] == [label], "the tagger learned cues"
        (explanation,) = ner.explain([text], method=method)
        assert explanation["target"] == "entities" and explanation["target_index"] == -1
        assert explanation["words"] == [] and explanation["tokens"] == []
        entity, scores = only(explanation, text)
        found = prediction["entities"][0]
        assert (entity["label"], entity["start"], entity["end"]) == (
            found["label"],
            found["start"],
            found["end"],
        )
        cue = "very" if label == "PER" else "not"
        fillers = [s for w, s in scores.items() if w not in (cue, entity["text"])]
        assert scores[cue] > 0 and scores[cue] > max(fillers), scores


def test_occlusion_removing_a_one_word_entity_drops_its_whole_score(tagger):
    _ws, ner = tagger
    text = "the very film was it"
    (prediction,) = ner.predict([text])
    (explanation,) = ner.explain([text], method="occlusion")
    entity, scores = only(explanation, text)
    score = prediction["entities"][0]["score"]
    assert entity["details"]["output_at_input"] == pytest.approx(score, abs=1e-5)
    assert scores["film"] == pytest.approx(score, abs=1e-5)
    assert explanation["output"] == "probability"
    assert explanation["details"]["predictions"] == 1 + len(scores)


def test_integrated_gradients_of_an_entity_add_up_to_its_logits(tagger):
    _ws, ner = tagger
    text = "the very film was it"
    (explanation,) = ner.explain([text], method="integrated-gradients", n_steps=64)
    entity, _scores = only(explanation, text)
    assert_adds_up(entity)
    assert explanation["output"] == "logit"


def test_one_type_can_be_asked_for_and_an_unknown_one_is_refused(tagger):
    _ws, ner = tagger
    text = "the very film was it it is not plot and"
    (both,) = ner.explain([text], method="occlusion")
    assert [e["label"] for e in both["entities"]] == ["PER", "LOC"]
    (places,) = ner.explain([text], method="occlusion", label="LOC")
    assert places["target"] == "LOC" and [e["text"] for e in places["entities"]] == ["plot"]
    with pytest.raises(InvalidArgument, match="'ORG' is not one the model predicts: LOC, PER"):
        ner.explain([text], method="occlusion", label="ORG")
    (nothing,) = ner.explain(["the and it"], method="integrated-gradients")
    assert nothing["entities"] == []


def test_attention_rollout_is_refused_naming_the_methods_that_apply(tagger):
    _ws, ner = tagger
    with pytest.raises(UnsupportedModel, match="integrated-gradients, occlusion") as err:
        ner.explain(["the very film"], method="attention")
    assert err.value.code == "UNSUPPORTED_MODEL"


@pytest.mark.parametrize("method", ["occlusion", "integrated-gradients"])
def test_a_long_text_read_in_windows_explains_each_entity_in_its_own(tagger, method):
    _ws, ner = tagger
    text = " ".join(["the very film was it", "it is not plot and"] * 4)
    (prediction,) = ner.predict([text])
    (explanation,) = ner.explain([text], method=method)
    spans = [(e["label"], e["start"], e["end"]) for e in explanation["entities"]]
    assert spans == [(e["label"], e["start"], e["end"]) for e in prediction["entities"]]
    assert len(spans) >= 6
    # An entity's words are read in one window of 16 tokens: words outside it cannot
    # move it, so they score exactly 0; the word just before it is in that window.
    for entity in explanation["entities"]:
        far = [w for w in entity["words"] if abs(w["start"] - entity["start"]) > 60]
        assert far and all(w["score"] == 0 for w in far)
        (cue,) = [w for w in entity["words"] if w["end"] == entity["start"] - 1]
        assert cue["score"] != 0


def test_predictions_with_explain_carry_one_per_text(tagger):
    ws, _ner = tagger
    results = ws.serving.predict("n", ["the very film was it", "a b"], explain="occlusion")
    assert [len(r["explanation"]["entities"]) for r in results] == [
        len(r["entities"]) for r in results
    ]


def test_entities_are_explained_over_http_and_in_the_console_playground(tagger):
    import re

    from tests.explain.conftest import playground, predicted_over_http, served

    ws, _ner = tagger
    text = "the very film was it it is not plot and"
    with served(ws.settings.home) as (c, key):
        prediction = predicted_over_http(c, key, "n", text, "integrated-gradients")
        explained = prediction["explanation"]["entities"]
        assert [(e["label"], e["text"]) for e in explained] == [("PER", "film"), ("LOC", "plot")]
        assert [e["text"] for e in prediction["entities"]] == ["film", "plot"]
        page = playground(c, key, "n@latest", text, "occlusion")
        assert "<strong>PER</strong> film, <strong>LOC</strong> plot" in page
        assert '<small class="muted">PER: film</small>' in page
        assert '<small class="muted">LOC: plot</small>' in page
        assert re.search(r'<span class="pos[1-3]">very</span>', page)


# -- the occlusion arithmetic, on a tagger whose probabilities are written by hand ------


CUE, NAME, FILLER = 5, 7, 9


def _hand_tagger(ids: list[int]) -> np.ndarray:
    """Tags O / B-PER: a NAME is a person with 0.9 after a CUE anywhere before it, else 0.3."""
    out = np.zeros((len(ids), 2))
    for t, token in enumerate(ids):
        person = 0.9 if token == NAME and CUE in ids[:t] else 0.3 if token == NAME else 0.0
        out[t] = [1 - person, person]
    return out


def test_occlusion_finds_each_tag_again_after_the_tokens_before_it_are_removed():
    text = "cue filler name"
    ids = [1, CUE, FILLER, NAME, 2]  # [CLS] ... [SEP]
    offsets = [None, (0, 3), (4, 10), (11, 15), None]
    entity = TaggedEntity(label="PER", start=11, end=15, score=0.9, tags=((0, 3, 1),))
    tagging = Tagging(
        windows=[ids],
        tokens=[["[CLS]", "cue", "filler", "name", "[SEP]"]],
        offsets=[offsets],
        probabilities=[_hand_tagger(ids)],
        entities=[entity],
    )
    target = ExplainTarget(
        task="token-classification",
        labels=("PER",),
        tagger=Tagger(
            read=lambda _text, _label: tagging,
            probabilities=lambda windows, _classes: [_hand_tagger(w) for w in windows],
        ),
    )
    spans = split_words(text)
    explanation = occlude_entities(target, text, None, spans, method="occlusion")
    scores = [w.score for w in explanation.entities[0].words]
    # without the cue: 0.3; without the filler: found one position earlier, still 0.9;
    # without the name itself: the entity is gone.
    assert scores == pytest.approx([0.6, 0.0, 0.9])


def test_word_positions_maps_tokens_that_overlap_words():
    spans = [(0, 5), (6, 7), (8, 12)]  # "hello , world"
    offsets = [None, (0, 3), (3, 5), (6, 7), (8, 12), None]
    assert word_positions(offsets, spans) == {0: [1, 2], 1: [3], 2: [4]}
    # one token over two words counts for both
    assert word_positions([(0, 7)], spans) == {0: [0], 1: [0]}
