"""Device selection: CUDA when present (and asked for), else CPU."""

from __future__ import annotations

from typing import Any

from aimass.errors import InvalidArgument

__all__ = ["inference_autocast", "resolve_device"]


def resolve_device(device: str) -> Any:
    """``auto`` → CUDA when available, else CPU; ``cpu``/``cuda`` as given."""
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise InvalidArgument("device 'cuda' was requested but no CUDA device is available")
    return torch.device(device)


def inference_autocast(device: Any) -> Any:
    """The mixed-precision context a forward pass for serving runs in on ``device``.

    On CUDA: bf16 where the GPU supports it (Ampere and newer: fp32's range, no
    overflow), else fp16; matrix multiplies and attention then run on tensor
    cores. On the CPU: nothing (fp32), since CPU autocast to bf16 is slower than
    fp32 on CPUs without AMX and the ONNX int8 backend is the CPU's fast path.
    """
    import contextlib

    import torch

    if getattr(device, "type", str(device)) != "cuda":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.autocast("cuda", dtype=dtype)
