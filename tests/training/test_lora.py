"""LoRA fine-tuning: adapters train, merge into the weights, and round-trip through a bundle."""

import json

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForSequenceClassification

from aimass.errors import InvalidArgument
from aimass.jobs.train import TrainSpec
from aimass.models.hf import load_pretrained
from aimass.models.lora import ADAPTER_FILE, LoraSettings, add_adapters, load_adapters
from aimass.models.sequence import SequenceHeadConfig, SequenceModel
from aimass.serving.predictor import load_predictor
from aimass.settings import Settings
from aimass.workspace import Workspace
from tests.conftest import make_tiny_bert, regression_rows, sentiment_rows, write_jsonl
from tests.tiny_decoder import make_tiny_decoder

LORA = {"mode": "finetune", "epochs": 4, "lr": 2e-2, "batch_size": 16, "lora_rank": 8}
REGRESSION = {**LORA, "task": "regression", "epochs": 10, "dropout": 0.0, "warmup_ratio": 0.0}
TEXTS = ["good great film", "bad awful movie it was"]


@pytest.fixture(scope="module")
def lora_ws(tmp_path_factory):
    """Datasets 's' (sentiment) and 'r' (numeric), the tiny decoder 'gpt' and encoder 'bert'."""
    tmp = tmp_path_factory.mktemp("lora")
    # One thread: tiny models gain nothing from two, and on a busy machine they stall on them.
    ws = Workspace(Settings(home=tmp / "home", device="cpu", num_threads=1))
    ws.datasets.import_file(write_jsonl(tmp / "s.jsonl", sentiment_rows(200)), name="s")
    ws.datasets.import_file(write_jsonl(tmp / "r.jsonl", regression_rows(200)), name="r")
    ws.bases.import_(str(make_tiny_decoder(tmp / "gpt")), name="gpt")
    ws.bases.import_(str(make_tiny_bert(tmp / "bert")), name="bert")
    yield ws
    ws.close()


@pytest.fixture(scope="module")
def trained(lora_ws):
    """LoRA classifiers on both bases, trained once for the module."""
    return {
        "gpt": lora_ws.jobs.train(
            TrainSpec(dataset="s", base="gpt", model="lg", config={**LORA, "pooling": "last"})
        ),
        "bert": lora_ws.jobs.train(TrainSpec(dataset="s", base="bert", model="lb", config=LORA)),
    }


def _bundle(ws, version):
    return ws.artifacts.resolve(version.uri)


@pytest.mark.parametrize("base", ["gpt", "bert"])
def test_lora_classifier_trains_and_predicts(lora_ws, trained, base):
    version = trained[base]
    assert version.metrics["test"]["accuracy"] >= 0.85
    assert [p["label"] for p in lora_ws.serving.predict(version.ref, TEXTS)] == ["pos", "neg"]
    manifest = json.loads((_bundle(lora_ws, version) / "aimass.json").read_text())
    lora = manifest["task_config"]["lora"]
    targets = ["q_proj", "v_proj"] if base == "gpt" else ["query", "value"]
    assert lora == {
        "rank": 8,
        "alpha": 16.0,  # twice the rank by default
        "dropout": 0.05,
        "targets": targets,
        "trained_parameters": lora["trained_parameters"],
    }
    assert ADAPTER_FILE in manifest["files"]
    assert version.lineage.config["lora_rank"] == 8


@pytest.mark.parametrize("base", ["gpt", "bert"])
def test_lora_regression_trains_and_predicts(lora_ws, base):
    spec = TrainSpec(dataset="r", base=base, model=f"r{base}", config=REGRESSION)
    version = lora_ws.jobs.train(spec)
    assert (_bundle(lora_ws, version) / ADAPTER_FILE).is_file()
    values = lora_ws.serving.predict(version.ref, ["good great superb film", "bad awful sad film"])
    assert all(isinstance(v["value"], float) for v in values)
    if base == "gpt":  # the tiny random encoder barely regresses through rank-8 adapters
        assert version.metrics["test"]["r2"] > 0.3
        assert values[0]["value"] > values[1]["value"]


@pytest.mark.parametrize("base", ["gpt", "bert"])
def test_adapters_round_trip_through_the_bundle(lora_ws, trained, base):
    version = trained[base]
    bundle = _bundle(lora_ws, version)
    served = lora_ws.serving.load(version.ref).outputs(TEXTS)
    # Save -> load: a fresh predictor from the bundle gives identical outputs.
    fresh = load_predictor(bundle, device="cpu")
    assert torch.equal(fresh.outputs(TEXTS), served)
    # The adapter file alone, put back on the base model, rebuilds the same model.
    manifest = json.loads((bundle / "aimass.json").read_text())
    head = SequenceHeadConfig.from_dict(manifest["task_config"])
    settings = LoraSettings.from_dict(manifest["task_config"]["lora"])
    encoder = load_pretrained(
        lora_ws.artifacts.resolve(lora_ws.bases.get(base).uri), family="backbone"
    )
    prefix, head_prefix = f"{encoder.base_model_prefix}.", fresh.model.backbone.head_prefix
    adapters = load_file(str(bundle / ADAPTER_FILE))
    assert all(".lora_A." in k or ".lora_B." in k or k.startswith(head_prefix) for k in adapters)
    model = SequenceModel(
        load_adapters(
            encoder,
            settings,
            {k.removeprefix(prefix): v for k, v in adapters.items() if k.startswith(prefix)},
        ),
        head,
    )
    model.classifier.load_state_dict(
        {k.removeprefix(head_prefix): v for k, v in adapters.items() if k.startswith(head_prefix)}
    )
    fresh.model = model.eval()
    torch.testing.assert_close(fresh.outputs(TEXTS), served, atol=1e-5, rtol=1e-4)


def test_export_holds_merged_weights_plain_transformers_loads(lora_ws, trained, tmp_path):
    version = trained["bert"]
    out = tmp_path / "export"
    lora_ws.models.export(version.ref, out)
    weights = load_file(str(out / "model.safetensors"))
    assert not any("lora_" in k or "base_layer" in k for k in weights)
    classifier = AutoModelForSequenceClassification.from_pretrained(str(out), local_files_only=True)
    assert type(classifier).__name__ == "BertForSequenceClassification"
    base_dir = lora_ws.artifacts.resolve(lora_ws.bases.get("bert").uri)
    # The base bundle may key its weights with or without the "bert." prefix.
    base = {
        k.removeprefix("bert."): v
        for k, v in load_file(str(base_dir / "model.safetensors")).items()
    }
    layer = "encoder.layer.0.attention.self"
    query, key = weights[f"bert.{layer}.query.weight"], weights[f"bert.{layer}.key.weight"]
    assert not torch.equal(query, base[f"{layer}.query.weight"]), "the adapters are merged in"
    assert torch.equal(key, base[f"{layer}.key.weight"]), "layers without adapters are untouched"


def test_add_adapters_leaves_only_the_adapters_trainable(tiny_bert_dir):
    encoder = load_pretrained(tiny_bert_dir, family="backbone")
    settings = LoraSettings(rank=4, alpha=8.0, dropout=0.0, targets=("query", "value"))
    add_adapters(encoder, settings)
    trainable = [n for n, p in encoder.named_parameters() if p.requires_grad]
    assert trainable and all(".lora_A." in n or ".lora_B." in n for n in trainable)
    assert type(encoder).__name__ == "BertModel", "injected in place, not wrapped"


@pytest.mark.parametrize(
    ("config", "base", "match"),
    [
        (
            {"mode": "features", "lora_rank": 4},
            "bert",
            r"--lora-rank 4 needs --mode finetune.*add --mode finetune or drop --lora-rank",
        ),
        ({"lora_alpha": 16}, "bert", r"--lora-alpha set without --lora-rank.*add --lora-rank"),
        ({"lora_rank": -1}, "bert", r"--lora-rank must be in 0\.\.4096, got -1"),
        (
            {"task": "masked-lm", "lora_rank": 4},
            "bert",
            r"--lora-rank 4: task 'masked-lm' does not train LoRA adapters.*causal-lm",
        ),
    ],
    ids=["features", "alpha-alone", "negative", "task-without"],
)
def test_bad_lora_options_fail_before_a_job_exists(lora_ws, config, base, match, monkeypatch):
    from aimass.training.tasks import get_task

    # Every task aimass ships trains adapters; a task that does not is refused by name.
    monkeypatch.setattr(get_task("masked-lm"), "supports_lora", False)
    jobs = len(lora_ws.store.jobs.list("default"))
    with pytest.raises(InvalidArgument, match=match):
        lora_ws.jobs.submit_training(TrainSpec(dataset="s", base=base, model="x", config=config))
    assert len(lora_ws.store.jobs.list("default")) == jobs


def test_unknown_lora_targets_list_the_layers_there_are(lora_ws):
    spec = TrainSpec(dataset="s", base="gpt", model="x", config={**LORA, "lora_targets": ["query"]})
    with pytest.raises(InvalidArgument, match=r"--lora-targets query: .*choose from .*q_proj"):
        lora_ws.jobs.train(spec)


def test_lora_rank_alone_implies_finetune():
    from aimass.training.config import TrainConfig

    config = TrainConfig(lora_rank=4).resolved()
    assert config.mode == "finetune" and config.lr == 5e-4 and config.lora_alpha == 8.0
    assert "lora_rank" not in TrainConfig().resolved().to_dict(), "old digests stay the same"


ALL_LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def test_causal_lm_lora_learns_and_generates(lm_ready, tmp_path):
    config = {"task": "causal-lm", "epochs": 6, "lr": 1e-2, "lora_rank": 8}
    version = lm_ready.jobs.train(
        TrainSpec(
            dataset="pairs", base="llama", model="g", config={**config, "lora_targets": ALL_LINEAR}
        )
    )
    start = version.metrics["initial_validation"]["loss"]
    assert version.metrics["validation"]["loss"] < 0.9 * start
    bundle = lm_ready.artifacts.resolve(version.uri)
    manifest = json.loads((bundle / "aimass.json").read_text())
    assert manifest["task_config"]["lora"]["targets"] == ALL_LINEAR
    adapters = load_file(str(bundle / ADAPTER_FILE))
    assert adapters and all(".lora_A." in k or ".lora_B." in k for k in adapters)
    out = tmp_path / "export"
    files = lm_ready.models.export(version.ref, out)
    assert "model.safetensors" in files and ADAPTER_FILE in files
    from transformers import AutoModelForCausalLM

    AutoModelForCausalLM.from_pretrained(str(out), local_files_only=True)
    assert isinstance(
        lm_ready.serving.generate(version.ref, "repeat cat", max_new_tokens=4)["text"], str
    )


def test_seq2seq_lora_learns_and_generates(lm_ready):
    config = {"task": "seq2seq", "epochs": 8, "lr": 1e-2, "lora_rank": 8}
    version = lm_ready.jobs.train(TrainSpec(dataset="pairs", base="bart", model="s", config=config))
    assert (
        version.metrics["validation"]["loss"] < 0.9 * version.metrics["initial_validation"]["loss"]
    )
    bundle = lm_ready.artifacts.resolve(version.uri)
    lora = json.loads((bundle / "aimass.json").read_text())["task_config"]["lora"]
    assert lora["targets"] == ["q_proj", "v_proj"]
    adapters = load_file(str(bundle / ADAPTER_FILE))
    assert adapters and all(".lora_A." in k or ".lora_B." in k for k in adapters)
    assert lora["trained_parameters"] == sum(v.numel() for v in adapters.values())
    assert isinstance(
        lm_ready.serving.generate(version.ref, "repeat cat", max_new_tokens=4)["text"], str
    )


def test_masked_lm_lora_adapts_the_encoder_and_trains_the_head(lm_ready):
    config = {"task": "masked-lm", "epochs": 8, "lr": 1e-2, "lora_rank": 8}
    version = lm_ready.jobs.train(TrainSpec(dataset="text", base="bert", model="m", config=config))
    assert version.metrics["validation"]["loss"] < version.metrics["initial_validation"]["loss"]
    bundle = lm_ready.artifacts.resolve(version.uri)
    lora = json.loads((bundle / "aimass.json").read_text())["task_config"]["lora"]
    assert lora["targets"] == ["query", "value"]
    adapters = load_file(str(bundle / ADAPTER_FILE))
    assert adapters and all(".lora_A." in k or ".lora_B." in k for k in adapters)
    # Served as a merged model: the fill-mask predictor reads model.safetensors alone.
    [result] = lm_ready.serving.predict(version.ref, ["the cat [MASK] on the mat"])
    assert len(result["masks"][0]["candidates"]) == 5


def test_cli_lora_flags(tmp_path, monkeypatch, tiny_bert_dir):
    from tests.cli.test_cli import run, run_json

    monkeypatch.setenv("AIMASS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("AIMASS_DEVICE", "cpu")
    run("datasets", "import", write_jsonl(tmp_path / "s.jsonl", sentiment_rows(120)), "--name", "s")
    run("bases", "import", tiny_bert_dir, "--name", "tiny")
    train = ("train", "--dataset", "s", "--base", "tiny", "--name", "l", "--epochs", "1")
    lora = ("--lora-rank", "4", "--lora-alpha", "4", "--lora-targets", "query,key")
    version = run_json(*train, *lora, "--lora-dropout", "0", "--lr", "0.01")
    assert version["lineage"]["config"]["lora_targets"] == ["query", "key"]
    assert version["lineage"]["config"]["mode"] == "finetune"
    refused = run(*train, "--mode", "features", "--lora-rank", "4", ok=False)
    assert refused.exit_code != 0
    assert "--lora-rank 4 needs --mode finetune" in refused.output
