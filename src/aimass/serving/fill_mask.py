"""Fill-mask predictor for masked-LM bundles: the likeliest tokens at each mask.

Its fills are explained like a NER tagger's entities (:mod:`aimass.explain.entities`):
each mask is a one-word entity whose tag is the token it is filled with.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import torch

from aimass.artifacts.bundle import Manifest
from aimass.errors import InvalidArgument
from aimass.explain.base import ExplainTarget, TaggedEntity, Tagger, Tagging
from aimass.models.hf import load_pretrained, load_tokenizer
from aimass.serving.predictor import (
    Predictor,
    check_texts,
    register_predictor,
    tagger_target,
    vocabulary_columns,
)

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

    def _encode(self, text: str, index: int | None = None) -> Any:
        """The text's encoding with offsets; a text without a mask is refused (naming
        the input's ``index`` when there is one)."""
        mask = self.tokenizer.mask_token
        if mask not in text:
            what = f"input {index}" if index is not None else "the text to explain"
            raise InvalidArgument(f"{what} has no {mask} token to fill", index=index)
        with self._lock:
            return self.tokenizer(
                text, truncation=True, max_length=self.max_length, return_offsets_mapping=True
            )

    def _masks(self, ids: list[int]) -> list[int]:
        return [p for p, token in enumerate(ids) if token == self.tokenizer.mask_token_id]

    def _token(self, token: int) -> str:
        return str(self.tokenizer.decode([token])).strip()

    @torch.inference_mode()
    def predict(self, texts: Sequence[str], *, batch_size: int = 32) -> list[dict[str, Any]]:
        """``{"masks": [{"start", "candidates": [{"token", "score"}]}]}`` per text."""
        texts = check_texts(texts)
        results = []
        for i, text in enumerate(texts):
            enc = self._encode(text, i)
            ids = torch.tensor([enc["input_ids"]], device=self.device)
            probs = self.model(input_ids=ids).logits[0].float().softmax(-1).cpu()
            masks = []
            for position in self._masks(enc["input_ids"]):
                top = probs[position].topk(TOP)
                candidates = [
                    {"token": self._token(int(t)), "score": float(s)}
                    for s, t in zip(top.values, top.indices, strict=True)
                ]
                masks.append(
                    {"start": enc["offset_mapping"][position][0], "candidates": candidates}
                )
            results.append({"masks": masks})
        return results

    def explain_target(self) -> ExplainTarget:
        """Each mask's fill as a one-word entity for occlusion; the network for
        integrated gradients."""
        tagger = Tagger(read=self._reading, probabilities=partial(vocabulary_columns, self))
        return tagger_target(self, "masked-lm", tagger, max_length=self.max_length)

    def _label_id(self, label: str) -> int:
        """The vocabulary id of the token ``label`` (as predict shows candidates)."""
        token = self.tokenizer.convert_tokens_to_ids(label)
        if isinstance(token, int) and (
            token != self.tokenizer.unk_token_id or label == self.tokenizer.unk_token
        ):
            return token
        with self._lock:
            ids = self.tokenizer(label, add_special_tokens=False)["input_ids"]
        if len(ids) != 1 or ids[0] == self.tokenizer.unk_token_id:
            raise InvalidArgument(
                f"{label!r} is not one token of the model's vocabulary (it reads as "
                f"{' '.join(self.tokenizer.convert_ids_to_tokens(ids))}); explain a fill "
                "predict lists as a candidate, or leave the label out to explain each "
                "mask's top token",
                label=label,
            )
        return int(ids[0])

    def _reading(self, text: str, label: str | None) -> Tagging:
        """The text as predict reads it; one entity per mask, filled with its top token
        (or with ``label``)."""
        wanted = None if label is None else self._label_id(label)
        enc = self._encode(text)
        ids = list(enc["input_ids"])
        with torch.inference_mode():
            batch = torch.tensor([ids], device=self.device)
            probs = self.model(input_ids=batch).logits[0].float().softmax(-1).cpu()
        masks = self._masks(ids)
        fills = [int(probs[p].argmax()) if wanted is None else wanted for p in masks]
        classes = tuple(dict.fromkeys(fills))
        offsets = [(int(s), int(e)) for s, e in enc["offset_mapping"]]
        return Tagging(
            windows=[ids],
            tokens=[enc.tokens()],
            # Special tokens have empty spans; a mask is not a word of the text either.
            offsets=[
                [
                    None if e <= s or token == self.tokenizer.mask_token_id else (s, e)
                    for token, (s, e) in zip(ids, offsets, strict=True)
                ]
            ],
            probabilities=[probs[:, list(classes)].numpy()],
            entities=[
                TaggedEntity(
                    label=self._token(fill),
                    start=offsets[p][0],
                    end=offsets[p][1],
                    score=float(probs[p, fill]),
                    tags=((0, p, classes.index(fill)),),
                )
                for p, fill in zip(masks, fills, strict=True)
            ],
            target="fills" if label is None else label,
            target_index=-1 if wanted is None else wanted,
            classes=classes,
        )
