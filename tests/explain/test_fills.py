"""Explanations of a masked LM's fills: occlusion and integrated gradients, per mask.

The masked LM is trained on sentences where a cue word decides the next one
("very good", "not bad") among fillers, so a faithful explanation of the fill
after a cue must credit that cue more than any filler around it.
"""

from __future__ import annotations

import random

import pytest

from aimass.errors import InvalidArgument, UnsupportedModel
from tests.conftest import TINY_FINETUNE, write_jsonl
from tests.explain.conftest import assert_adds_up

FILLERS = ["the", "a", "film", "was", "is", "and", "movie", "plot", "it"]
CUES = {"very": "good", "not": "bad"}


def cue_sentences(n: int, *, seed: int = 0) -> list[dict[str, object]]:
    """Three fillers with a cue and its word somewhere among them: ``the not bad plot is``."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        cue, words = rng.choice(list(CUES)), rng.choices(FILLERS, k=3)
        at = rng.randrange(4)
        words[at:at] = [cue, CUES[cue]]
        rows.append({"text": " ".join(words)})
    return rows


@pytest.fixture(scope="module")
def filler(tmp_path_factory, tiny_bert_dir):
    """A workspace with the cue masked LM 'f' and its predictor."""
    from aimass.jobs.train import TrainSpec
    from aimass.settings import Settings
    from aimass.workspace import Workspace

    root = tmp_path_factory.mktemp("fills")
    ws = Workspace(Settings(home=root / "home", device="cpu", num_threads=1))
    ws.bases.import_(str(tiny_bert_dir), name="tiny")
    ws.datasets.import_file(write_jsonl(root / "cues.jsonl", cue_sentences(600)), name="cues")
    config = {
        **TINY_FINETUNE,
        "task": "masked-lm",
        "epochs": 30,
        "lr": 3e-3,
        "max_length": 16,
        # A cue's word is masked often enough to be learned from 600 short sentences.
        "options": {"mask_probability": 0.4},
    }
    ws.jobs.train(TrainSpec(dataset="cues", base="tiny", model="f", config=config))
    yield ws, ws.serving.load("f")
    ws.close()


def only(explanation, text):
    (fill,) = explanation["entities"]
    assert text[fill["start"] : fill["end"]] == fill["text"] == "[MASK]"
    return fill, {w["word"]: w["score"] for w in fill["words"]}


@pytest.mark.parametrize("method", ["occlusion", "integrated-gradients"])
def test_the_cue_word_explains_the_fill_more_than_any_filler(filler, method):
    _ws, mlm = filler
    for text, cue in (("the very [MASK] was it", "very"), ("it is not [MASK] and", "not")):
        (prediction,) = mlm.predict([text])
        top = prediction["masks"][0]["candidates"][0]
        assert top["token"] == CUES[cue], "the masked LM learned its cues"
        (explanation,) = mlm.explain([text], method=method)
        assert explanation["target"] == "fills" and explanation["target_index"] == -1
        assert explanation["words"] == [] and explanation["tokens"] == []
        fill, scores = only(explanation, text)
        assert fill["label"] == top["token"] and fill["start"] == prediction["masks"][0]["start"]
        fillers = [s for w, s in scores.items() if w not in (cue, "[", "MASK", "]")]
        assert scores[cue] > 0 and scores[cue] > max(fillers), scores
        # The mask is what is asked, not a word of the text: it is never scored.
        assert scores["["] == scores["MASK"] == scores["]"] == 0


def test_occlusion_explains_the_probability_predict_reports(filler):
    _ws, mlm = filler
    text = "the very [MASK] was it"
    (prediction,) = mlm.predict([text])
    (explanation,) = mlm.explain([text], method="occlusion")
    fill, scores = only(explanation, text)
    top = prediction["masks"][0]["candidates"][0]
    assert fill["details"]["output_at_input"] == pytest.approx(top["score"], abs=1e-5)
    assert explanation["output"] == "probability"
    # one prediction per word that has tokens: the three pieces of the mask have none
    assert explanation["details"]["predictions"] == 1 + len(scores) - 3


def test_integrated_gradients_of_a_fill_add_up_to_its_log_probability(filler):
    _ws, mlm = filler
    text = "it is not [MASK] and"
    (explanation,) = mlm.explain([text], method="integrated-gradients", n_steps=64)
    fill, _scores = only(explanation, text)
    assert_adds_up(fill)
    masked = [t for t in fill["tokens"] if t["token"] == "[MASK]"]
    assert len(masked) == 1 and masked[0]["special"] and masked[0]["score"] == 0
    assert explanation["output"] == "log-probability"


def test_a_token_can_be_asked_for_and_each_mask_is_explained(filler):
    _ws, mlm = filler
    text = "the very [MASK] was it it is not [MASK] and"
    (prediction,) = mlm.predict([text])
    (both,) = mlm.explain([text], method="occlusion")
    assert [f["label"] for f in both["entities"]] == [
        m["candidates"][0]["token"] for m in prediction["masks"]
    ]
    assert [f["start"] for f in both["entities"]] == [m["start"] for m in prediction["masks"]]
    (asked,) = mlm.explain(["the very [MASK] was it"], method="occlusion", label="bad")
    assert asked["target"] == "bad" and asked["target_index"] == mlm.tokenizer.vocab["bad"]
    (fill,) = asked["entities"]
    assert fill["label"] == "bad" and fill["details"]["output_at_input"] < 0.5
    with pytest.raises(InvalidArgument, match=r"'goodbad' is not one token .* reads as \[UNK\]"):
        mlm.explain(["the very [MASK] was it"], method="occlusion", label="goodbad")
    with pytest.raises(InvalidArgument, match=r"'good bad' is not one token .* reads as good bad"):
        mlm.explain(["the very [MASK] was it"], method="occlusion", label="good bad")
    with pytest.raises(InvalidArgument, match=r"has no \[MASK\] token to fill"):
        mlm.explain(["the very good was it"], method="integrated-gradients")


def test_attention_rollout_is_refused_naming_the_methods_that_apply(filler):
    _ws, mlm = filler
    with pytest.raises(UnsupportedModel, match="integrated-gradients, occlusion"):
        mlm.explain(["very the [MASK]"], method="attention")


def test_fills_are_explained_over_http_and_in_the_console_playground(filler):
    import re

    from tests.explain.conftest import playground, predicted_over_http, served

    ws, _mlm = filler
    text = "the very [MASK] was it"
    with served(ws.settings.home) as (c, key):
        prediction = predicted_over_http(c, key, "f", text, "occlusion")
        (fill,) = prediction["explanation"]["entities"]
        assert (fill["label"], fill["text"]) == ("good", "[MASK]")
        page = playground(c, key, "f@latest", text, "integrated-gradients")
        assert '<small class="muted">[MASK] → good</small>' in page
        assert re.search(r"<div><strong>good</strong> 0\.\d\d, <strong>", page)
        assert re.search(r'<span class="pos[1-3]">very</span>', page)


def test_the_cli_shows_each_mask_and_explains_its_fill(filler, monkeypatch):
    from typer.testing import CliRunner

    from aimass.cli import app

    ws, _mlm = filler
    monkeypatch.setenv("AIMASS_HOME", str(ws.settings.home))
    monkeypatch.setenv("AIMASS_DEVICE", "cpu")
    runner = CliRunner()
    text = "the very [MASK] was it it is not [MASK] and"
    shown = runner.invoke(app, ["predict", "f", text])
    assert shown.exit_code == 0, shown.output
    assert "fills by f" in shown.output and "good 0." in shown.output
    explained = runner.invoke(app, ["predict", "f", text, "--explain", "occlusion"])
    assert explained.exit_code == 0, explained.output
    assert "[MASK] → good  explains the probability of this fill (occlusion)" in explained.output
    assert "[MASK] → bad  explains the probability of this fill (occlusion)" in explained.output
    assert "for: very +0." in explained.output
