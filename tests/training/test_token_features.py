"""NER in features mode: the tagging head trains on the frozen encoder's cached hidden
states (privately too, the head alone); the bundle is an ordinary tagger."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from aimass.errors import InvalidArgument
from aimass.jobs.train import TrainSpec, resolve_inputs

FEATURES = {"task": "token-classification", "mode": "features", "epochs": 20, "lr": 1e-2}


def train(ws, model, config, privacy=None):
    return ws.jobs.train(
        TrainSpec(dataset="ner", base="bert", model=model, config=config, privacy=privacy)
    )


def weights(ws, uri):
    return load_file(str(ws.artifacts.resolve(uri) / "model.safetensors"))


@pytest.mark.parametrize("private", [False, True], ids=["plain", "dp"])
def test_a_tagging_head_learns_on_the_frozen_encoder_and_serves(lm_ready, private):
    privacy = {"target_epsilon": 50.0} if private else None
    version = train(lm_ready, f"ner-features-{int(private)}", FEATURES, privacy=privacy)
    assert version.metrics["validation"]["f1"] > version.metrics["initial_validation"]["f1"]
    # The served forward pass scores the test split: cached features and the model agree.
    assert version.metrics["test"]["f1"] > 0.5
    trained, base = (
        weights(lm_ready, version.uri),
        weights(lm_ready, lm_ready.bases.get("bert").uri),
    )
    encoder = [k for k in trained if not k.startswith("classifier.")]
    assert encoder and all(
        torch.equal(trained[k], base[k.removeprefix("bert.")])
        for k in encoder
        if k.removeprefix("bert.") in base
    ), "the encoder is untouched"
    assert version.lineage.config["lr"] == 1e-2 and version.lineage.config["mode"] == "features"
    if private:
        record = version.privacy
        assert record["grad_sample_mode"] == "hooks" and 0 < record["epsilon"] <= 50.0
        heads = trained["classifier.weight"].numel() + trained["classifier.bias"].numel()
        assert record["trained_parameters"] == heads, "the head alone is clipped and noised"
        assert record["privacy_unit"].startswith("sentence")
    [result] = lm_ready.serving.predict(version.ref, ["Alice Smith went to Rome"])
    assert isinstance(result["entities"], list)


def test_features_mode_takes_the_modes_defaults_not_fine_tuning_ones(lm_ready):
    task = {"task": "token-classification"}
    features, finetune = (
        resolve_inputs(lm_ready.store, "default", TrainSpec("ner", "bert", "x", config))[2]
        for config in ({**task, "mode": "features"}, task)
    )
    assert (features.lr, features.epochs, features.batch_size) == (2e-3, 30, 64)
    assert finetune.mode == "finetune", "fine-tuning stays the default"
    assert (finetune.lr, finetune.epochs, finetune.batch_size) == (1e-3, 3, 16)


def test_features_mode_refuses_pooled_layers(lm_ready):
    with pytest.raises(InvalidArgument, match="drop --layers"):
        train(lm_ready, "ner-layers", {**FEATURES, "layers": [-1, -2]})
