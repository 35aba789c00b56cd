"""Text generation: causal-LM and seq2seq bundles (and decoder bases), streamed or whole.

``generate(prompt, ...)`` returns the text with its finish reason and token
counts; ``generate_stream(prompt, ...)`` yields the text as it grows, one event
per decoded piece, then a final event — what the HTTP layer sends as
server-sent events.

Causal LMs decode through a :class:`~aimass.serving.decode_batch.DecodeScheduler`
(continuous batching): concurrent calls on one predictor share each decode step,
up to ``max_batch`` sequences, new prompts joining between steps and finished
ones leaving, while each call still streams, stops and times its own text.
Sliding-window decoders (Gemma-3) are batched as well. Encoder-decoders, models
whose cache cannot be batched (chunked or linear-attention layers) and
predictors built with ``batching=False`` run one loop per call
(:func:`aimass.models.generation.generate_ids`).

Prompts are formatted as the model was trained (``task_config.prompt_format``):
through the tokenizer's chat template (``chat``), as ``prompt + "\\n"``
(``plain``), or as they are (``none``). A prompt that does not fit the model's
context together with ``max_new_tokens`` is refused before any work is done.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Generator, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aimass.artifacts.bundle import Manifest
from aimass.errors import InvalidArgument
from aimass.explain.base import ExplainTarget, TaggedEntity, Tagger, Tagging
from aimass.models.generation import (
    SamplingParams,
    eos_ids,
    generate_ids,
    prompt_ids,
    prompt_spans,
)
from aimass.models.hf import load_pretrained, load_tokenizer
from aimass.serving.decode_batch import (
    DEFAULT_MAX_BATCH,
    DecodeScheduler,
    TokenStream,
    batchable,
)
from aimass.serving.predictor import (
    Predictor,
    check_texts,
    register_predictor,
    tagger_target,
    vocabulary_columns,
)

__all__ = ["GenerationPredictor"]

DEFAULT_NEW_TOKENS = 128


def _held_back(text: str, stops: Sequence[str]) -> int:
    """How many trailing characters could still grow into a stop string."""
    longest = 0
    for stop in stops:
        for size in range(min(len(stop) - 1, len(text)), 0, -1):
            if text.endswith(stop[:size]):
                longest = max(longest, size)
                break
    return longest


@register_predictor
class GenerationPredictor(Predictor):
    """Generates text from prompts; thread-safe (each call has its own cache rows and generator).

    Concurrent calls on a causal LM share decode steps (see the module docstring);
    seq2seq models decode one loop per call.

    Args:
        directory: The bundle directory.
        manifest: Its verified manifest.
        device: Where the model runs.
        max_batch: Most generations of a causal LM decoded together; later ones
            wait for a free row.
        batching: ``False`` runs every call in its own decode loop (the baseline
            of ``bench/generate.py --concurrency``).
    """

    tasks = ("causal-lm", "seq2seq")

    def __init__(
        self,
        directory: Path,
        manifest: Manifest,
        device: Any,
        *,
        max_batch: int = DEFAULT_MAX_BATCH,
        batching: bool = True,
    ) -> None:
        super().__init__(directory, manifest, device)
        self.tokenizer = load_tokenizer(directory)
        self.model = load_pretrained(directory, family=manifest.family).to(device).eval()
        self.encoder_decoder = bool(self.model.config.is_encoder_decoder)
        self.prompt_format = str(
            manifest.task_config.get("prompt_format") or self._default_format()
        )
        self.context = int(getattr(self.model.config, "max_position_embeddings", 2048))
        self.eos = eos_ids(self.model, self.tokenizer)
        self._lock = threading.Lock()
        # Built now (it checks max_batch); its thread starts with the first generation.
        scheduler = DecodeScheduler(self.model, device=device, max_batch=max_batch)
        self.scheduler = scheduler if batching and batchable(self.model) else None

    def _default_format(self) -> str:
        # A decoder base with a chat template is an instruct model: talk to it in turns.
        if self.encoder_decoder or not self.tokenizer.chat_template:
            return "none"
        return "chat"

    @property
    def task(self) -> str:
        return str(self.manifest.task or "causal-lm")

    def encode(self, prompt: str, params: SamplingParams) -> list[int]:
        """Prompt ids, checked against the context (the error says by how much it is over)."""
        if not isinstance(prompt, str) or not prompt.strip():
            raise InvalidArgument("the prompt must be a non-empty string")
        with self._lock:
            if self.encoder_decoder:
                ids = list(self.tokenizer(prompt)["input_ids"])
            else:
                ids = prompt_ids(self.tokenizer, prompt, self.prompt_format)
        self._check_fits(ids, params)
        return ids

    def _check_fits(self, ids: list[int], params: SamplingParams) -> None:
        """Refuse prompt ids that leave no room in the context for ``max_new_tokens``."""
        if len(ids) > self.context:
            raise InvalidArgument(
                f"the prompt has {len(ids):,} tokens, longer than the model's context of "
                f"{self.context:,} tokens; shorten the prompt",
                prompt_tokens=len(ids),
                context=self.context,
            )
        needed = params.max_new_tokens + (0 if self.encoder_decoder else len(ids))
        if needed > self.context:
            raise InvalidArgument(
                f"the prompt has {len(ids):,} tokens and max_new_tokens is "
                f"{params.max_new_tokens:,}: together over the model's context of "
                f"{self.context:,} tokens; shorten the prompt or lower max_new_tokens",
                prompt_tokens=len(ids),
                context=self.context,
            )

    def generate_stream(
        self,
        prompt: str,
        *,
        max_new_tokens: int = DEFAULT_NEW_TOKENS,
        temperature: float = 0.0,
        top_p: float = 1.0,
        top_k: int = 0,
        stop: Sequence[str] = (),
        seed: int | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Yield ``{"text": piece}`` events as text is decoded, then a final event.

        The final event is ``{"done": True, "text", "finish_reason", "usage", "timing"}``
        with ``finish_reason`` ``stop`` (end of sequence or a stop string) or
        ``length`` (``max_new_tokens`` reached). Stop strings never reach the text.
        """
        params = SamplingParams(
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            top_p=top_p,
            top_k=top_k,
            stop=tuple(stop),
            seed=seed,
        )
        ids = self.encode(prompt, params)
        started = time.perf_counter()
        first_at: float | None = None
        tokens: list[int] = []
        text, emitted, finish = "", 0, "length"
        stream = self._tokens(ids, params)
        try:
            for token in stream:
                first_at = first_at or time.perf_counter()
                if token in self.eos:
                    finish = "stop"
                    break
                tokens.append(token)
                with self._lock:
                    text = str(self.tokenizer.decode(tokens, skip_special_tokens=True))
                if text.endswith("\ufffd"):  # half of a multi-byte character: wait for the rest
                    continue
                cut = min((i for i in (text.find(s) for s in params.stop) if i >= 0), default=-1)
                if cut >= 0:
                    text, finish = text[:cut], "stop"
                    break
                safe = len(text) - _held_back(text, params.stop)
                if safe > emitted:
                    yield {"text": text[emitted:safe]}
                    emitted = safe
        finally:
            # A stop string, or a reader that left: give the batch row back now.
            stream.close()
        if len(text) > emitted:
            yield {"text": text[emitted:]}
        seconds = time.perf_counter() - started
        yield {
            "done": True,
            "text": text,
            "finish_reason": finish,
            "usage": {"prompt_tokens": len(ids), "completion_tokens": len(tokens)},
            "timing": {
                "seconds": round(seconds, 4),
                "time_to_first_token": round((first_at or time.perf_counter()) - started, 4),
                "tokens_per_second": round(len(tokens) / seconds, 2) if seconds > 0 else 0.0,
            },
        }

    def _tokens(
        self, ids: list[int], params: SamplingParams
    ) -> TokenStream | Generator[int, None, None]:
        """New token ids for ``ids``: a scheduler stream, or a loop of this call's own."""
        if self.scheduler is not None:
            return self.scheduler.submit(ids, params, eos_ids=self.eos)
        return generate_ids(self.model, ids, params, eos_ids=self.eos, device=self.device)

    def generate(self, prompt: str, **options: Any) -> dict[str, Any]:
        """The whole generation as one result: ``text``, ``finish_reason``, ``usage``, ``timing``.

        Options are those of :meth:`generate_stream`: ``max_new_tokens``,
        ``temperature`` (0 = greedy, the default), ``top_p``, ``top_k``, ``stop``, ``seed``.
        """
        final: dict[str, Any] = {}
        for event in self.generate_stream(prompt, **options):
            final = event
        return {k: v for k, v in final.items() if k != "done"}

    def warm_up(self) -> None:
        """One generated token (a whole greedy generation would cost up to 128)."""
        self.generate("warm-up", max_new_tokens=1)

    def predict(self, texts: Sequence[str], *, batch_size: int = 32) -> list[dict[str, Any]]:
        """Greedy generation for each text (``{"generated_text", "finish_reason"}``).

        With batching, up to ``max_batch`` texts decode together (one reader
        thread each: the threads only wait for tokens and decode text).
        """
        texts = check_texts(texts)
        workers = min(len(texts), self.scheduler.max_batch if self.scheduler is not None else 1)
        if workers <= 1:
            outs = [self.generate(text) for text in texts]
        else:
            with ThreadPoolExecutor(workers, thread_name_prefix="aimass-generate") as pool:
                outs = list(pool.map(self.generate, texts))
        return [{"generated_text": o["text"], "finish_reason": o["finish_reason"]} for o in outs]

    def explain_target(self) -> ExplainTarget:
        """A causal LM's generation as one "entity" of the tokens it generates (their
        mean probability: occlusion; their summed log-probabilities: integrated gradients).
        Seq2seq models are refused before this, by their task."""
        tagger = Tagger(read=self._reading, probabilities=partial(vocabulary_columns, self))
        return tagger_target(self, "causal-lm", tagger, max_length=self.context)

    def _reading(self, text: str, label: str | None) -> Tagging:
        """The prompt as the model reads it, followed by the text it generates greedily
        (as predict does) or by ``label``, the continuation asked for; one entity holds
        the probabilities of that text's tokens, each read where the model predicts it."""
        params = SamplingParams(max_new_tokens=DEFAULT_NEW_TOKENS, temperature=0.0)  # greedy
        with self._lock:
            ids, spans = prompt_spans(self.tokenizer, text, self.prompt_format)
            asked = None if label is None else self.tokenizer(label, add_special_tokens=False)
        self._check_fits(ids, params)
        if asked is None:
            stream = generate_ids(self.model, ids, params, eos_ids=self.eos, device=self.device)
            new = [token for token in stream if token not in self.eos]
        else:
            new = list(asked["input_ids"])
            if not new or len(ids) + len(new) > self.context:
                raise InvalidArgument(
                    f"the continuation to explain must be 1 to {self.context - len(ids):,} "
                    f"tokens after this prompt; {label!r} has {len(new):,}",
                    label=label,
                )
        classes = tuple(dict.fromkeys(new))
        sequence = ids + new
        with torch.inference_mode():
            batch = torch.tensor([sequence], device=self.device)
            logits = self.model(input_ids=batch).logits[0].float()
            probs = (logits[:, list(classes)] - logits.logsumexp(-1, keepdim=True)).exp().cpu()
        # Token j of the continuation is predicted at the position before it.
        tags = tuple((0, len(ids) + j - 1, classes.index(t)) for j, t in enumerate(new))
        entities = []
        if new:
            with self._lock:
                said = str(self.tokenizer.decode(new, skip_special_tokens=True))
            score = float(np.mean([float(probs[p, c]) for _k, p, c in tags]))
            entities.append(
                TaggedEntity(label=said, start=len(text), end=len(text), score=score, tags=tags)
            )
        with self._lock:
            tokens = self.tokenizer.convert_ids_to_tokens(sequence)
        return Tagging(
            windows=[sequence],
            tokens=[[str(t) for t in tokens]],
            offsets=[[*spans, *([None] * len(new))]],  # only the prompt's words are removed
            probabilities=[probs.numpy()],
            entities=entities,
            target="generated" if label is None else label,
            target_index=-1,
            classes=classes,
        )

    def info(self) -> dict[str, Any]:
        return {
            **super().info(),
            "context": self.context,
            "prompt_format": self.prompt_format,
            "batching": {
                "enabled": self.scheduler is not None,
                "max_batch": self.scheduler.max_batch if self.scheduler is not None else 1,
            },
        }
