"""Explanations of a causal LM's generated text: occlusion and integrated gradients.

The causal LM is trained on ``repeat X X`` lines, so the text it generates
after ``repeat cat`` is ``cat``, read off the word to repeat: both methods
must credit that word, and removing it (occlusion) must cost more than removing
the instruction. (Integrated gradients may credit the instruction more: its
all-[PAD] baseline takes the instruction away too, which this model never saw.)
"""

from __future__ import annotations

import pytest

from aimass.errors import InvalidArgument, UnsupportedModel
from tests.conftest import write_jsonl
from tests.explain.conftest import assert_adds_up

WORDS = ["cat", "dog", "sun", "sky"]


@pytest.fixture(scope="module")
def generator(tmp_path_factory):
    """A workspace with the tiny causal LM 'lm' (from scratch) and its predictor."""
    from aimass.jobs.train import TrainSpec
    from aimass.settings import Settings
    from aimass.workspace import Workspace

    root = tmp_path_factory.mktemp("generation")
    ws = Workspace(Settings(home=root / "home", device="cpu", num_threads=1))
    rows = [{"text": f"repeat {w} {w}"} for w in WORDS * 30]
    ws.datasets.import_file(write_jsonl(root / "lines.jsonl", rows), name="lines")
    ws.bases.train_tokenizer("lines", name="tok", vocab_size=100, min_frequency=1)
    ws.bases.create_scratch("llama", architecture="llama", tokenizer="tok", preset="tiny")
    config = {"task": "causal-lm", "epochs": 5, "lr": 3e-3}
    ws.jobs.train(TrainSpec(dataset="lines", base="llama", model="lm", config=config))
    yield ws, ws.serving.load("lm")
    ws.close()


def only(explanation, prompt):
    (generated,) = explanation["entities"]
    assert generated["start"] == generated["end"] == len(prompt) and generated["text"] == ""
    return generated, {w["word"]: w["score"] for w in generated["words"]}


@pytest.mark.parametrize("method", ["occlusion", "integrated-gradients"])
def test_the_word_to_repeat_explains_the_generation_more_than_the_instruction(generator, method):
    _ws, lm = generator
    for word in ("cat", "sky"):
        prompt = f"repeat {word}"
        (prediction,) = lm.predict([prompt])
        assert prediction["generated_text"].strip() == word, "the model learned to repeat"
        (explanation,) = lm.explain([prompt], method=method)
        assert explanation["target"] == "generated" and explanation["target_index"] == -1
        generated, scores = only(explanation, prompt)
        assert generated["label"] == prediction["generated_text"]
        assert scores[word] > 0, scores
        if method == "occlusion":  # without the word, the model cannot know what to say
            assert scores[word] > scores["repeat"], scores


def test_occlusion_explains_the_mean_probability_of_the_generated_tokens(generator):
    _ws, lm = generator
    (explanation,) = lm.explain(["repeat dog"], method="occlusion")
    generated, scores = only(explanation, "repeat dog")
    assert 0.5 < generated["details"]["output_at_input"] <= 1
    assert explanation["output"] == "probability"
    assert explanation["details"]["predictions"] == 1 + len(scores)


def test_integrated_gradients_of_a_generation_add_up_to_its_log_probabilities(generator):
    _ws, lm = generator
    (explanation,) = lm.explain(["repeat sun"], method="integrated-gradients", n_steps=64)
    generated, _scores = only(explanation, "repeat sun")
    # the generated tokens are not words of the prompt (special: never removed, score 0)
    assert_adds_up(generated)
    assert explanation["output"] == "log-probability"


def test_a_continuation_can_be_asked_for(generator):
    _ws, lm = generator
    (asked,) = lm.explain(["repeat dog"], method="occlusion", label=" cat")
    generated, _scores = only(asked, "repeat dog")
    assert asked["target"] == " cat" and generated["label"].strip() == "cat"
    (own,) = lm.explain(["repeat dog"], method="occlusion")
    said = own["entities"][0]["details"]["output_at_input"]
    assert generated["details"]["output_at_input"] < said  # not what the model would say
    with pytest.raises(InvalidArgument, match="continuation to explain must be 1 to"):
        lm.explain(["repeat dog"], method="occlusion", label="")


def test_attention_rollout_is_refused_naming_the_methods_that_apply(generator):
    _ws, lm = generator
    with pytest.raises(UnsupportedModel, match="integrated-gradients, occlusion"):
        lm.explain(["repeat cat"], method="attention")


def test_generations_are_explained_over_http_the_console_and_the_cli(generator, monkeypatch):
    import re

    from typer.testing import CliRunner

    from aimass.cli import app
    from tests.explain.conftest import playground, predicted_over_http, served

    ws, _lm = generator
    home = ws.settings.home
    with served(home) as (c, key):
        prediction = predicted_over_http(c, key, "lm", "repeat cat", "occlusion")
        (generated,) = prediction["explanation"]["entities"]
        assert generated["label"] == prediction["generated_text"]
        page = playground(c, key, "lm@latest", "repeat sky", "occlusion")
        assert '<small class="muted">→ sky</small>' in page
        assert re.search(r'<span class="pos[1-3]">sky</span>', page)
    monkeypatch.setenv("AIMASS_HOME", str(home))
    monkeypatch.setenv("AIMASS_DEVICE", "cpu")
    shown = CliRunner().invoke(app, ["predict", "lm", "repeat cat", "--explain", "occlusion"])
    assert shown.exit_code == 0, shown.output
    assert "explains the probability of its tokens (occlusion)" in shown.output
    assert "for: cat +0." in shown.output


@pytest.mark.slow  # converts SmolLM2 from its GGUF and generates on two cores (~1 min)
def test_smollm2_credits_the_country_for_the_capital_it_names(tmp_path):
    from aimass.serving.predictor import load_predictor
    from aimass.settings import Settings
    from aimass.workspace import Workspace

    ws = Workspace(Settings(home=tmp_path / "home", device="cpu"))
    try:
        base, _ = ws.bases.import_("smollm2")  # an instruct model, served as it is
        instruct = load_predictor(ws.artifacts.resolve(base.uri), device="cpu")
        prompt = "What is the capital of France? Answer in one word."
        (prediction,) = instruct.predict([prompt])
        assert "Paris" in prediction["generated_text"]
        (explanation,) = instruct.explain([prompt], method="occlusion")
        generated, scores = only(explanation, prompt)
        assert generated["label"] == prediction["generated_text"]
        # The chat template's tokens are not words of the prompt: only the prompt's are scored.
        assert list(scores) == [
            "What",
            "is",
            "the",
            "capital",
            "of",
            "France",
            "?",
            "Answer",
            "in",
            "one",
            "word",
            ".",
        ]
        assert max(scores, key=scores.get) in ("France", "capital"), scores
    finally:
        ws.close()
