"""aimass: self-hosted model-as-a-service for transformer models on sensitive data.

Importing ``aimass`` is light (no torch, no SQLAlchemy). Heavy pieces load when
used, e.g. :func:`load` on first call.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aimass._version import __version__
from aimass.errors import AimassError, ErrorCode

if TYPE_CHECKING:
    from aimass.client import AsyncClient, Client
    from aimass.serving.predictor import Predictor

__all__ = ["AimassError", "AsyncClient", "Client", "ErrorCode", "__version__", "load"]


def __getattr__(name: str) -> Any:
    # aimass.Client / aimass.AsyncClient load httpx only when first used.
    if name in ("Client", "AsyncClient"):
        import aimass.client

        return getattr(aimass.client, name)
    raise AttributeError(f"module 'aimass' has no attribute {name!r}")


def load(ref: str, *, project: str = "default") -> Predictor:
    """Load a registered model version for prediction, from the local workspace.

    Args:
        ref: ``NAME``, ``NAME@VERSION`` or ``NAME@ALIAS`` (e.g. ``"sentiment@production"``).
        project: The project the model lives in.

    Returns:
        A :class:`~aimass.serving.predictor.Predictor` with ``predict(texts)``;
        language models also have ``generate(prompt, ...)`` and
        ``generate_stream(prompt, ...)``, NER models return entity spans.

    Example:
        >>> model = aimass.load("sentiment@production")  # doctest: +SKIP
        >>> model.predict(["a triumph of a film"])  # doctest: +SKIP
        [{'label': 'fresh', 'score': 0.93, 'probabilities': {...}}]
        >>> aimass.load("assistant@production").generate("Hi!", max_new_tokens=16)  # doctest: +SKIP
        {'text': 'Hello! How can I help you today?', 'finish_reason': 'stop', ...}
    """
    from aimass.settings import load_settings
    from aimass.workspace import Workspace

    return Workspace(load_settings()).serving.load(ref, project=project)
