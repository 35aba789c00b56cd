"""Serving on ONNX Runtime: the sequence and NER predictors with their forward pass
on a graph.

``aimass models optimize`` writes a version's graphs (:mod:`aimass.jobs.optimize`);
this module serves them. Everything but the forward pass is the PyTorch
predictor's: the tokenizer, the length-bucketed batches, the softmax and
labels, the regression scaling; for NER the windows over long texts, the word
tags and the entity spans. Explanations need gradients and attention
probabilities, which a graph does not give: the PyTorch model is built on the
first explanation and used for it, so an explanation is the same whichever
backend predicted.

Which backend serves a version is decided by :func:`choose_backend` from the
server's setting (``AIMASS_SERVE_BACKEND``) and the version's parity record.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from aimass.artifacts.bundle import Manifest
from aimass.errors import InvalidArgument, UnsupportedModel
from aimass.models.onnx import VARIANTS, OnnxSession
from aimass.serving.predictor import Predictor
from aimass.serving.sequence import SequencePredictor
from aimass.serving.tokens import TokenClassificationPredictor

__all__ = [
    "BACKENDS",
    "OnnxSequencePredictor",
    "OnnxTokenPredictor",
    "choose_backend",
    "load_onnx_predictor",
]

BACKENDS = ("auto", "torch", "onnx", "onnx-int8")
ONNX_TASKS = frozenset((*SequencePredictor.tasks, *TokenClassificationPredictor.tasks))


class _OnnxBackend(Predictor):
    """What an ONNX Runtime predictor adds to its PyTorch predictor (the class after
    this one in its bases): the session that replaces the model, and the warm-up the
    session needs."""

    def __init__(
        self,
        directory: Path,
        manifest: Manifest,
        *,
        backend: str,
        graph: Path,
        threads: int | None = None,
    ) -> None:
        self.backend = backend  # type: ignore[misc]  # per instance: onnx or onnx-int8
        self._graph = Path(graph) / VARIANTS[backend]
        self._threads = threads
        super().__init__(directory, manifest, torch.device("cpu"))

    def _load(self) -> None:
        self.session = OnnxSession(self._graph, threads=self._threads)

    def warm_up(self) -> None:
        """Two calls: ONNX Runtime plans its memory on the first run of a shape."""
        self.predict(["warm-up"])
        self.predict(["warm-up", "a second, longer warm-up text"])

    def info(self) -> dict[str, Any]:
        """The predictor's details with the graph and its thread settings."""
        return {**super().info(), "onnx": self.session.describe()}


class OnnxSequencePredictor(_OnnxBackend, SequencePredictor):
    """Classification and regression with the forward pass on ONNX Runtime."""

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Raw outputs (B, C) of one collated batch, from the graph."""
        return torch.from_numpy(self.session.run(batch)).float()


class OnnxTokenPredictor(_OnnxBackend, TokenClassificationPredictor):
    """Named entities with the tag logits from an ONNX Runtime graph."""

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Tag logits (B, T, C) of one padded batch, from the graph."""
        batch = {"input_ids": input_ids, "attention_mask": attention_mask}
        return torch.from_numpy(self.session.run(batch)).float()


def load_onnx_predictor(
    directory: Path,
    manifest: Manifest,
    *,
    backend: str,
    graph: Path,
    threads: int | None = None,
) -> Predictor:
    """The ONNX Runtime predictor of a verified bundle (its task must have a graph)."""
    if backend not in VARIANTS:
        raise InvalidArgument(f"unknown ONNX backend {backend!r}; use one of {', '.join(VARIANTS)}")
    if manifest.task not in ONNX_TASKS:
        raise UnsupportedModel(
            f"{manifest.task!r} models have no ONNX Runtime backend yet (built for "
            f"{', '.join(sorted(ONNX_TASKS))}); serve with the torch backend",
            task=manifest.task,
        )
    kind = (
        OnnxTokenPredictor
        if manifest.task in TokenClassificationPredictor.tasks
        else OnnxSequencePredictor
    )
    return kind(directory, manifest, backend=backend, graph=graph, threads=threads)


def choose_backend(setting: str, parity: dict[str, Any] | None) -> str:
    """The backend that serves a version: the setting, resolved against its parity record.

    ``auto`` takes the record's recommendation (int8 when it passed the parity
    gate, else the fp32 graph) and ``torch`` when the version has no graphs.
    ``onnx`` or ``onnx-int8`` asked for explicitly need the graphs; int8 asked
    for explicitly is served even if it failed the gate (the operator chose it,
    and the record says by how much it missed).
    """
    if setting not in BACKENDS:
        raise InvalidArgument(
            f"unknown serving backend {setting!r}; use one of {', '.join(BACKENDS)}"
        )
    if setting == "torch":
        return "torch"
    if parity is None:
        if setting == "auto":
            return "torch"
        raise InvalidArgument(
            f"backend {setting!r} needs the version's ONNX graphs; run "
            "'aimass models optimize NAME@VERSION' first, or serve with AIMASS_SERVE_BACKEND=auto"
        )
    if setting == "auto":
        return str(parity.get("recommended") or "torch")
    return setting
