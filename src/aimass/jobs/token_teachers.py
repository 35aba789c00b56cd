"""Teachers that speak at every token position: a tagger and a language model.

Both are handed to the student's task as functions of token ids, not as numbers
computed beforehand per row: a tagger's tag probabilities of the student's own
windows (:mod:`aimass.training.token_distill` labels them once), a language
model's logits of every batch, causal or masked (:mod:`aimass.training.lm_distill`
runs it beside the student). Either way the student must read text with the teacher's
tokenizer, checked here before any work.

A generating teacher (seq2seq, or a causal LM on prompt/response pairs) can also
write the student's targets outright, once before it trains: sequence-level
distillation (:func:`teacher_outputs`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aimass.errors import InvalidArgument

if TYPE_CHECKING:
    from aimass.jobs.distill import Teacher
    from aimass.training.callbacks import CallbackList

__all__ = [
    "TEACHER_BATCH",
    "TEACHER_CHUNK",
    "lm_token_logits",
    "reloading_tagger",
    "tagger_windows",
    "teacher_outputs",
]

# Rows the teacher scores per call while it labels the data (a progress tick each).
TEACHER_CHUNK = 256
TEACHER_BATCH = 64  # the student's INFERENCE_BATCH: both are timed at the same batch
# Beams × new tokens a generating teacher's decoding batch holds (its rows: this ÷ both).
DECODE_TOKENS = 16_384


def tagger_windows(
    teacher: Teacher, predictor: Any, classes: list[str], student_dir: Path, callbacks: CallbackList
) -> Callable[[list[list[int]]], list[Any]]:
    """A tagger teacher as the student's task calls it: windows of token ids → each one's
    (T, C) tag probabilities in the student's tag order, a progress tick per chunk.

    Refuses a student whose tokenizer is not the teacher's (the windows would be read
    differently) or whose tags are not the teacher's.
    """
    _same_tokenizer(teacher, predictor, student_dir, "a tagger is distilled position by position")
    labels = [str(label) for label in predictor.labels]
    if sorted(labels) != sorted(classes):
        raise InvalidArgument(
            f"teacher {teacher.ref} tags with {labels} but the student's dataset has the "
            f"tags {classes}: a student learns the teacher's distribution tag by tag, so "
            "both need the same entity types; distil from a teacher trained on these types",
            field="teacher",
        )
    columns = [labels.index(c) for c in classes]  # teacher columns in the student's order

    def windows(ids: list[list[int]]) -> list[Any]:
        callbacks.on_phase(f"teacher {teacher.ref} tagging", len(ids))
        said: list[Any] = []
        for start in range(0, len(ids), TEACHER_CHUNK):
            part = ids[start : start + TEACHER_CHUNK]
            said.extend(p[:, columns].numpy() for p in predictor.window_probs(part, TEACHER_BATCH))
            callbacks.on_phase_advance(len(part))
        return said

    return windows


def lm_token_logits(
    teacher: Teacher, predictor: Any, student_dir: Path
) -> Callable[[dict[str, Any]], Any]:
    """A language-model teacher as the student's task calls it on every batch: what the
    student reads of the batch (ids and masks, a seq2seq batch's decoder ids) → its
    logits (B, T, V).

    Refuses a student whose tokenizer or vocabulary is not the teacher's (the two
    distributions would be over different words).
    """
    import torch

    from aimass.models.hf import read_config

    _same_tokenizer(
        teacher,
        predictor,
        student_dir,
        "a language model is distilled word by word over the teacher's vocabulary",
    )
    sizes = int(read_config(student_dir).vocab_size), int(predictor.model.config.vocab_size)
    if sizes[0] != sizes[1]:
        raise InvalidArgument(
            f"teacher {teacher.ref} predicts over {sizes[1]} token ids but the student's "
            f"base over {sizes[0]}: both distributions must cover the same ids; use a "
            "student base cut from the teacher's own ('aimass bases shrink')",
            field="teacher",
        )
    model = predictor.model

    def token_logits(inputs: dict[str, Any]) -> Any:
        with torch.inference_mode():
            return model(**{k: v.to(model.device) for k, v in inputs.items()}).logits

    return token_logits


def teacher_outputs(
    teacher: Teacher,
    predictor: Any,
    texts: list[str],
    *,
    beams: int,
    max_length: int,
    callbacks: CallbackList,
) -> list[str]:
    """What a generating teacher writes for each source or prompt in ``texts``: beam
    search of width ``beams`` (1: greedy, as it is served), inputs cut to
    ``max_length`` tokens and outputs to ``max_length`` new ones, as the student reads
    its pairs. A decoder reads each prompt in its served prompt format
    (``predictor.prompt_format``), padded on the left, and writes no further than its
    context; generation ends at the tokens that end it when served.

    The model's own generation settings (a repetition ban, a length penalty) are
    overridden: the student learns the teacher's most likely outputs, as decoding at
    the served defaults gives them. Inputs of similar length share a batch.
    """
    import torch

    from aimass.training.examples import padding_id

    model, tokenizer = predictor.model, predictor.tokenizer
    callbacks.on_phase(f"teacher {teacher.ref} decoding (beam {beams})", len(texts))
    said = [""] * len(texts)
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    batch_size = max(1, DECODE_TOKENS // (beams * max_length))
    for start in range(0, len(order), batch_size):
        part = order[start : start + batch_size]
        batch = _generation_batch(predictor, [texts[i] for i in part], max_length)
        width = 0 if predictor.encoder_decoder else batch["input_ids"].shape[1]
        with torch.inference_mode():
            ids = model.generate(
                **{k: v.to(model.device) for k, v in batch.items()},
                num_beams=beams,
                do_sample=False,
                max_new_tokens=max(1, min(max_length, predictor.context - width)),
                eos_token_id=list(predictor.eos) or None,
                min_length=0,
                no_repeat_ngram_size=0,
                repetition_penalty=1.0,
                length_penalty=1.0,
                early_stopping=beams > 1,
                pad_token_id=padding_id(tokenizer),
            )
        ids = ids[:, width:]  # a decoder's output starts with its prompt
        written = tokenizer.batch_decode(ids, skip_special_tokens=True)
        for i, text in zip(part, written, strict=True):
            said[i] = text
        callbacks.on_phase_advance(len(part))
    return said


def _generation_batch(predictor: Any, texts: list[str], max_length: int) -> dict[str, Any]:
    """``input_ids`` and ``attention_mask`` of ``texts`` as the teacher reads them: an
    encoder's sources padded on the right; a decoder's prompts in its prompt format,
    their last ``max_length`` tokens, padded on the left so that every row's next token
    follows its own last one."""
    import torch

    from aimass.models.generation import prompt_ids
    from aimass.training.examples import padding_id

    tokenizer = predictor.tokenizer
    if predictor.encoder_decoder:
        return dict(
            tokenizer(
                texts, truncation=True, max_length=max_length, padding=True, return_tensors="pt"
            )
        )
    keep = max(1, min(max_length, predictor.context - 1))  # room for one new token
    rows = [prompt_ids(tokenizer, t, predictor.prompt_format)[-keep:] for t in texts]
    width = max(len(r) for r in rows)
    pad = padding_id(tokenizer)
    ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows])
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
    return {"input_ids": ids, "attention_mask": mask}


def _same_tokenizer(teacher: Teacher, predictor: Any, student_dir: Path, why: str) -> None:
    """Refuse a student base whose tokenizer is not the teacher's, saying ``why`` it must be."""
    from aimass.models.hf import load_tokenizer

    if load_tokenizer(student_dir).get_vocab() != predictor.tokenizer.get_vocab():
        raise InvalidArgument(
            f"teacher {teacher.ref} reads text with another tokenizer than the student's "
            f"base: {why}, so the student needs the teacher's tokenizer; use the teacher's "
            "own base, or one cut from it with 'aimass bases shrink'",
            field="teacher",
        )


def reloading_tagger(load: Callable[[], Any]) -> Callable[[list[str]], Any]:
    """A tagger teacher timed as its student is: raw texts → windows read as served →
    tag probabilities, batches of 64 sorted by length; ``load`` (its predictor) is
    called on the first call, so the teacher need not stay in memory until then."""
    from aimass.models.text import text_windows

    loaded = functools.cache(load)

    def tag(texts: list[str]) -> Any:
        predictor = loaded()
        found = text_windows(predictor.tokenizer, texts, predictor.max_length)
        return predictor.window_probs([ids for _, ids, _ in found], TEACHER_BATCH)

    return tag
