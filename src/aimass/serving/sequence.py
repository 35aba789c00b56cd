"""Predictor for sequence classification and regression bundles."""

from __future__ import annotations

import copy
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from aimass.artifacts.bundle import Manifest
from aimass.models.device import inference_autocast
from aimass.models.hf import load_tokenizer, quiet_transformers, read_config
from aimass.models.sequence import SequenceHeadConfig, SequenceModel
from aimass.models.text import bucketed_batches, collate, encode_texts
from aimass.serving.predictor import (
    LazyModel,
    LengthCounter,
    Predictor,
    check_texts,
    register_predictor,
    tokenizer_length_counter,
)

if TYPE_CHECKING:
    from aimass.explain.base import ExplainTarget

__all__ = ["SequencePredictor"]


def build_sequence_model(directory: Path, head: SequenceHeadConfig) -> SequenceModel:
    """Rebuild the model from ``config.json`` and load ``model.safetensors`` into it."""
    quiet_transformers()
    from safetensors.torch import load_file
    from transformers import AutoModel

    config = read_config(directory)
    encoder = AutoModel.from_config(config)
    model = SequenceModel(encoder, head)
    model.load_export_state_dict(load_file(str(directory / "model.safetensors")))
    return model.eval()


@register_predictor
class SequencePredictor(LazyModel[SequenceModel], Predictor):
    """Labels with probabilities (classification) or values (regression)."""

    tasks = ("classification", "regression")
    backend = "torch"

    def __init__(self, directory: Path, manifest: Manifest, device: Any) -> None:
        super().__init__(directory, manifest, device)
        self.head = SequenceHeadConfig.from_dict(manifest.task_config)
        self.max_length = int(manifest.task_config.get("max_length", 128))
        self.tokenizer = load_tokenizer(directory)
        # Fast tokenizers are not safe to call from several threads at once.
        self._tokenize_lock = threading.Lock()
        self._eager_lock = threading.Lock()
        self._eager_encoder: Any = None
        self._init_model()

    def _build_model(self) -> SequenceModel:
        return build_sequence_model(self.directory, self.head).to(self.device)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Raw outputs (B, C) of one collated batch, on the CPU (mixed precision on CUDA)."""
        with inference_autocast(self.device):
            return self.model(**batch).float().cpu()

    @classmethod
    def length_counter(cls, directory: Path, manifest: Manifest) -> LengthCounter:
        """Exact token counts (with special tokens, truncated at ``max_length``)."""
        return tokenizer_length_counter(directory, int(manifest.task_config.get("max_length", 128)))

    @torch.inference_mode()
    def outputs(self, texts: Sequence[str], *, batch_size: int = 32) -> torch.Tensor:
        """Raw outputs (N, C): logits, or standardised values for regression."""
        with self._tokenize_lock:
            encoded = encode_texts(self.tokenizer, texts, max_length=self.max_length)
        out = torch.empty((len(texts), self.head.num_outputs))
        for idx in bucketed_batches(encoded.lengths, batch_size, shuffle=False):
            out[idx] = self.forward(collate(encoded, idx, self.device))
        return out

    def scores(self, texts: Sequence[str], *, batch_size: int = 32) -> np.ndarray:
        """(N, C) class probabilities, or (N, 1) predicted values for regression."""
        if not len(texts):
            return np.zeros((0, self.head.num_outputs))
        outputs = self.outputs(texts, batch_size=batch_size)
        if self.head.task == "regression":
            return (outputs * self.head.target_std + self.head.target_mean).double().numpy()
        return outputs.softmax(dim=-1).double().numpy()

    def predict(
        self,
        texts: Sequence[str],
        *,
        batch_size: int = 32,
        explain: str | bool | None = None,
    ) -> list[dict[str, Any]]:
        """Labels with probabilities, or values; with ``explain`` (a method name or
        ``True``) each result also carries an ``explanation``."""
        texts = check_texts(texts)
        if not texts:
            return []
        scores = self.scores(texts, batch_size=batch_size)
        results: list[dict[str, Any]]
        if self.head.task == "regression":
            results = [{"value": float(v)} for v in scores[:, 0]]
        else:
            labels = self.head.labels
            results = []
            for row in scores.tolist():
                best = max(range(len(row)), key=row.__getitem__)
                results.append(
                    {
                        "label": labels[best],
                        "score": row[best],
                        "probabilities": dict(zip(labels, row, strict=True)),
                    }
                )
        return self.with_explanations(texts, results, explain)

    def explain_target(self) -> ExplainTarget:
        """Scores for occlusion; gradients and attentions for the network methods."""
        from aimass.explain.base import ExplainTarget, Network

        network = Network(
            model=self.model,
            tokenizer=self.tokenizer,
            max_length=self.max_length,
            device=self.device,
            value_scale=self.head.target_std if self.head.task == "regression" else 1.0,
            value_shift=self.head.target_mean if self.head.task == "regression" else 0.0,
            attentions=self._attentions,
            tokenize_lock=self._tokenize_lock,
        )
        return ExplainTarget(
            task=self.head.task,
            labels=tuple(self.head.labels),
            score=self.scores,
            network=network,
            name=f"the {self.manifest.architecture} {self.head.task} model",
        )

    def _attentions(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
        """Per-layer attention probabilities, each (B, heads, T, T)."""
        eager = self._eager()  # built outside inference mode: it holds real parameters
        with torch.inference_mode():
            return tuple(eager.encoder_forward(batch).attentions)

    def _eager(self) -> _EagerEncoder:
        # SDPA attention (the fast default) does not return attention probabilities.
        # A twin in eager mode shares every weight tensor with the served model, so it
        # costs no memory and never changes the model other threads are predicting with.
        with self._eager_lock:
            if self._eager_encoder is None:
                self._eager_encoder = _EagerEncoder(self.model.encoder)
            return self._eager_encoder


class _EagerEncoder:
    """An eager-attention view of an encoder, sharing its weights."""

    def __init__(self, encoder: torch.nn.Module) -> None:
        from transformers import AutoModel

        config = copy.deepcopy(encoder.config)
        twin = AutoModel.from_config(config, attn_implementation="eager")
        twin.load_state_dict(encoder.state_dict(), assign=True)
        device = next(encoder.parameters()).device
        self.encoder = twin.to(device).eval()

    def encoder_forward(self, batch: dict[str, torch.Tensor]) -> Any:
        """The encoder's outputs, attentions included."""
        return self.encoder(**batch, output_attentions=True)
