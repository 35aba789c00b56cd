"""Batching: every example exactly once, similar lengths together, deterministic."""

from hypothesis import given
from hypothesis import strategies as st

from aimass.models.text import Encoded, bucketed_batches, collate


@given(
    lengths=st.lists(st.integers(1, 50), max_size=300),
    size=st.integers(1, 40),
    shuffle=st.booleans(),
    seed=st.integers(0, 1000),
)
def test_each_index_once(lengths, size, shuffle, seed):
    batches = bucketed_batches(lengths, size, shuffle=shuffle, seed=seed)
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(len(lengths)))
    assert all(1 <= len(b) <= size for b in batches)


def test_inference_batches_are_sorted_longest_first():
    lengths = [3, 9, 1, 7, 5]
    assert bucketed_batches(lengths, 2, shuffle=False) == [[1, 3], [4, 0], [2]]


def test_shuffled_batches_are_reproducible_and_length_grouped():
    lengths = list(range(1, 1001))
    a = bucketed_batches(lengths, 10, shuffle=True, seed=3)
    assert a == bucketed_batches(lengths, 10, shuffle=True, seed=3)
    assert a != bucketed_batches(lengths, 10, shuffle=True, seed=4)
    spread = [max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in a]
    assert sum(spread) / len(spread) < 100  # random batches would spread ~600


def test_collate_pads_to_the_batch_longest():
    encoded = Encoded(input_ids=[[1, 2, 3], [4]], token_type_ids=[[0, 0, 0], [0]], pad_id=9)
    batch = collate(encoded, [1, 0], "cpu")
    assert batch["input_ids"].tolist() == [[4, 9, 9], [1, 2, 3]]
    assert batch["attention_mask"].tolist() == [[1, 0, 0], [1, 1, 1]]
    assert batch["token_type_ids"].shape == (2, 3)
