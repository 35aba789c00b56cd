"""Occlusion, leave one word out: the model-agnostic method.

The score of word ``w`` is how much the target's output drops when ``w`` is
deleted from the text::

    score_w = f(text)[target] - f(text without w)[target]

with ``f`` the class probabilities (classification) or the predicted value
(regression). It needs nothing but the model's scoring function — one extra
prediction per word, batched — so it explains any model, including black boxes.
A NER tagger's entities are explained the same way, each by its mean tag
probability (:mod:`aimass.explain.entities`).
"""

from __future__ import annotations

import numpy as np

from aimass.errors import InvalidArgument
from aimass.explain.base import (
    Explainer,
    ExplainTarget,
    Explanation,
    WordScore,
    register_explainer,
    resolve_target,
)
from aimass.explain.entities import occlude_entities
from aimass.explain.words import split_words

__all__ = ["Occlusion", "without_span"]

MAX_WORDS = 2048


def without_span(text: str, start: int, end: int) -> str:
    """``text`` with ``text[start:end]`` removed (one space kept between its neighbours)."""
    left, right = text[:start].rstrip(), text[end:].lstrip()
    return f"{left} {right}" if left and right else left + right


class Occlusion(Explainer):
    """Drop in the target's probability (or value) when each word is removed."""

    name = "occlusion"
    description = "leave-one-word-out: drop in the target's probability (or value) per word"
    needs_network = False
    tasks = ("classification", "regression", "token-classification", "masked-lm", "causal-lm")

    def explain_one(self, target: ExplainTarget, text: str, label: str | None) -> Explanation:
        """One batched prediction of the text and its W one-word-shorter variants."""
        spans = split_words(text)
        if len(spans) > MAX_WORDS:
            raise InvalidArgument(
                f"occlusion needs one prediction per word; this text has {len(spans):,} words "
                f"(limit {MAX_WORDS:,}); explain a shorter text or use 'integrated-gradients'"
            )
        if target.tagger is not None:
            return occlude_entities(target, text, label, spans, method=self.name)
        assert target.score is not None
        variants = [text] + [without_span(text, s, e) for s, e in spans]
        scores = np.asarray(target.score(variants), dtype=np.float64)  # (1 + W, C)
        index, name = resolve_target(target, label, scores[0])
        drops = scores[0, index] - scores[1:, index]
        return Explanation(
            method=self.name,
            text=text,
            target=name,
            target_index=index,
            output="value" if target.task == "regression" else "probability",
            words=[
                WordScore(word=text[s:e], start=s, end=e, score=float(d))
                for (s, e), d in zip(spans, drops, strict=True)
            ],
            tokens=[],
            details={"output_at_input": float(scores[0, index]), "predictions": len(variants)},
        )


register_explainer(Occlusion())
