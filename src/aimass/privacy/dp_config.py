"""What a user asks of differential privacy (``aimass train --dp ...``), checked before any
job runs; :class:`aimass.privacy.dp.DPEngine` trains with it."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any

from aimass.errors import InvalidArgument
from aimass.privacy.accountant import ACCOUNTANTS, default_delta

__all__ = ["CLIPPINGS", "GRAD_SAMPLE_MODES", "DPConfig"]

GRAD_SAMPLE_MODES = ("hooks", "ghost")
CLIPPINGS = ("flat", "per-layer")


@dataclass(frozen=True)
class DPConfig:
    """What the user asked for (``aimass train --dp ...``); validated before any job runs.

    Attributes:
        target_epsilon: The privacy budget; training never spends more.
        delta: Failure probability; defaults to :func:`default_delta` of the
            training split, and must stay below ``1/N``.
        max_grad_norm: Per-example gradient clipping bound ``C``.
        accountant: ``prv`` (tight, Gopi et al. 2021) or ``rdp``.
        grad_sample_mode: ``hooks`` (per-example gradients) or ``ghost`` (ghost
            clipping: per-example norms without materialising the gradients).
            Default: ``hooks`` for a head on features, ``ghost`` for fine-tuning
            (``hooks`` when a trained weight is tied to another layer's, which
            ghost clipping cannot bound).
        noise_multiplier: A fixed noise multiplier instead of calibrating it to
            ``target_epsilon``; refused when the planned steps would overspend.
        train_embeddings: Fine-tuning only: also train the token-embedding matrix.
            Off by default: it is the largest weight (vocabulary x hidden), the
            costliest per-example norm and the most noised coordinates, and private
            fine-tuning does about as well without it.
        clipping: ``flat`` bounds an example's whole gradient by ``C``;
            ``per-layer`` bounds each trained weight tensor's share by
            ``C / sqrt(K)`` (``K`` tensors, so the whole gradient is still bounded by
            ``C`` and the noise is the same): a small tensor such as the head is no
            longer scaled down by a large one's norm (McMahan et al. 2018). Needs
            per-example gradients (``hooks``); Opacus's ghost clipping is flat only.
    """

    target_epsilon: float
    delta: float | None = None
    max_grad_norm: float = 1.0
    accountant: str = "prv"
    grad_sample_mode: str | None = None
    noise_multiplier: float | None = None
    train_embeddings: bool = False
    clipping: str = "flat"

    def __post_init__(self) -> None:
        checks = [
            (
                math.isfinite(self.target_epsilon) and self.target_epsilon > 0,
                "target_epsilon",
                "must be a positive number (e.g. 1, 3 or 8)",
            ),
            (
                self.delta is None or 0 < self.delta < 1,
                "delta",
                "must be in (0, 1), and below 1/N",
            ),
            (
                math.isfinite(self.max_grad_norm) and self.max_grad_norm > 0,
                "max_grad_norm",
                "must be a positive number (1.0 is a good start)",
            ),
            (self.accountant in ACCOUNTANTS, "accountant", f"must be one of {ACCOUNTANTS}"),
            (
                self.grad_sample_mode in (None, *GRAD_SAMPLE_MODES),
                "grad_sample_mode",
                f"must be one of {GRAD_SAMPLE_MODES}",
            ),
            (
                self.noise_multiplier is None or self.noise_multiplier > 0,
                "noise_multiplier",
                "must be positive",
            ),
            (self.clipping in CLIPPINGS, "clipping", f"must be one of {CLIPPINGS}"),
            (
                not (self.clipping == "per-layer" and self.grad_sample_mode == "ghost"),
                "grad_sample_mode",
                "cannot be 'ghost' with per-layer clipping (ghost clipping bounds the whole "
                "gradient only); drop --grad-sample-mode (per-layer clipping then uses hooks)",
            ),
        ]
        for ok, name, rule in checks:
            if not ok:
                raise InvalidArgument(
                    f"differential privacy option {name}={getattr(self, name)!r} {rule}",
                    field=name,
                )

    def resolved(self, num_examples: int) -> DPConfig:
        """Fill the default delta and check it against the training split size ``N``."""
        delta = self.delta if self.delta is not None else default_delta(num_examples)
        if delta >= 1.0 / num_examples:
            raise InvalidArgument(
                f"delta={delta:g} is not below 1/N = 1/{num_examples:,} = {1 / num_examples:.3g}: "
                "such a delta allows publishing whole training examples; use a smaller --delta "
                f"(the default would be {default_delta(num_examples):g})",
                field="delta",
                delta=delta,
                num_examples=num_examples,
            )
        return replace(self, delta=delta)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (for the job spec and the config digest)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DPConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error naming the valid ones."""
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise InvalidArgument(
                f"unknown differential privacy options {unknown}; valid: {', '.join(sorted(known))}"
            )
        if "target_epsilon" not in data:
            raise InvalidArgument("differential privacy needs a target epsilon (--target-epsilon)")
        return cls(**data)
