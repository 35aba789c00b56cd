"""Fine-tuning fewer weights: every bias (BitFit) or the top layers, privately too."""

import pytest
import torch
from safetensors.torch import load_file
from transformers import LlamaConfig, LlamaModel

from aimass.errors import InvalidArgument
from aimass.jobs.train import TrainSpec
from aimass.models.layers import restrict_trainable
from aimass.training.config import TrainConfig
from tests.conftest import sentiment_rows, tiny_bert_model, write_jsonl

FINETUNE = {"mode": "finetune", "epochs": 2, "lr": 1e-3, "batch_size": 32}


def _bert():
    return tiny_bert_model(vocab_size=40, layers=3, hidden=16, max_positions=32)


def _trained(model):
    return {n for n, p in model.named_parameters() if p.requires_grad}


def test_biases_leave_only_the_biases():
    model = _bert()
    model.pooler.requires_grad_(False)  # frozen before: restricting never unfreezes it
    restrict_trainable(model, "biases")
    trained = _trained(model)
    assert trained and all(n.endswith(".bias") for n in trained)
    assert "encoder.layer.0.attention.self.query.bias" in trained
    assert not any(n.startswith("pooler") for n in trained)


def test_top_layers_freeze_the_embeddings_and_the_layers_below():
    model = _bert()
    restrict_trainable(model, "top-1")
    trained = _trained(model)
    assert {n.split(".")[2] for n in trained if n.startswith("encoder.")} == {"2"}
    assert not any(n.startswith("embeddings") for n in trained)
    assert any(n.startswith("pooler") for n in trained)  # what follows the layers stays
    restrict_trainable(model, "all")
    assert _trained(model) == trained
    with pytest.raises(InvalidArgument, match="the base has 3 layers; use top-1 to top-3"):
        restrict_trainable(_bert(), "top-4")


def test_top_layers_of_a_decoder():
    config = LlamaConfig(
        vocab_size=40,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        intermediate_size=32,
        max_position_embeddings=32,
    )
    model = LlamaModel(config)
    restrict_trainable(model, "top-1")
    trained = _trained(model)
    assert "norm.weight" in trained and "embed_tokens.weight" not in trained
    assert {n.split(".")[1] for n in trained if n.startswith("layers.")} == {"1"}


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"trainable": "half"}, "use all, biases or top-N"),
        ({"trainable": "top-0"}, "use all, biases or top-N"),
        ({"trainable": "biases", "mode": "features"}, "mode 'features' trains the head alone"),
        ({"trainable": "biases", "lora_rank": 4}, "--lora-rank chooses the trained weights"),
        ({"trainable": "top-1", "task": "token-classification"}, "trains every weight"),
    ],
)
def test_bad_choices_are_refused(config, message):
    with pytest.raises(InvalidArgument, match=message):
        TrainConfig(**{"mode": "finetune", **config}).resolved(modes=("features", "finetune"))


def test_a_choice_of_weights_implies_fine_tuning():
    resolved = TrainConfig(trainable="top-2").resolved(modes=("features", "finetune"))
    assert resolved.mode == "finetune"


def test_all_keeps_the_config_digest():
    assert "trainable" not in TrainConfig(mode="finetune").resolved().to_dict()
    chosen = TrainConfig(mode="finetune", trainable="biases").resolved().to_dict()
    assert chosen["trainable"] == "biases"


@pytest.fixture
def ready(workspace, tiny_bert_dir, tmp_path):
    workspace.datasets.import_file(write_jsonl(tmp_path / "s.jsonl", sentiment_rows(200)), name="s")
    workspace.bases.import_(str(tiny_bert_dir), name="tiny")
    return workspace


def _weights(ws, uri):
    return load_file(str(ws.artifacts.resolve(uri) / "model.safetensors"))


def test_bitfit_moves_only_biases_and_the_head(ready):
    version = ready.jobs.train(
        TrainSpec(dataset="s", base="tiny", model="b", config={**FINETUNE, "trainable": "biases"})
    )
    training = version.metrics["training"]
    assert training["trainable"] == "biases"
    base = _weights(ready, ready.bases.get("tiny").uri)
    model = _weights(ready, version.uri)
    # The bundle is a plain BertForSequenceClassification: the backbone under "bert.".
    assert all(f"bert.{name}" in model for name in base if not name.startswith("pooler"))
    moved = {
        name
        for name, value in base.items()
        if not name.startswith("pooler") and not torch.equal(model[f"bert.{name}"], value)
    }
    assert moved and all(n.endswith(".bias") for n in moved)
    biases = sum(v.numel() for n, v in base.items() if n.endswith(".bias") and "pooler" not in n)
    head = sum(v.numel() for n, v in model.items() if not n.startswith("bert."))
    assert training["trained_parameters"] == biases + head
    assert version.lineage.config["trainable"] == "biases"


def test_private_top_layer_fine_tuning_counts_what_it_trains(ready):
    version = ready.jobs.train(
        TrainSpec(
            dataset="s",
            base="tiny",
            model="t",
            config={**FINETUNE, "trainable": "top-1"},
            privacy={"target_epsilon": 8, "accountant": "rdp"},
        )
    )
    record = version.privacy
    assert record["trained_parameters"] == version.metrics["training"]["trained_parameters"]
    assert record["epsilon"] <= 8 and not record["trained_embeddings"]
    full = ready.jobs.train(
        TrainSpec(
            dataset="s",
            base="tiny",
            model="f",
            config=FINETUNE,
            privacy={"target_epsilon": 8, "accountant": "rdp"},
        )
    )
    assert record["trained_parameters"] < full.privacy["trained_parameters"]
