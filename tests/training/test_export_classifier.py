"""An exported classifier gives aimass's scores in plain transformers, and says how.

Hugging Face's ``BertForSequenceClassification`` pools through the pooler
(``tanh(dense(h[CLS]))``); aimass's default head reads the mean of the last
hidden states. The weights are keyed alike and the head has the same shape, so
the class would load the mean-pooled export without a missing or unexpected key
and score differently. So ``config.json`` claims that class only for a
``pooling="pooler"`` head, and records the pooling in ``aimass_head`` for the
others; docs/registry.md ("Exported classifiers") shows the recipe tested here.
"""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification, AutoTokenizer

from aimass.cli.export import export_note
from aimass.jobs.train import TrainSpec
from tests.conftest import TINY_FINETUNE, trained_workspace

TEXTS = ["good great film", "bad awful sad movie and plot", "the film"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory, tiny_bert_dir):
    """The tiny classifier trained twice (mean and pooler pooling), each exported."""
    root = tmp_path_factory.mktemp("export-classifier")
    ws = trained_workspace(root / "home", tiny_bert_dir, root / "data")
    pooler = {**TINY_FINETUNE, "pooling": "pooler"}
    ws.jobs.train(TrainSpec(dataset="s", base="tiny", model="p", config=pooler))
    ws.jobs.train(
        TrainSpec(
            dataset="s",
            base="tiny",
            model="f",
            config={"mode": "features", "epochs": 3, "feature_layers": 2},
        )
    )
    for name in ("m", "p", "f"):
        ws.models.export(name, root / name)
    yield ws, root
    ws.close()


def _batch(directory):
    tokenizer = AutoTokenizer.from_pretrained(str(directory), local_files_only=True)
    return tokenizer(TEXTS, return_tensors="pt", padding=True)


def test_a_pooler_head_is_exactly_the_hugging_face_classifier(exported):
    ws, root = exported
    config = json.loads((root / "p" / "config.json").read_text())
    assert config["architectures"] == ["BertForSequenceClassification"]
    assert config["aimass_head"]["hf_class_matches"] is True
    classifier, info = AutoModelForSequenceClassification.from_pretrained(
        str(root / "p"), local_files_only=True, output_loading_info=True
    )
    assert not info["missing_keys"] and not info["unexpected_keys"]
    assert not info["mismatched_keys"]
    with torch.inference_mode():
        logits = classifier.eval()(**_batch(root / "p")).logits
    torch.testing.assert_close(logits, ws.serving.load("p").outputs(TEXTS), atol=1e-5, rtol=1e-4)
    assert export_note(root / "p") is None


def reproduce(directory, texts):
    """The recipe of docs/registry.md: the bare model, the recorded pooling, the head."""
    config = AutoConfig.from_pretrained(str(directory), local_files_only=True)
    head = config.aimass_head
    tokenizer = AutoTokenizer.from_pretrained(str(directory), local_files_only=True)
    encoder = AutoModel.from_pretrained(str(directory), local_files_only=True).eval()
    weights = load_file(str(directory / "model.safetensors"))
    batch = tokenizer(texts, return_tensors="pt", padding=True, truncation=True)
    with torch.inference_mode():
        hidden = encoder(**batch, output_hidden_states=True).hidden_states
    mask = batch["attention_mask"].unsqueeze(-1).float()  # (B, T, 1)
    if head["pooling"] == "mean":
        pooled = [(hidden[i] * mask).sum(1) / mask.sum(1) for i in head["hidden_states"]]
    else:  # "cls"
        pooled = [hidden[i][:, 0] for i in head["hidden_states"]]
    features = torch.cat(pooled, dim=-1)  # (B, K·H)
    return features @ weights["classifier.weight"].T + weights["classifier.bias"]


@pytest.mark.parametrize("name", ["m", "f"], ids=["mean-finetune", "mean-2-layers-features"])
def test_a_mean_head_claims_the_bare_model_and_the_recipe_reproduces_it(exported, name):
    ws, root = exported
    config = json.loads((root / name / "config.json").read_text())
    assert config["architectures"] == ["BertModel"]
    head = config["aimass_head"]
    assert head["pooling"] == "mean" and head["hf_class_matches"] is False
    assert config["id2label"] == {"0": "neg", "1": "pos"}
    _, info = AutoModel.from_pretrained(
        str(root / name), local_files_only=True, output_loading_info=True
    )
    assert not info["missing_keys"]
    assert set(info["unexpected_keys"]) == {"classifier.weight", "classifier.bias"}
    ours = ws.serving.load(name)
    torch.testing.assert_close(
        reproduce(root / name, TEXTS), ours.outputs(TEXTS), atol=1e-5, rtol=1e-4
    )
    probabilities = reproduce(root / name, TEXTS).softmax(-1)
    predicted = ours.predict(TEXTS)
    assert [p["probabilities"]["pos"] for p in predicted] == pytest.approx(
        probabilities[:, 1].tolist(), abs=1e-5
    )
    note = export_note(root / name)
    assert note is not None and "mean pooling" in note and "--pooling pooler" in note


def test_pooler_pooling_needs_no_feature_layers_option_in_features_mode():
    from aimass.training.config import TrainConfig

    config = TrainConfig(task="classification", mode="features", pooling="pooler").resolved()
    assert config.feature_layers == 1
