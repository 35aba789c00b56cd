"""Device selection: CUDA when present (and asked for), else CPU."""

from __future__ import annotations

from typing import Any

from aimass.errors import InvalidArgument

__all__ = ["resolve_device"]


def resolve_device(device: str) -> Any:
    """``auto`` → CUDA when available, else CPU; ``cpu``/``cuda`` as given."""
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise InvalidArgument("device 'cuda' was requested but no CUDA device is available")
    return torch.device(device)
