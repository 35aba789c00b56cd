"""Splits are reproducible, stratified and keep every class in training."""

from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aimass.data.splits import assign_splits, validate_fractions
from aimass.errors import InvalidArgument


def test_same_seed_same_splits_other_seed_other_splits():
    labels = ["a"] * 60 + ["b"] * 40
    assert assign_splits(100, seed=1, strata=labels) == assign_splits(100, seed=1, strata=labels)
    assert assign_splits(100, seed=1, strata=labels) != assign_splits(100, seed=2, strata=labels)


def test_stratified_proportions():
    labels = ["a"] * 600 + ["b"] * 400
    splits = assign_splits(1000, seed=0, strata=labels)
    counts = Counter(zip(splits, labels, strict=True))
    assert counts[("validation", "a")] == 60
    assert counts[("validation", "b")] == 40
    assert counts[("train", "a")] == 480


@given(n=st.integers(1, 300), k=st.integers(1, 7), seed=st.integers(0, 2**32 - 1))
def test_every_class_keeps_a_training_example(n, k, seed):
    labels = [i % k for i in range(n)]
    splits = assign_splits(n, seed=seed, strata=labels)
    assert len(splits) == n
    assert set(splits) <= {"train", "validation", "test"}
    trained = {label for label, split in zip(labels, splits, strict=True) if split == "train"}
    assert trained == set(labels)


@pytest.mark.parametrize("fractions", [(0.5, 0.5), (0.9, 0.2, 0.1), (0, 0.5, 0.5), (1.1, -0.1, 0)])
def test_bad_fractions(fractions):
    with pytest.raises(InvalidArgument):
        validate_fractions(fractions)
