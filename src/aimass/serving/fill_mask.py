"""Fill-mask predictor for masked-LM bundles: the likeliest tokens at each mask."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from aimass.artifacts.bundle import Manifest
from aimass.errors import InvalidArgument
from aimass.models.hf import load_pretrained, load_tokenizer
from aimass.serving.predictor import Predictor, check_texts, register_predictor

__all__ = ["FillMaskPredictor"]

TOP = 5


@register_predictor
class FillMaskPredictor(Predictor):
    """``predict(["Paris is the [MASK] of France."])`` → candidates for every mask."""

    tasks = ("masked-lm",)

    def __init__(self, directory: Path, manifest: Manifest, device: Any) -> None:
        super().__init__(directory, manifest, device)
        self.tokenizer = load_tokenizer(directory)
        self.model = load_pretrained(directory, family="encoder-mlm").to(device).eval()
        self.max_length = int(manifest.task_config.get("max_length", 128))
        self._lock = threading.Lock()

    def warm_up(self) -> None:
        """One fill of one mask (an input without a mask is refused)."""
        self.predict([f"warm {self.tokenizer.mask_token} up"])

    @torch.inference_mode()
    def predict(self, texts: Sequence[str], *, batch_size: int = 32) -> list[dict[str, Any]]:
        """``{"masks": [{"start", "candidates": [{"token", "score"}]}]}`` per text."""
        texts = check_texts(texts)
        mask = self.tokenizer.mask_token
        results = []
        for i, text in enumerate(texts):
            if mask not in text:
                raise InvalidArgument(f"input {i} has no {mask} token to fill", index=i)
            with self._lock:
                enc = self.tokenizer(
                    text, truncation=True, max_length=self.max_length, return_offsets_mapping=True
                )
            ids = torch.tensor([enc["input_ids"]], device=self.device)
            probs = self.model(input_ids=ids).logits[0].float().softmax(-1).cpu()
            masks = []
            for position, token in enumerate(enc["input_ids"]):
                if token != self.tokenizer.mask_token_id:
                    continue
                top = probs[position].topk(TOP)
                candidates = [
                    {"token": str(self.tokenizer.decode([int(t)])).strip(), "score": float(s)}
                    for s, t in zip(top.values, top.indices, strict=True)
                ]
                masks.append(
                    {"start": enc["offset_mapping"][position][0], "candidates": candidates}
                )
            results.append({"masks": masks})
        return results
