"""Predictor for sequence classification and regression bundles."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from aimass.artifacts.bundle import Manifest
from aimass.models.hf import load_tokenizer, quiet_transformers, read_config
from aimass.models.sequence import SequenceHeadConfig, SequenceModel
from aimass.models.text import bucketed_batches, collate, encode_texts
from aimass.serving.predictor import Predictor, check_texts, register_predictor

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
class SequencePredictor(Predictor):
    """Labels with probabilities (classification) or values (regression)."""

    tasks = ("classification", "regression")

    def __init__(self, directory: Path, manifest: Manifest, device: Any) -> None:
        super().__init__(directory, manifest, device)
        self.head = SequenceHeadConfig.from_dict(manifest.task_config)
        self.max_length = int(manifest.task_config.get("max_length", 128))
        self.tokenizer = load_tokenizer(directory)
        self.model = build_sequence_model(directory, self.head).to(device)
        # Fast tokenizers are not safe to call from several threads at once.
        self._tokenize_lock = threading.Lock()
        self._length_tokenizer: Any = None

    def token_lengths(self, texts: Sequence[str]) -> list[int]:
        # The micro-batcher calls this on its event loop for every request. A private
        # copy of the Rust tokenizer (fixed truncation, never reconfigured) needs no
        # lock, so measuring lengths never waits for a batch being tokenised.
        if self._length_tokenizer is None:
            from tokenizers import Tokenizer

            copy = Tokenizer.from_str(self.tokenizer.backend_tokenizer.to_str())
            copy.enable_truncation(self.max_length)
            copy.no_padding()
            self._length_tokenizer = copy
        return [len(e.ids) for e in self._length_tokenizer.encode_batch(list(texts))]

    @torch.inference_mode()
    def outputs(self, texts: Sequence[str], *, batch_size: int = 32) -> torch.Tensor:
        """Raw outputs (N, C): logits, or standardised values for regression."""
        with self._tokenize_lock:
            encoded = encode_texts(self.tokenizer, texts, max_length=self.max_length)
        out = torch.empty((len(texts), self.head.num_outputs))
        for idx in bucketed_batches(encoded.lengths, batch_size, shuffle=False):
            out[idx] = self.model(**collate(encoded, idx, self.device)).float().cpu()
        return out

    def predict(self, texts: Sequence[str], *, batch_size: int = 32) -> list[dict[str, Any]]:
        texts = check_texts(texts)
        if not texts:
            return []
        outputs = self.outputs(texts, batch_size=batch_size)
        if self.head.task == "regression":
            values = outputs.squeeze(-1) * self.head.target_std + self.head.target_mean
            return [{"value": float(v)} for v in values]
        probs = outputs.softmax(dim=-1)
        labels = self.head.labels
        results = []
        for row in probs.tolist():
            best = max(range(len(row)), key=row.__getitem__)
            results.append(
                {
                    "label": labels[best],
                    "score": row[best],
                    "probabilities": dict(zip(labels, row, strict=True)),
                }
            )
        return results
