"""A decoder (a GPT) as the backbone of classification and regression, in both modes."""

import json

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForSequenceClassification

from aimass.errors import InvalidArgument
from aimass.jobs.train import TrainSpec
from aimass.serving.predictor import load_predictor
from aimass.settings import Settings
from aimass.workspace import Workspace
from tests.conftest import regression_rows, sentiment_rows, text_rows, write_jsonl
from tests.tiny_decoder import make_tiny_decoder

# Mean of the embeddings and the first block: a random tiny decoder's later layers mix
# words at random, while a pretrained one's middle layers are its best features.
FEATURES = {"mode": "features", "epochs": 60, "lr": 3e-2, "layers": [0, 1]}
FINETUNE = {"mode": "finetune", "epochs": 3, "lr": 1e-3, "batch_size": 16, "pooling": "last"}


@pytest.fixture
def gpt(tmp_path):
    """Datasets 's' (sentiment) and 'r' (numeric) and the imported causal LM 'gpt'."""
    # One thread: tiny models gain nothing from two, and on a busy machine they stall on them.
    ws = Workspace(Settings(home=tmp_path / "home", device="cpu", num_threads=1))
    ws.datasets.import_file(write_jsonl(tmp_path / "s.jsonl", sentiment_rows(200)), name="s")
    ws.datasets.import_file(write_jsonl(tmp_path / "r.jsonl", regression_rows(200)), name="r")
    ws.bases.import_(str(make_tiny_decoder(tmp_path / "gpt")), name="gpt")
    yield ws
    ws.close()


def _manifest(ws, version):
    return json.loads((ws.artifacts.resolve(version.uri) / "aimass.json").read_text())


@pytest.mark.parametrize("config", [FEATURES, FINETUNE], ids=["features", "finetune"])
def test_decoder_classifies_and_the_bundle_reloads(gpt, config):
    version = gpt.jobs.train(TrainSpec(dataset="s", base="gpt", model="m", config=config))
    assert version.metrics["test"]["accuracy"] >= 0.85
    manifest = _manifest(gpt, version)
    assert manifest["family"] == "decoder"
    task_config = manifest["task_config"]
    assert task_config["family"] == "decoder"
    assert task_config["pooling"] == config.get("pooling", "mean")
    assert task_config["layers"] == config.get("layers", [])
    texts = ["good great film", "bad awful movie it was"]
    served = gpt.serving.predict("m", texts)
    assert [p["label"] for p in served] == ["pos", "neg"]
    fresh = load_predictor(gpt.artifacts.resolve(version.uri), device="cpu")
    assert torch.allclose(fresh.outputs(texts), gpt.serving.load("m").outputs(texts), atol=1e-5)


def test_decoder_regression_in_features_mode(gpt):
    config = {**FEATURES, "task": "regression"}
    version = gpt.jobs.train(TrainSpec(dataset="r", base="gpt", model="v", config=config))
    assert version.metrics["test"]["r2"] > 0.4
    values = gpt.serving.predict("v", ["good great superb film", "bad awful sad film"])
    assert values[0]["value"] > values[1]["value"]


def test_scratch_llama_base_pools_the_last_token(lm_ready, tmp_path):
    rows = [{**r, "label": str(r["text"]).split()[-1]} for r in text_rows(120)]
    lm_ready.datasets.import_file(write_jsonl(tmp_path / "places.jsonl", rows), name="places")
    config = {**FINETUNE, "epochs": 4}
    version = lm_ready.jobs.train(
        TrainSpec(dataset="places", base="llama", model="p", config=config)
    )
    assert version.metrics["validation"]["accuracy"] >= 0.9
    assert lm_ready.serving.predict("p", ["a dog sat on the park"])[0]["label"] == "park"


def test_encoder_poolings_are_refused_for_a_decoder(gpt):
    for pooling in ("cls", "pooler"):
        spec = TrainSpec(dataset="s", base="gpt", model="m", config={"pooling": pooling})
        with pytest.raises(InvalidArgument, match="use mean or last"):
            gpt.jobs.submit_training(spec)
    with pytest.raises(InvalidArgument, match="layers"):
        gpt.jobs.submit_training(
            TrainSpec(dataset="s", base="gpt", model="m", config={"layers": []})
        )
    assert gpt.store.jobs.list("default") == []


LAST_LAYER = {"mode": "features", "epochs": 5, "pooling": "last", "layers": [-1]}


@pytest.mark.parametrize("config", [FINETUNE, LAST_LAYER], ids=["finetune", "features"])
def test_export_loads_as_a_hugging_face_decoder_classifier(gpt, tmp_path, config):
    # Features mode trains on RMS-scaled features; the scale is folded into score.weight.
    version = gpt.jobs.train(TrainSpec(dataset="s", base="gpt", model="m", config=config))
    out = tmp_path / "export"
    gpt.models.export(version.ref, out)
    classifier = AutoModelForSequenceClassification.from_pretrained(str(out), local_files_only=True)
    assert type(classifier).__name__ == "LlamaForSequenceClassification"
    assert classifier.config.id2label == {0: "neg", 1: "pos"}
    assert "score.weight" in load_file(str(out / "model.safetensors"))
    ours = gpt.serving.load(version.ref)
    texts = ["good great film", "bad movie"]
    # The tokenizer has no pad token: pad on the right with the id config.json records.
    rows = [ours.tokenizer(t)["input_ids"] for t in texts]
    width = max(map(len, rows))
    pad = classifier.config.pad_token_id
    ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows])
    mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
    with torch.inference_mode():
        hf_logits = classifier.eval()(input_ids=ids, attention_mask=mask).logits
    assert torch.allclose(hf_logits, ours.outputs(texts), atol=1e-5)


def test_a_decoder_trains_adversarially(gpt):
    config = {**FINETUNE, "adversarial_epsilon": 0.1}
    version = gpt.jobs.train(TrainSpec(dataset="s", base="gpt", model="fgm", config=config))
    assert version.metrics["test"]["accuracy"] > 0.8
    assert version.lineage.config["adversarial_epsilon"] == 0.1
