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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aimass.artifacts.bundle import Manifest
from aimass.errors import InvalidArgument
from aimass.explain.base import ExplainTarget, TaggedEntity, Tagger, Tagging
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
    tagger_target,
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
        enc, probs = self._read(texts, batch_size)
        return [
            {
                "entities": [
                    {
                        "label": e.label,
                        "start": e.start,
                        "end": e.end,
                        "text": text[e.start : e.end],
                        "score": e.score,
                    }
                    for e in self._entities(words)
                ]
            }
            for text, words in zip(texts, self._words(enc, probs, len(texts)), strict=True)
        ]

    def _read(self, texts: Sequence[str], batch_size: int) -> tuple[Any, list[torch.Tensor]]:
        """The texts' windows (a tokenizer encoding with offsets) and their tag probabilities."""
        with self._lock:
            enc = self.tokenizer(
                list(texts),
                truncation=True,
                max_length=self.max_length,
                stride=window_stride(self.max_length),
                return_overflowing_tokens=True,
                return_offsets_mapping=True,
            )
        return enc, self.window_probs(enc["input_ids"], batch_size)

    def _words(self, enc: Any, probs: list[torch.Tensor], count: int) -> list[dict[int, _Word]]:
        """Per text: word index → its tag probabilities (those of its first sub-word in
        the first window holding it), where they were read, and its character span."""
        words: list[dict[int, _Word]] = [{} for _ in range(count)]
        for window, text_index in enumerate(enc["overflow_to_sample_mapping"]):
            offsets = enc["offset_mapping"][window]
            for position, word in enumerate(enc.word_ids(window)):
                if word is None:
                    continue
                start, end = offsets[position]
                found = words[text_index].get(word)
                if found is None:
                    words[text_index][word] = _Word(
                        probs[window][position], window, position, start, end
                    )
                else:
                    found.start, found.end = min(found.start, start), max(found.end, end)
        return words

    def _entities(self, words: dict[int, _Word]) -> list[TaggedEntity]:
        """The entities read off the words' best tags (the F1 score's chunking)."""
        order = [words[w] for w in sorted(words)]
        best = [int(word.probabilities.argmax()) for word in order]
        entities = []
        for label, first, last in entity_spans([self.labels[b] for b in best]):
            span = range(first, last)
            entities.append(
                TaggedEntity(
                    label=label,
                    start=order[first].start,
                    end=order[last - 1].end,
                    score=sum(float(order[i].probabilities[best[i]]) for i in span) / len(span),
                    tags=tuple((order[i].window, order[i].position, best[i]) for i in span),
                )
            )
        return entities

    @property
    def _types(self) -> tuple[str, ...]:
        """The entity types, in the order the tags name them (the F1 score's chunking)."""
        parts = [tag.partition("-") for tag in self.labels]
        kinds = (kind for prefix, _, kind in parts if prefix in ("B", "I") and kind)
        return tuple(dict.fromkeys(kinds))

    def explain_target(self) -> ExplainTarget:
        """The entities' reading for occlusion; the network for integrated gradients."""
        tagger = Tagger(read=self._tagging, probabilities=self._probabilities)
        return tagger_target(
            self, "token-classification", tagger, max_length=self.max_length, labels=self._types
        )

    def _tagging(self, text: str, label: str | None) -> Tagging:
        """One text as predict reads it, and its entities of type ``label`` (every type:
        ``None``), for the explainers."""
        types = self._types
        if label is not None and label not in types:
            raise InvalidArgument(
                f"entity type {label!r} is not one the model predicts: {', '.join(types)}",
                label=label,
            )
        enc, probs = self._read([text], 1)
        (words,) = self._words(enc, probs, 1)
        return Tagging(
            windows=list(enc["input_ids"]),
            tokens=[enc.tokens(k) for k in range(len(probs))],
            offsets=[
                [
                    None if word is None else (int(s), int(e))
                    for word, (s, e) in zip(enc.word_ids(k), enc["offset_mapping"][k], strict=True)
                ]
                for k in range(len(probs))
            ],
            probabilities=[p.numpy() for p in probs],
            entities=[e for e in self._entities(words) if label is None or e.label == label],
            target="entities" if label is None else label,
            target_index=-1 if label is None else types.index(label),
        )

    def _probabilities(
        self, windows: list[list[int]], classes: tuple[int, ...] | None
    ) -> list[np.ndarray]:
        assert classes is None  # a tagger's reading keeps every tag
        return [p.numpy() for p in self.window_probs(windows, 32)]


@dataclass
class _Word:
    """One word of a text as the tagger read it."""

    probabilities: torch.Tensor
    window: int
    position: int
    start: int
    end: int
