"""Check a model before DP training: every problem with its layer, reason and alternative.

Opacus style: :func:`find_problems` returns a list (empty when the model can be
trained privately); :func:`require_supported` raises one ``UnsupportedModel``
naming all of them, so a user fixes everything in one go instead of one error
per attempt.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from aimass.errors import UnsupportedModel

if TYPE_CHECKING:
    from torch import nn

__all__ = ["Problem", "find_problems", "require_supported"]


@dataclass(frozen=True)
class Problem:
    """One layer DP-SGD cannot train, why, and what to use instead."""

    layer: str
    kind: str
    reason: str
    alternative: str

    def __str__(self) -> str:
        return f"{self.layer} ({self.kind}): {self.reason}; instead: {self.alternative}"


def _rules() -> list[tuple[tuple[type, ...], str, str]]:
    from torch import nn

    return [
        (
            (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm),
            "batch normalisation mixes the examples of a batch, so no gradient belongs to "
            "one example and per-example clipping bounds nothing",
            "LayerNorm or GroupNorm (opacus.validators.ModuleValidator.fix replaces it)",
        ),
        (
            (nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d),
            "running statistics are buffers updated from the data without noise",
            "track_running_stats=False, or GroupNorm",
        ),
        (
            (nn.MultiheadAttention,),
            "its fused projection weights have no per-example gradient sampler",
            "opacus.layers.DPMultiheadAttention (a drop-in replacement)",
        ),
        (
            (nn.LSTM, nn.GRU, nn.RNN),
            "cuDNN recurrent kernels give no per-example gradients",
            "opacus.layers.DPLSTM / DPGRU / DPRNN",
        ),
    ]


def find_problems(module: nn.Module) -> list[Problem]:
    """Every trainable layer of ``module`` that DP-SGD cannot train (empty when fine)."""
    problems: list[Problem] = []
    rules = _rules()
    for name, layer in module.named_modules():
        if not any(p.requires_grad for p in layer.parameters(recurse=False)):
            continue
        label = name or type(module).__name__
        for kinds, reason, alternative in rules:
            if isinstance(layer, kinds):
                problems.append(Problem(label, type(layer).__name__, reason, alternative))
                break
        else:
            buffers = [b for b, _ in layer.named_buffers(recurse=False)]
            if buffers:
                problems.append(
                    Problem(
                        label,
                        type(layer).__name__,
                        f"a trainable layer with buffers ({', '.join(buffers)}) may carry "
                        "statistics of the data that are not privatised",
                        "freeze the layer, or replace it with one without buffers",
                    )
                )
    return problems


def require_supported(module: nn.Module) -> None:
    """Raise :class:`UnsupportedModel` listing every problem of ``module``, if any."""
    problems = find_problems(module)
    if problems:
        listed = "; ".join(str(p) for p in problems[:10])
        more = f" (and {len(problems) - 10} more)" if len(problems) > 10 else ""
        raise UnsupportedModel(
            f"this model cannot be trained with differential privacy: {listed}{more}. "
            "Alternatively train in features mode (--mode features), which trains only a "
            "linear head privately",
            problems=[p.__dict__ for p in problems],
        )
