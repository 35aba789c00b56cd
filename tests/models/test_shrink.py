"""Shrinking a pretrained model into a student's start: which layers, which neurons."""

import pytest
import torch
from transformers import (
    BartConfig,
    BartModel,
    BertModel,
    Qwen2Config,
    Qwen2ForCausalLM,
)

from aimass.errors import InvalidArgument
from aimass.models.shrink import layer_indices, shrink
from tests.conftest import tiny_bert_model


def _bert(layers=4, width=64):
    return tiny_bert_model(
        vocab_size=50, layers=layers, hidden=16, intermediate=width, max_positions=32
    ).eval()


def _outputs(model, ids):
    with torch.no_grad():
        return model(ids).last_hidden_state


def test_layer_picks():
    assert layer_indices(6, 2, "first") == (0, 1)
    assert layer_indices(12, 6, "spread") == (0, 2, 4, 6, 8, 10)
    assert layer_indices(4, 1, "spread") == (0,)
    assert layer_indices(4, 4, "spread") == (0, 1, 2, 3)
    assert layer_indices(6, 4, "spread") == (0, 2, 3, 5)
    with pytest.raises(InvalidArgument, match="between 1 and the source's 4 layers"):
        layer_indices(4, 5, "first")
    with pytest.raises(InvalidArgument, match="between 1"):
        layer_indices(4, 0, "first")
    with pytest.raises(InvalidArgument, match="first, spread"):
        layer_indices(4, 2, "last")


def test_keeping_everything_changes_nothing():
    model = _bert()
    ids = torch.randint(0, 50, (2, 9))
    before = _outputs(model, ids)
    plan = shrink(model, layers=4)
    assert plan.layers == (0, 1, 2, 3) and plan.intermediate_size == 64
    assert torch.equal(_outputs(model, ids), before)


def test_kept_layers_are_the_sources_and_the_file_reloads(tmp_path):
    model = _bert()
    source = [layer.state_dict() for layer in model.encoder.layer]
    plan = shrink(model, layers=2, pick="spread")
    assert plan.layers == (0, 2) and plan.source_layers == 4
    for kept, index in zip(model.encoder.layer, plan.layers, strict=True):
        for key, value in kept.state_dict().items():
            assert torch.equal(value, source[index][key])
    model.save_pretrained(tmp_path, safe_serialization=True)
    again = BertModel.from_pretrained(tmp_path).eval()
    assert again.config.num_hidden_layers == 2
    ids = torch.randint(0, 50, (2, 9))
    assert torch.allclose(_outputs(again, ids), _outputs(model, ids))


def test_pruning_keeps_the_largest_neurons_in_order():
    model = _bert(layers=1, width=8)
    layer = model.encoder.layer[0]
    with torch.no_grad():
        layer.intermediate.dense.weight.fill_(0.01)
        layer.output.dense.weight.fill_(0.01)
        for neuron, scale in ((6, 5.0), (1, 3.0), (4, 2.0)):
            layer.intermediate.dense.weight[neuron] = scale
            layer.output.dense.weight[:, neuron] = scale
        # Large weights in, nothing out: not important.
        layer.intermediate.dense.weight[3] = 9.0
        layer.output.dense.weight[:, 3] = 0.0
    bias = layer.intermediate.dense.bias.detach().clone()
    plan = shrink(model, layers=1, intermediate_size=3)
    assert plan.intermediate_size == 3 and model.config.intermediate_size == 3
    kept = model.encoder.layer[0]
    assert kept.intermediate.dense.weight[:, 0].tolist() == [3.0, 2.0, 5.0]
    assert torch.equal(kept.intermediate.dense.bias, bias[[1, 4, 6]])
    assert kept.output.dense.weight.shape == (16, 3)
    with pytest.raises(InvalidArgument, match="between 1 and the source's 3"):
        shrink(model, layers=1, intermediate_size=4)


def test_a_llama_style_decoder_with_per_layer_types(tmp_path):
    torch.manual_seed(0)
    config = Qwen2Config(
        vocab_size=50,
        hidden_size=16,
        num_hidden_layers=4,
        num_attention_heads=2,
        num_key_value_heads=1,
        intermediate_size=32,
        max_position_embeddings=32,
        layer_types=["full_attention", "sliding_attention", "full_attention", "full_attention"],
        use_sliding_window=True,
        sliding_window=8,
        max_window_layers=0,
    )
    model = Qwen2ForCausalLM(config).eval()
    plan = shrink(model, layers=2, pick="spread", intermediate_size=8)
    assert plan.layers == (0, 2)
    assert model.config.layer_types == ["full_attention", "full_attention"]
    assert [layer.self_attn.layer_idx for layer in model.model.layers] == [0, 1]
    assert model.model.layers[1].mlp.gate_proj.out_features == 8
    ids = torch.randint(0, 50, (1, 5))
    assert model.generate(ids, max_new_tokens=3, do_sample=False).shape == (1, 8)
    model.save_pretrained(tmp_path, safe_serialization=True)
    again = Qwen2ForCausalLM.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        assert torch.allclose(again(ids).logits, model(ids).logits, atol=1e-6)


def test_other_layouts_are_refused():
    config = BartConfig(
        vocab_size=50,
        d_model=16,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        max_position_embeddings=32,
    )
    with pytest.raises(InvalidArgument, match=r"cannot shrink a bart model.*bases scratch"):
        shrink(BartModel(config), layers=1)
