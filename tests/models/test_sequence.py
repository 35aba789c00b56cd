"""Pooling and layer choice of sequence heads, per backbone family."""

import pytest
import torch

from aimass.errors import InvalidArgument, UnsupportedModel
from aimass.models.sequence import SequenceHeadConfig, get_backbone, pool


def test_last_pooling_finds_the_last_real_token_on_either_side():
    hidden = torch.arange(2 * 4, dtype=torch.float32).reshape(2, 4, 1)  # (B, T, H)
    right = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]])
    left = torch.tensor([[0, 0, 1, 1], [1, 1, 1, 1]])
    assert pool("last", hidden, right).flatten().tolist() == [1.0, 7.0]
    assert pool("last", hidden, left).flatten().tolist() == [3.0, 7.0]
    assert pool("mean", hidden, left).flatten().tolist() == [2.5, 5.5]


def test_layers_are_hidden_state_indices_counted_from_either_end():
    head = SequenceHeadConfig(task="classification", num_outputs=2, feature_layers=2)
    assert head.layer_indices(4) == [3, 4]
    chosen = SequenceHeadConfig(task="regression", num_outputs=1, layers=[0, -1, 2])
    assert chosen.layer_indices(4) == [0, 4, 2]
    with pytest.raises(InvalidArgument, match=r"layer 5 is out of range: .* 0\.\.4"):
        SequenceHeadConfig(task="regression", num_outputs=1, layers=[5]).layer_indices(4)


def test_each_family_names_the_poolings_that_suit_it():
    assert get_backbone("decoder").poolings == ("mean", "last")
    with pytest.raises(InvalidArgument, match="pooling 'cls' does not suit a decoder base"):
        SequenceHeadConfig(task="classification", num_outputs=2, pooling="cls", family="decoder")
    with pytest.raises(UnsupportedModel, match="families: decoder, encoder"):
        get_backbone("encoder-decoder")
