"""Explanations of a NER tagger's entities (which words made it find each one), and
of a masked LM's fills (which words made it fill each mask with its token).

A tagger predicts a list of entities, each read off the tags of its words (a
word takes the tag predicted at its first sub-word). A masked LM's fill is read
the same way: a one-word "entity" at the mask whose "tag" is the token (only
the tokens explained are kept of the vocabulary: :attr:`Tagging.classes`); the
mask itself is not a word of the text (it is what is asked), so it is never
removed and scores 0. What is explained for an entity ``e`` with words
``w_1 … w_n`` and predicted tags ``c_1 … c_n``:

- ``occlusion``: its score as predict reports it, the mean probability of its
  words' tags ``s_e = (1/n) Σ_i p(c_i at w_i | text)``. The score of a word
  ``u`` is ``s_e − s_e(text without u)``, where a word of the entity that is
  removed counts 0 (the entity as found is gone with it): removing a one-word
  entity's own word scores the whole ``s_e``.
- ``integrated-gradients``: the sum of its words' tag logits (a language model's:
  log-probabilities, since one token's logit out of a vocabulary means little),
  attributed to the word embeddings against the [PAD] baseline of
  :mod:`aimass.explain.integrated_gradients`; the entities of a window share one
  Captum run, one example per entity.

Removing a word removes its tokens (those whose character span overlaps it;
special tokens stay) from the tagger's input ids, so the other tokens keep
their identity and every tag is found again at a known position: nothing is
re-tokenised or re-aligned. Words are the shared segmentation of
:func:`~aimass.explain.words.split_words`; only the windows that hold an
entity's tags are re-read.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from typing import Any

import numpy as np

from aimass.explain.base import (
    EntityExplanation,
    ExplainTarget,
    Explanation,
    TaggedEntity,
    Tagging,
    TokenScore,
    WordScore,
)
from aimass.explain.words import baseline_note, overlapping_words, pad_baseline, token_words
from aimass.models.text import vocabulary_batch

__all__ = ["integrate_entities", "occlude_entities", "word_positions"]


def word_positions(
    offsets: list[tuple[int, int] | None], spans: list[tuple[int, int]]
) -> dict[int, list[int]]:
    """Word index → the token positions whose character span overlaps that word.

    Args:
        offsets: One window's token spans (``None`` for special tokens).
        spans: The words' ``(start, end)`` spans, in order.
    """
    starts = [s for s, _e in spans]
    out: dict[int, list[int]] = defaultdict(list)
    for position, span in enumerate(offsets):
        if span is not None:
            for word in overlapping_words(spans, starts, *span):
                out[word].append(position)
    return out


def _chosen(
    target: ExplainTarget, text: str, label: str | None
) -> tuple[Tagging, list[TaggedEntity], dict[str, Any]]:
    """The tagger's reading of ``text`` for ``label``, its entities to explain, and what
    the explanation says of them all: the text, the target's name and index, no words
    or tokens of its own (each entity has them)."""
    assert target.tagger is not None
    tagging = target.tagger.read(text, label)
    header = {
        "text": text,
        "target": tagging.target,
        "target_index": tagging.target_index,
        "words": [],
        "tokens": [],
    }
    return tagging, tagging.entities, header


def _without(ids: list[int], positions: list[int]) -> list[int]:
    gone = set(positions)
    return [token for position, token in enumerate(ids) if position not in gone]


def _occluded(
    entity: TaggedEntity,
    base: list[np.ndarray],
    removed: dict[tuple[int, int], tuple[list[int], np.ndarray]],
    word: int,
) -> float:
    """The entity's score with ``word`` removed; a removed word of its own counts 0."""
    total = 0.0
    for k, p, c in entity.tags:
        gone = removed.get((k, word))
        if gone is None:  # the word has no token in this window: nothing changed here
            total += float(base[k][p, c])
            continue
        positions, probabilities = gone  # ascending
        before = bisect.bisect_left(positions, p)
        if before < len(positions) and positions[before] == p:
            continue
        total += float(probabilities[p - before, c])
    return total / len(entity.tags)


def occlude_entities(
    target: ExplainTarget,
    text: str,
    label: str | None,
    spans: list[tuple[int, int]],
    *,
    method: str,
) -> Explanation:
    """Leave-one-word-out scores of every entity found in ``text`` (one batched call).

    Args:
        spans: The words of ``text`` (:func:`~aimass.explain.words.split_words`).
    """
    assert target.tagger is not None
    tagging, entities, header = _chosen(target, text, label)
    windows = sorted({k for e in entities for k, _p, _c in e.tags})
    variants: list[tuple[int, int, list[int]]] = []  # (window, word, removed positions)
    for k in windows:
        for word, positions in sorted(word_positions(tagging.offsets[k], spans).items()):
            variants.append((k, word, positions))
    probabilities = target.tagger.probabilities(
        [_without(tagging.windows[k], positions) for k, _word, positions in variants],
        tagging.classes,
    )
    removed = {
        (k, word): (positions, np.asarray(probs))
        for (k, word, positions), probs in zip(variants, probabilities, strict=True)
    }
    base = [np.asarray(p) for p in tagging.probabilities]
    explained = []
    for entity in entities:
        drops = [
            entity.score - _occluded(entity, base, removed, word) for word in range(len(spans))
        ]
        explained.append(
            EntityExplanation(
                label=entity.label,
                start=entity.start,
                end=entity.end,
                text=text[entity.start : entity.end],
                words=[
                    WordScore(word=text[s:e], start=s, end=e, score=float(d))
                    for (s, e), d in zip(spans, drops, strict=True)
                ],
                tokens=[],
                details={"output_at_input": entity.score},
            )
        )
    return Explanation(
        method=method,
        output="probability",
        details={"predictions": 1 + len(variants)},
        entities=explained,
        **header,
    )


def integrate_entities(
    target: ExplainTarget,
    text: str,
    label: str | None,
    *,
    method: str,
    n_steps: int,
    internal_batch_size: int,
) -> Explanation:
    """Integrated gradients of every entity's tag logits, one Captum run per window."""
    import torch
    from captum.attr import IntegratedGradients as CaptumIG

    tagging, entities, header = _chosen(target, text, label)
    network = target.network
    assert network is not None
    model = network.model
    pad_id = network.tokenizer.pad_token_id
    # A language model's tokens are explained by their log-probabilities: a logit of one
    # token out of a vocabulary means little (softmax ignores a shift of them all).
    vocabulary = tagging.classes is not None
    members: dict[int, list[int]] = defaultdict(list)  # window → entities with a tag in it
    for i, entity in enumerate(entities):
        for k in sorted({k for k, _p, _c in entity.tags}):
            members[k].append(i)
    tokens: list[list[TokenScore]] = [[] for _ in entities]
    facts: list[dict[str, float]] = [
        {"output_at_input": 0.0, "output_at_baseline": 0.0, "convergence_delta": 0.0}
        for _ in entities
    ]
    embedding = model.get_input_embeddings()
    for k, chosen in sorted(members.items()):
        ids = torch.tensor([tagging.windows[k]], device=network.device)
        special = torch.tensor([[o is None for o in tagging.offsets[k]]], device=ids.device)
        baseline_ids = pad_baseline(ids, special, pad_id)
        # The window's tags (position, model class), and whose they are: column j of
        # ``owner`` sums entity j's tag logits, logits[:, positions, classes] @ owner.
        picks = [
            (p, c if tagging.classes is None else tagging.classes[c], j)
            for j, i in enumerate(chosen)
            for window, p, c in entities[i].tags
            if window == k
        ]
        positions = torch.tensor([p for p, _c, _j in picks], device=ids.device)
        classes = torch.tensor([c for _p, c, _j in picks], device=ids.device)
        owner = torch.zeros((len(picks), len(chosen)), device=ids.device)
        owner[torch.arange(len(picks)), torch.tensor([j for _p, _c, j in picks])] = 1.0

        def forward(
            embeds: Any,
            attention_mask: Any,
            positions: Any = positions,
            classes: Any = classes,
            owner: Any = owner,
        ) -> Any:
            logits = model(inputs_embeds=embeds, attention_mask=attention_mask).logits.float()
            if vocabulary:
                logits = logits.log_softmax(-1)
            return logits[:, positions, classes] @ owner  # (B, entities)

        mask = torch.ones_like(ids)
        with torch.no_grad():
            x = embedding(ids).detach()
            x0 = embedding(baseline_ids).detach()
            ends = forward(torch.cat([x, x0]), mask.repeat(2, 1))  # (2, entities)
        rows = len(chosen)
        points = internal_batch_size
        if vocabulary:  # (points, T, vocabulary) logits at once
            points = min(points, vocabulary_batch(ids.shape[1], len(network.tokenizer)))
        with torch.enable_grad():
            attributions, delta = CaptumIG(forward).attribute(
                x.repeat(rows, 1, 1),
                baselines=x0.repeat(rows, 1, 1),
                target=list(range(rows)),
                additional_forward_args=(mask.repeat(rows, 1),),
                n_steps=n_steps,
                internal_batch_size=max(points, rows),
                return_convergence_delta=True,
            )
        per_token = attributions.sum(dim=-1).detach().float().cpu().numpy()  # (entities, T)
        for j, i in enumerate(chosen):
            facts[i]["output_at_input"] += float(ends[0, j])
            facts[i]["output_at_baseline"] += float(ends[1, j])
            facts[i]["convergence_delta"] += float(delta.reshape(-1)[j])
            tokens[i].extend(
                TokenScore(
                    token=token,
                    start=None if span is None else span[0],
                    end=None if span is None else span[1],
                    score=float(score),
                    special=span is None,
                )
                for token, span, score in zip(
                    tagging.tokens[k], tagging.offsets[k], per_token[j], strict=True
                )
            )
    explained = [
        EntityExplanation(
            label=entity.label,
            start=entity.start,
            end=entity.end,
            text=text[entity.start : entity.end],
            words=token_words(text, tokens[i]),
            tokens=tokens[i],
            details={**facts[i], "windows": len({k for k, _p, _c in entity.tags})},
        )
        for i, entity in enumerate(entities)
    ]
    return Explanation(
        method=method,
        output="log-probability" if vocabulary else "logit",
        **header,
        details={
            "n_steps": n_steps,
            "integration": "gausslegendre",
            "baseline": baseline_note(pad_id),
        },
        entities=explained,
    )
