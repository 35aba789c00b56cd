"""Layer-wise learning-rate decay: the layers nearest the input take the smallest steps."""

import pytest
import torch
from safetensors.torch import load_file
from transformers import BartConfig, BartForConditionalGeneration, LlamaForCausalLM

from aimass.errors import InvalidArgument
from aimass.jobs.train import TrainSpec
from aimass.training.config import TrainConfig
from aimass.training.loop import param_groups
from tests.conftest import tiny_bert_model
from tests.tiny_decoder import make_tiny_decoder


def _scales(model, decay):
    """``{parameter name: (lr_scale, weight_decay)}`` of ``param_groups``' groups."""
    names = {id(p): n for n, p in model.named_parameters()}
    return {
        names[id(p)]: (group["lr_scale"], group["weight_decay"])
        for group in param_groups(model, 0.01, decay)
        for p in group["params"]
    }


def test_each_layer_steps_at_the_one_above_times_the_decay():
    scales = _scales(tiny_bert_model(vocab_size=40, layers=3, hidden=16, max_positions=32), 0.5)
    assert scales["pooler.dense.weight"] == (1.0, 0.01)  # what follows the layers: lr itself
    assert scales["encoder.layer.2.output.dense.weight"] == (0.5, 0.01)
    assert scales["encoder.layer.0.attention.self.query.bias"] == (0.125, 0.0)
    assert scales["embeddings.word_embeddings.weight"] == (0.0625, 0.01)
    assert scales["embeddings.LayerNorm.weight"] == (0.0625, 0.0)  # norms never decay


def test_a_decoder_tied_head_steps_with_the_embeddings(tmp_path):
    decoder = LlamaForCausalLM.from_pretrained(make_tiny_decoder(tmp_path / "d"))  # 2 layers, tied
    scales = _scales(decoder, 0.5)
    assert scales["model.norm.weight"] == (1.0, 0.0)
    assert scales["model.layers.1.mlp.up_proj.weight"] == (0.5, 0.01)
    assert scales["model.embed_tokens.weight"] == (0.125, 0.01)  # lm_head is the same tensor
    assert "lm_head.weight" not in scales


def test_off_keeps_the_two_groups_a_checkpoint_expects():
    groups = param_groups(tiny_bert_model(vocab_size=40, layers=2, hidden=16), 0.01)
    assert [g["weight_decay"] for g in groups] == [0.01, 0.0]
    assert all("lr_scale" not in g for g in groups)


def test_a_model_without_a_known_stack_is_refused_by_name():
    bart = BartForConditionalGeneration(
        BartConfig(
            vocab_size=40,
            d_model=16,
            encoder_layers=1,
            decoder_layers=1,
            encoder_attention_heads=2,
            decoder_attention_heads=2,
            encoder_ffn_dim=32,
            decoder_ffn_dim=32,
        )
    )
    with pytest.raises(InvalidArgument, match="BartForConditionalGeneration is neither"):
        param_groups(bart, 0.01, 0.8)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"layer_lr_decay": 0}, "use a number in"),
        ({"layer_lr_decay": 1.5}, "use a number in"),
        ({"layer_lr_decay": True}, "use a number in"),
        ({"layer_lr_decay": 0.8, "mode": "features"}, "trains the head alone"),
    ],
)
def test_bad_values_are_refused(config, message):
    with pytest.raises(InvalidArgument, match=message):
        TrainConfig(**{"mode": "finetune", **config}).resolved(modes=("features", "finetune"))


def test_off_keeps_the_config_digest():
    assert "layer_lr_decay" not in TrainConfig(mode="finetune").resolved().to_dict()
    assert TrainConfig(mode="finetune", layer_lr_decay=0.8).resolved().to_dict()[
        "layer_lr_decay"
    ] == pytest.approx(0.8)


def _moved(base, model, prefix):
    """Mean absolute change of the backbone weights whose names start with ``prefix``."""
    changes = [
        (model[f"bert.{name}"] - value).abs().mean()
        for name, value in base.items()
        if name.startswith(prefix) and value.dtype.is_floating_point
    ]
    return float(torch.stack(changes).mean())


FINETUNE = {"mode": "finetune", "epochs": 2, "lr": 1e-3, "batch_size": 32}


def _movements(ws, version):
    """How far the embeddings, the bottom and the top layer moved from the base."""
    base = load_file(str(ws.artifacts.resolve(ws.bases.get("tiny").uri) / "model.safetensors"))
    model = load_file(str(ws.artifacts.resolve(version.uri) / "model.safetensors"))
    top = len({n.split(".")[2] for n in base if n.startswith("encoder.layer.")}) - 1
    assert top >= 1
    parts = (
        ("embeddings", "embeddings."),
        ("bottom", "encoder.layer.0."),
        ("top", f"encoder.layer.{top}."),
    )
    return {part: _moved(base, model, prefix) for part, prefix in parts}, top


def test_a_trained_classifier_moves_its_lowest_layers_least(ready_with_tags):

    def trained(decay, name):
        spec = TrainSpec(
            dataset="s", base="tiny", model=name, config={**FINETUNE, "layer_lr_decay": decay}
        )
        return ready_with_tags.jobs.train(spec)

    flat, _ = _movements(ready_with_tags, trained(1.0, "flat"))
    version = trained(0.1, "decayed")
    decayed, top = _movements(ready_with_tags, version)
    assert version.lineage.config["layer_lr_decay"] == pytest.approx(0.1)
    # AdamW's steps are about lr a coordinate whatever the gradient, so a layer moves
    # in proportion to its step size: ten times less for each layer further down.
    assert flat["bottom"] > flat["top"] / 3  # every layer alike without the decay
    assert decayed["bottom"] < decayed["top"] / (10**top / 2)
    assert decayed["embeddings"] < decayed["bottom"]
    assert decayed["top"] < flat["top"] / 3


@pytest.mark.parametrize(
    ("dataset", "options", "privacy"),
    [
        ("s", {}, {"target_epsilon": 8, "accountant": "rdp"}),
        ("s", {"lora_rank": 4, "lr": 1e-2}, None),
        ("n", {"task": "token-classification"}, None),
    ],
    ids=["private-classifier", "lora-adapters", "tagger"],
)
def test_privacy_adapters_and_taggers_decay_too(ready_with_tags, dataset, options, privacy):
    config = {**FINETUNE, **options, "layer_lr_decay": 0.1}
    version = ready_with_tags.jobs.train(
        TrainSpec(dataset=dataset, base="tiny", model="d", config=config, privacy=privacy)
    )
    decayed, top = _movements(ready_with_tags, version)
    assert decayed["bottom"] < decayed["top"] / (10**top / 2)
    assert decayed["embeddings"] < decayed["bottom"]
