"""Classification and regression train end to end on a tiny encoder, in both modes."""

import json

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModel, AutoModelForSequenceClassification

from aimass.errors import InvalidArgument
from aimass.jobs.train import TrainSpec
from tests.conftest import write_jsonl

FEATURES = {"mode": "features", "epochs": 40, "lr": 1e-2}
FINETUNE = {"mode": "finetune", "epochs": 3, "lr": 1e-3, "batch_size": 16}


@pytest.mark.parametrize("config", [FEATURES, FINETUNE], ids=["features", "finetune"])
def test_classification_learns_and_registers(ready, config):
    version = ready.jobs.train(TrainSpec(dataset="s", base="tiny", model="m", config=config))
    assert version.metrics["validation"]["accuracy"] >= 0.9
    assert version.metrics["test"]["accuracy"] >= 0.9
    assert version.metrics["test"]["count"] == 20
    assert version.lineage.dataset == "s@1"
    assert version.lineage.config["mode"] == config["mode"]
    assert version.metrics["history"], "per-epoch validation history is kept"
    assert "torch" in version.lineage.code_version


def test_same_seed_same_weights(ready):
    spec = TrainSpec(dataset="s", base="tiny", model="m", config=FINETUNE)
    digests = []
    for _ in range(2):
        version = ready.jobs.train(spec)
        manifest = json.loads((ready.artifacts.resolve(version.uri) / "aimass.json").read_text())
        digests.append(manifest["files"]["model.safetensors"]["sha256"])
    assert digests[0] == digests[1]


def test_tensorboard_events_are_written(ready):
    job = ready.jobs.submit_training(
        TrainSpec(dataset="s", base="tiny", model="m", config=FEATURES)
    )
    done = ready.jobs.run(job.id)
    events = list((ready.artifacts.root / "runs" / job.id / "tensorboard").glob("events.*"))
    assert events and events[0].stat().st_size > 0
    assert done.result["tensorboard"].endswith("tensorboard")


def test_regression(ready, tmp_path):
    rows = [{"text": f"{'good ' * (i % 5)}film", "label": float(i % 5)} for i in range(150)]
    ready.datasets.import_file(write_jsonl(tmp_path / "r.jsonl", rows), name="r")
    version = ready.jobs.train(
        TrainSpec(
            dataset="r",
            base="tiny",
            model="reg",
            config={"task": "regression", **FINETUNE, "epochs": 6},
        )
    )
    assert version.metrics["test"]["r2"] > 0.5
    values = ready.serving.predict("reg", ["good good good good film", "film"])
    assert values[0]["value"] > values[1]["value"]


def test_the_task_must_suit_the_labels(ready, tmp_path):
    with pytest.raises(InvalidArgument, match="regression needs numeric labels"):
        ready.jobs.submit_training(
            TrainSpec(dataset="s", base="tiny", model="m", config={"task": "regression"})
        )
    rows = [{"text": f"t{i}"} for i in range(10)]
    ready.datasets.import_file(write_jsonl(tmp_path / "u.jsonl", rows), name="unlabelled")
    with pytest.raises(InvalidArgument, match="absent"):
        ready.jobs.submit_training(TrainSpec(dataset="unlabelled", base="tiny", model="m"))


@pytest.mark.parametrize(
    ("config", "match"),
    [
        ({"task": "ner"}, "unknown task"),
        ({"mode": "lora"}, "training mode"),
        ({"lr": 5.0}, "lr"),
        ({"epochs": 0}, "epochs"),
        ({"warmup": 1}, "unknown training options"),
    ],
)
def test_bad_configs_are_refused_before_a_job_exists(ready, config, match):
    with pytest.raises(InvalidArgument, match=match):
        ready.jobs.submit_training(TrainSpec(dataset="s", base="tiny", model="m", config=config))
    assert ready.store.jobs.list("default") == []


def test_exported_bundle_is_a_hugging_face_directory(ready, tmp_path):
    version = ready.jobs.train(
        TrainSpec(dataset="s", base="tiny", model="m", config={**FINETUNE, "pooling": "pooler"})
    )
    out = tmp_path / "export"
    ready.models.export(version.ref, out)
    encoder = AutoModel.from_pretrained(str(out), local_files_only=True)
    classifier = AutoModelForSequenceClassification.from_pretrained(str(out), local_files_only=True)
    assert classifier.config.id2label == {0: "neg", 1: "pos"}
    ours = ready.serving.load(version.ref)
    text = ["good great film"]
    batch = ours.tokenizer(text, return_tensors="pt")
    with torch.inference_mode():
        hf_logits = classifier.eval()(**batch).logits
        encoder_out = encoder.eval()(**batch).last_hidden_state
    assert torch.allclose(hf_logits, ours.outputs(text), atol=1e-5)
    state = load_file(str(out / "model.safetensors"))
    assert "classifier.weight" in state
    assert encoder_out.shape[-1] == 32
