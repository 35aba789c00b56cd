"""Token-classification (NER) predictor: raw texts in, entity spans with character offsets out.

Usable without the registry or a server, as a plain object::

    from aimass.serving import load_predictor
    ner = load_predictor(bundle_dir)
    ner.predict(["江泽民访问北京。"])
    # [{"entities": [{"label": "PER", "start": 0, "end": 3, "text": "江泽民", "score": 0.98},
    #                {"label": "LOC", "start": 5, "end": 7, "text": "北京", "score": 0.97}]}]

A text is split into words by the tokenizer's pre-tokenizer (whitespace and
punctuation; each CJK character is a word), each word takes the tag predicted
for its first sub-word, and entities are read off the word tags with the same
chunking as the F1 score (:func:`aimass.metrics.entity_spans`). Texts longer
than the model's ``max_length`` are read in overlapping windows; a word keeps
the prediction of the first window that holds its first sub-word. ``start`` and
``end`` are character offsets into the text (``end`` exclusive), ``score`` the
mean probability of the entity's word tags.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from aimass.artifacts.bundle import Manifest
from aimass.metrics import entity_spans
from aimass.models.device import inference_autocast
from aimass.models.hf import load_pretrained, load_tokenizer
from aimass.models.text import window_probabilities, window_stride
from aimass.serving.predictor import (
    LazyModel,
    LengthCounter,
    Predictor,
    check_texts,
    register_predictor,
    tokenizer_length_counter,
)

__all__ = ["TokenClassificationPredictor"]


@register_predictor
class TokenClassificationPredictor(LazyModel[Any], Predictor):
    """Named entities with labels, character offsets and scores."""

    tasks = ("token-classification",)

    def __init__(self, directory: Path, manifest: Manifest, device: Any) -> None:
        super().__init__(directory, manifest, device)
        self.labels: list[str] = list(manifest.task_config["labels"])
        self.max_length = int(manifest.task_config.get("max_length", 128))
        self.tokenizer = load_tokenizer(directory)
        self._lock = threading.Lock()  # fast tokenizers are not safe across threads
        self._init_model()

    def _build_model(self) -> Any:
        return load_pretrained(self.directory, family="encoder-tokens").to(self.device).eval()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Tag logits (B, T, C) of one padded batch, on the CPU in fp32."""
        with inference_autocast(self.device):
            out = self.model(
                input_ids=input_ids.to(self.device), attention_mask=attention_mask.to(self.device)
            )
        return out.logits.float().cpu()

    @classmethod
    def length_counter(cls, directory: Path, manifest: Manifest) -> LengthCounter:
        """Exact token counts of the whole text: a text longer than ``max_length`` is
        read in several windows, so its count is the work it costs, not one window's."""
        return tokenizer_length_counter(directory, None)

    def window_probs(self, windows: list[list[int]], batch_size: int) -> list[torch.Tensor]:
        """(T, C) tag probabilities of every window of token ids, in order (batched by
        length: :func:`aimass.models.text.window_probabilities`)."""
        pad = self.tokenizer.pad_token_id or 0
        return window_probabilities(self.forward, windows, pad, batch_size)

    def predict(self, texts: Sequence[str], *, batch_size: int = 32) -> list[dict[str, Any]]:
        """``{"entities": [{"label", "start", "end", "text", "score"}, ...]}`` per text."""
        texts = check_texts(texts)
        if not texts:
            return []
        with self._lock:
            enc = self.tokenizer(
                texts,
                truncation=True,
                max_length=self.max_length,
                stride=window_stride(self.max_length),
                return_overflowing_tokens=True,
                return_offsets_mapping=True,
            )
        probs = self.window_probs(enc["input_ids"], batch_size)
        # word index → (probabilities of its first sub-word, char start, char end), per text
        words: list[dict[int, list[Any]]] = [{} for _ in texts]
        for window, text_index in enumerate(enc["overflow_to_sample_mapping"]):
            offsets = enc["offset_mapping"][window]
            for position, word in enumerate(enc.word_ids(window)):
                if word is None:
                    continue
                start, end = offsets[position]
                found = words[text_index].get(word)
                if found is None:
                    words[text_index][word] = [probs[window][position], start, end]
                else:
                    found[1], found[2] = min(found[1], start), max(found[2], end)
        return [self._entities(text, found) for text, found in zip(texts, words, strict=True)]

    def _entities(self, text: str, words: dict[int, list[Any]]) -> dict[str, Any]:
        order = sorted(words)
        scores, tags = [], []
        for word in order:
            best = int(words[word][0].argmax())
            tags.append(self.labels[best])
            scores.append(float(words[word][0][best]))
        entities = []
        for label, first, last in entity_spans(tags):
            start, end = words[order[first]][1], words[order[last - 1]][2]
            entities.append(
                {
                    "label": label,
                    "start": start,
                    "end": end,
                    "text": text[start:end],
                    "score": sum(scores[first:last]) / (last - first),
                }
            )
        return {"entities": entities}
