"""Torch zip checkpoints are read by parsing their pickle, never by unpickling it (the
payloads that prove it are in tests/security/test_deserialization.py)."""

import pickle
from collections import OrderedDict

import pytest
import torch
from safetensors.torch import load_file

from aimass.errors import InvalidArgument
from aimass.models.torch_zip import convert_checkpoint, read_state_dict


def test_a_saved_state_dict_reads_back_tensor_for_tensor(tmp_path):
    shared = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    state = OrderedDict(
        weight=torch.randn(5, 3),
        half=torch.randn(4).half(),
        bf16=torch.randn(2, 2).to(torch.bfloat16),
        ids=torch.arange(7),
        mask=torch.tensor([True, False, True]),
        transposed=shared.t(),  # a strided view of another tensor's storage
        row=shared[1],  # an offset view of the same storage
        scalar=torch.tensor(3.5),
        empty=torch.zeros(0, 4),
    )
    state["shared"] = shared
    path = tmp_path / "pytorch_model.bin"
    torch.save(state, path)
    read = read_state_dict(path)
    assert list(read) == list(state)
    for name, tensor in state.items():
        assert read[name].dtype == tensor.dtype, name
        assert torch.equal(read[name], tensor), name


def test_conversion_writes_safetensors_and_copies_the_json_files(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    torch.save(
        {"a": torch.ones(2, 2), "position_ids": torch.arange(4)}, source / "pytorch_model.bin"
    )
    (source / "config.json").write_text("{}")
    out = convert_checkpoint(source, tmp_path / "out", files=["config.json"], drop=["position_ids"])
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors"]
    assert list(load_file(out / "model.safetensors")) == ["a"]


def test_anything_but_a_flat_state_dict_is_refused(tmp_path):
    path = tmp_path / "nested.bin"
    torch.save({"w": torch.ones(1), "meta": {"epoch": 3}}, path)
    with pytest.raises(InvalidArgument, match="flat state dict"):
        read_state_dict(path)
    legacy = tmp_path / "legacy.bin"
    legacy.write_bytes(pickle.dumps({"w": 1}))
    with pytest.raises(InvalidArgument, match="not a zip-format torch checkpoint"):
        read_state_dict(legacy)
