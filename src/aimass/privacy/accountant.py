"""The privacy accountant: epsilon spent by a schedule of DP-SGD steps, and the noise
that keeps a schedule within a budget.

Opacus's accountants (PRV by default, RDP) do the numerics; this module plans
runs of one or more phases (a linear probe, then fine-tuning) at one noise
multiplier, composed by one accountant, and keeps Opacus's routine warnings quiet.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from aimass.errors import InvalidArgument, MissingExtra

__all__ = [
    "ACCOUNTANTS",
    "Schedule",
    "default_delta",
    "epsilon_spent",
    "noise_for_epsilon",
    "quiet_opacus",
    "require_opacus",
]

ACCOUNTANTS = ("prv", "rdp")

# Warnings Opacus raises on every run that say nothing about this run: the
# non-cryptographic RNG notice (documented in the README) and PyTorch's note
# that backward hooks fire on module outputs when the inputs are features.
_EXPECTED_WARNINGS = (
    "Secure RNG turned off",
    "Full backward hook is firing when gradients are computed with respect to module outputs",
    "Optimal order is the",
)


def require_opacus() -> Any:
    """The ``opacus`` module, or ``MissingExtra`` naming the extra to install."""
    try:
        import opacus
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise MissingExtra(
            "differentially private training needs Opacus: pip install 'aimass[privacy]'"
        ) from exc
    return opacus


def default_delta(num_examples: int) -> float:
    """The largest power of ten at most ``1 / (10 N)``: comfortably below ``1/N``.

    A delta near ``1/N`` would allow a mechanism that publishes one whole
    training example; the usual advice is ``delta << 1/N``.
    """
    if num_examples < 1:
        raise InvalidArgument("cannot train privately on an empty training split")
    return 10.0 ** math.floor(math.log10(1.0 / (10 * num_examples)))


def _accountant(name: str) -> Any:
    require_opacus()
    from opacus.accountants import create_accountant

    return create_accountant(mechanism=name)


# (sample rate, steps) of each phase of a run, in order; every phase has the same noise.
Schedule = tuple[tuple[float, int], ...]

# Opacus's bounds for the noise search (``opacus.accountants.utils.get_noise_multiplier``).
_MAX_SIGMA = 1e6
_EPSILON_TOLERANCE = 0.01


def _composed_epsilon(acc: Any, sigma: float, schedule: Schedule, delta: float) -> float:
    """Epsilon of the whole schedule at noise ``sigma``: the accountant composes the phases."""
    acc.history = [(sigma, q, steps) for q, steps in schedule if steps]
    if not acc.history:
        return 0.0
    with quiet_opacus():
        return float(acc.get_epsilon(delta=delta))


def epsilon_spent(
    *,
    noise_multiplier: float,
    sample_rate: float = 0.0,
    steps: int = 0,
    delta: float,
    accountant: str,
    schedule: Schedule = (),
) -> float:
    """Epsilon after ``steps`` Poisson-subsampled Gaussian steps (Opacus's accountant).

    ``schedule`` gives several phases (``(sample rate, steps)`` each) instead.
    """
    phases = schedule or ((sample_rate, steps),)
    return _composed_epsilon(_accountant(accountant), noise_multiplier, phases, delta)


@functools.lru_cache(maxsize=64)
def noise_for_epsilon(
    *,
    target_epsilon: float,
    delta: float,
    sample_rate: float = 0.0,
    steps: int = 0,
    accountant: str,
    schedule: Schedule = (),
) -> float:
    """The smallest noise multiplier (to 0.01 in epsilon) that keeps the run within budget.

    The run is ``steps`` steps at ``sample_rate``, or the phases of ``schedule``
    at one noise multiplier, composed by one accountant. The search is Opacus's
    bisection (``get_noise_multiplier``, which takes one phase only) over the
    composed history. A pure function of its arguments, cached: the PRV search
    takes seconds, and a run plans once when it is submitted and again when it
    starts.
    """
    phases = schedule or ((sample_rate, steps),)
    acc = _accountant(accountant)
    low, high, eps_high = 0.0, 10.0, math.inf
    while eps_high > target_epsilon:
        high *= 2
        eps_high = _composed_epsilon(acc, high, phases, delta)
        if high > _MAX_SIGMA:
            total = sum(s for _q, s in phases)
            raise InvalidArgument(
                f"target epsilon {target_epsilon} cannot be reached for {total} steps at "
                f"sampling rate {max(q for q, _s in phases):.4g} (noise would exceed 1e6); "
                "raise --target-epsilon or train fewer epochs",
                target_epsilon=target_epsilon,
            )
    while target_epsilon - eps_high > _EPSILON_TOLERANCE:
        sigma = (low + high) / 2
        eps = _composed_epsilon(acc, sigma, phases, delta)
        if eps < target_epsilon:
            high, eps_high = sigma, eps
        else:
            low = sigma
    return high


@contextmanager
def quiet_opacus() -> Iterator[None]:
    """Silence the warnings Opacus raises on every run (``_EXPECTED_WARNINGS``)."""
    with warnings.catch_warnings():
        for message in _EXPECTED_WARNINGS:
            warnings.filterwarnings("ignore", message=f".*{message}.*")
        # PRV at sampling rate 1 takes log(1 - q) = log(0); its result is still exact.
        warnings.filterwarnings("ignore", category=RuntimeWarning, module="opacus.*")
        yield
