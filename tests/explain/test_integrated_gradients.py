"""Integrated gradients: completeness, agreement with Captum's layer method, offsets."""

import pytest
import torch

from aimass.errors import InvalidArgument
from aimass.explain import get_explainer

TEXT = "the film was good and happy, not bad"


def _outputs(predictor, ids, mask, types):
    """The model's raw outputs for input ids, computed independently of the explainer."""
    with torch.no_grad():
        return predictor.model(input_ids=ids, attention_mask=mask, token_type_ids=types)[0]


def _baseline(predictor, text):
    enc = predictor.tokenizer(text, return_tensors="pt", return_special_tokens_mask=True)
    special = enc.pop("special_tokens_mask").bool()
    pad = torch.full_like(enc["input_ids"], predictor.tokenizer.pad_token_id)
    return enc, torch.where(special, enc["input_ids"], pad)


@pytest.mark.parametrize("n_steps", [20, 64])
def test_attributions_sum_to_the_output_difference_within_the_delta(predictor, n_steps):
    target = predictor.explain_target()
    e = get_explainer("integrated-gradients").explain(target, [TEXT], n_steps=n_steps)[0]
    enc, baseline = _baseline(predictor, TEXT)
    f_x = _outputs(predictor, enc["input_ids"], enc["attention_mask"], enc["token_type_ids"])
    f_0 = _outputs(predictor, baseline, enc["attention_mask"], enc["token_type_ids"])
    index = e.target_index
    assert index == int(f_x.argmax())  # the predicted class by default
    total = sum(t.score for t in e.tokens)
    delta = e.details["convergence_delta"]
    assert abs(total - float(f_x[index] - f_0[index])) <= abs(delta) + 1e-5
    assert abs(delta) < 1e-3 * max(1.0, abs(float(f_x[index] - f_0[index])))
    assert e.details["output_at_input"] == pytest.approx(float(f_x[index]), abs=1e-5)
    assert e.details["output_at_baseline"] == pytest.approx(float(f_0[index]), abs=1e-5)
    # Special tokens equal their baseline, so they get exactly nothing; words carry the rest.
    assert [t.score for t in e.tokens if t.special] == [0.0, 0.0]
    assert sum(w.score for w in e.words) == pytest.approx(total, abs=1e-6)
    assert e.output == "logit"


def test_matches_captum_layer_integrated_gradients_on_the_word_embeddings(predictor):
    from captum.attr import LayerIntegratedGradients

    target = predictor.explain_target()
    ours = get_explainer("integrated-gradients").explain(target, [TEXT], n_steps=32)[0]
    enc, baseline = _baseline(predictor, TEXT)
    model = predictor.model

    def forward(ids, mask, types):
        return model(input_ids=ids, attention_mask=mask, token_type_ids=types)

    lig = LayerIntegratedGradients(forward, model.encoder.embeddings.word_embeddings)
    attributions = lig.attribute(
        enc["input_ids"],
        baselines=baseline,
        target=ours.target_index,
        additional_forward_args=(enc["attention_mask"], enc["token_type_ids"]),
        n_steps=32,
    )
    theirs = attributions.sum(dim=-1)[0].tolist()
    assert [t.score for t in ours.tokens] == pytest.approx(theirs, abs=1e-5)


def test_regression_attributes_the_predicted_value(regressor):
    text = "good happy film"
    e = regressor.explain([text], method="integrated-gradients", n_steps=64)[0]
    predicted = regressor.predict([text])[0]["value"]
    assert e["target"] == "value" and e["output"] == "value"
    assert e["details"]["output_at_input"] == pytest.approx(predicted, abs=1e-4)
    total = sum(t["score"] for t in e["tokens"])
    expected = e["details"]["output_at_input"] - e["details"]["output_at_baseline"]
    assert abs(total - expected) <= abs(e["details"]["convergence_delta"]) + 1e-5


def test_another_class_can_be_explained(predictor):
    results = predictor.explain([TEXT], method="integrated-gradients", label="neg")
    assert results[0]["target"] == "neg"
    with pytest.raises(InvalidArgument, match="not one of the model's classes: neg, pos"):
        predictor.explain([TEXT], method="integrated-gradients", label="maybe")


def test_scores_map_to_character_offsets_in_the_original_text(predictor):
    text = "  The film, was GOOD!\tnot bad  "
    e = predictor.explain([text], method="integrated-gradients")[0]
    assert [w["word"] for w in e["words"]] == ["The", "film", ",", "was", "GOOD", "!", "not", "bad"]
    for w in e["words"]:
        assert text[w["start"] : w["end"]] == w["word"]
    for t in e["tokens"]:
        if not t["special"]:
            assert text[t["start"] : t["end"]].lower() == t["token"].removeprefix("##")


def test_long_texts_are_flagged_as_truncated(predictor):
    text = " ".join(["good film"] * 200)
    e = predictor.explain([text], method="integrated-gradients", n_steps=4)[0]
    assert e["truncated"] is True
    assert e["words"][-1]["score"] == 0.0  # beyond what the model saw
    short = predictor.explain(["good film"], method="integrated-gradients", n_steps=4)[0]
    assert short["truncated"] is False


def test_bad_options_are_refused(predictor):
    with pytest.raises(InvalidArgument, match="n_steps"):
        predictor.explain([TEXT], method="integrated-gradients", n_steps=0)
    with pytest.raises(InvalidArgument, match="unknown options"):
        predictor.explain([TEXT], method="integrated-gradients", steps=3)
