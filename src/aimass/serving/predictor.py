"""Predictors: a verified bundle loaded for inference, independent of HTTP.

``load_predictor(bundle_dir)`` verifies the bundle, picks the predictor class
registered for its task and returns an object with ``predict(texts)``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from aimass.artifacts.bundle import Manifest, verify_bundle
from aimass.errors import InvalidArgument, UnsupportedModel
from aimass.models.device import resolve_device

__all__ = ["Predictor", "check_texts", "load_predictor", "register_predictor"]


class Predictor(ABC):
    """A model ready to predict. Thread-safe for concurrent ``predict`` calls."""

    tasks: ClassVar[tuple[str, ...]] = ()

    def __init__(self, directory: Path, manifest: Manifest, device: Any) -> None:
        self.directory = directory
        self.manifest = manifest
        self.device = device

    @property
    def task(self) -> str:
        """The task the model was trained for."""
        return str(self.manifest.task)

    @property
    def digest(self) -> str:
        """The bundle digest (identity of the weights and config)."""
        return self.manifest.digest

    @abstractmethod
    def predict(self, texts: Sequence[str], *, batch_size: int = 32) -> list[dict[str, Any]]:
        """One result per input text, in input order."""

    def token_lengths(self, texts: Sequence[str]) -> list[int]:
        """Tokens each input becomes (the micro-batcher buckets by it).

        The default counts whitespace-separated words plus two special tokens;
        predictors with a tokenizer override it with the exact count.
        """
        return [len(text.split()) + 2 for text in texts]

    def info(self) -> dict[str, Any]:
        """What is loaded: task, architecture, digest, task settings."""
        return {
            "task": self.task,
            "architecture": self.manifest.architecture,
            "family": self.manifest.family,
            "digest": self.digest,
            "task_config": self.manifest.task_config,
            "device": str(self.device),
        }


_PREDICTORS: dict[str, type[Predictor]] = {}


def register_predictor(cls: type[Predictor]) -> type[Predictor]:
    """Class decorator: serve the tasks in ``cls.tasks`` with ``cls``."""
    for task in cls.tasks:
        _PREDICTORS[task] = cls
    return cls


# Bases that serve as they are: a pretrained decoder generates text without training.
_BASE_TASKS = {"decoder": "causal-lm"}


def load_predictor(directory: Path, *, device: str = "auto") -> Predictor:
    """Verify the bundle at ``directory`` and load the predictor for its task.

    Model bundles are served by their task's predictor; a decoder *base*
    bundle is served for generation as it is.
    """
    from aimass.serving import (  # noqa: F401  (register the built-in predictors)
        fill_mask,
        generation,
        sequence,
        tokens,
    )

    directory = Path(directory)
    manifest = verify_bundle(directory)
    task = manifest.task if manifest.kind == "model" else _BASE_TASKS.get(manifest.family)
    if task is None:
        raise UnsupportedModel(
            f"bundle {directory.name} is a {manifest.kind} ({manifest.family}) without a task; "
            "train a model from it first ('aimass train')"
        )
    cls = _PREDICTORS.get(task)
    if cls is None:
        raise UnsupportedModel(
            f"no predictor for task {manifest.task!r}; known: {', '.join(sorted(_PREDICTORS))}"
        )
    return cls(directory, manifest, resolve_device(device))


def check_texts(texts: Sequence[str]) -> list[str]:
    """Inputs must be a list of non-empty strings."""
    if isinstance(texts, str) or not isinstance(texts, Sequence):
        raise InvalidArgument("predict takes a list of texts, e.g. ['first text', 'second']")
    for i, text in enumerate(texts):
        if not isinstance(text, str) or not text.strip():
            raise InvalidArgument(f"input {i} must be a non-empty string", index=i)
    return list(texts)
