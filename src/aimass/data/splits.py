"""Reproducible train/validation/test splits, stratified by label when labels are classes."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from aimass.errors import InvalidArgument

__all__ = ["SPLITS", "assign_splits", "validate_fractions"]

SPLITS = ("train", "validation", "test")


def validate_fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
    """Check ``(train, validation, test)`` fractions: three, non-negative, summing to 1."""
    if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-6:
        raise InvalidArgument(
            f"split fractions {tuple(fractions)} must be three non-negative numbers "
            "(train, validation, test) that sum to 1, e.g. 0.8,0.1,0.1"
        )
    if fractions[0] <= 0:
        raise InvalidArgument("the train split fraction must be positive")
    return (float(fractions[0]), float(fractions[1]), float(fractions[2]))


def _cut(indices: list[int], fractions: tuple[float, float, float]) -> list[str]:
    n = len(indices)
    n_val = round(n * fractions[1])
    n_test = round(n * fractions[2])
    # Every group keeps at least one training example.
    while n_val + n_test >= n and (n_val or n_test):
        if n_test >= n_val and n_test:
            n_test -= 1
        else:
            n_val -= 1
    return ["validation"] * n_val + ["test"] * n_test + ["train"] * (n - n_val - n_test)


def assign_splits(
    n_rows: int,
    *,
    seed: int,
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
    strata: Sequence[object] | None = None,
) -> list[str]:
    """A split name per row, reproducible from ``seed``.

    Args:
        n_rows: Number of rows.
        seed: Seed of the permutation (same seed, same rows → same splits).
        fractions: Train, validation and test fractions.
        strata: Per-row class labels; each class is split in the same proportions.
    """
    fractions = validate_fractions(fractions)
    rng = np.random.Generator(np.random.PCG64(seed))
    groups: dict[object, list[int]] = defaultdict(list)
    for index in range(n_rows):
        groups[strata[index] if strata is not None else None].append(index)
    result = [""] * n_rows
    for key in sorted(groups, key=repr):
        members = groups[key]
        order = [members[i] for i in rng.permutation(len(members))]
        for index, split in zip(order, _cut(order, fractions), strict=True):
            result[index] = split
    return result
