"""Continuous batching: concurrent generations of one causal LM decode together.

A :class:`DecodeScheduler` owns the model's forward passes in one background
thread (started on the first request, ended when nothing is left to do). Each
caller submits its prompt ids and :class:`SamplingParams` and reads its tokens
from its own :class:`TokenStream`, so streaming, stop strings and timing stay
per request. Between decode steps the scheduler lets new prompts join and
finished or abandoned ones leave::

    pending ──prefill alone (1, P)──▶ first token; cache left-padded into the batch
    batch (B rows): last tokens (B, 1) + attention mask (B, L+1) + positions (B, 1)
        ──one forward──▶ logits (B, V), cache (B, H, L+1, D)
        each row picks its token with its own sampling generator; rows that ended leave

The batch cache is each sequence's own key/value cache, left-padded with zeros to
the longest one (the attention mask hides the padding, and each row's position
ids count only its own tokens), so every row computes what it would alone:
greedy output equals :func:`aimass.models.generation.generate_ids` token for
token. A prompt is prefilled alone (batch 1, no padding) before it joins, which
also makes its first token exactly the unbatched one.

Sliding-window layers (Gemma-3 has five for each full-attention one, Mistral
only those) are batched too: every layer of the batch cache keeps every token,
and the model's sliding-window mask limits what each layer reads. Padding only
ever sits to the left of a row's tokens, so the distance between two columns is
the distance between the row's own tokens and the window is the one the model
was trained with. A sliding layer's cache then grows with the sequence as a full
layer's does, instead of stopping at the window (``max_new_tokens`` bounds it).

Chunked-attention layers (Llama-4: windows that start at fixed positions, which
left padding would shift), linear-attention layers and encoder-decoder models
keep the one-generation-per-call loop (:func:`batchable`).
"""

from __future__ import annotations

import atexit
import queue
import threading
import weakref
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from aimass.errors import InvalidArgument, Unavailable
from aimass.models.generation import (
    SamplingParams,
    cache_kwarg,
    cache_of,
    keeps_logits,
    pick_token,
    sampling_generator,
)

if TYPE_CHECKING:
    from transformers import PreTrainedModel

__all__ = [
    "DEFAULT_MAX_BATCH",
    "DecodeBatch",
    "DecodeRequest",
    "DecodeScheduler",
    "TokenStream",
    "batchable",
]

DEFAULT_MAX_BATCH = 8

_END = object()  # a stream's last item: the generation ended normally


# Attention layers whose key/value cache can be left-padded: full attention, and a
# window that slides with the query (a distance between tokens, which padding on
# the left does not change).
_BATCHABLE_LAYER_TYPES = frozenset({"full_attention", "sliding_attention"})


def batchable(model: PreTrainedModel) -> bool:
    """Whether ``model``'s key/value cache can be left-padded and batched row by row."""
    from transformers import DynamicCache
    from transformers.cache_utils import (
        DynamicLayer,
        DynamicSlidingWindowLayer,
        get_layer_types_and_kwargs,
    )

    if model.config.is_encoder_decoder:
        return False
    try:
        cache = DynamicCache(config=model.config)
        layer_types, _ = get_layer_types_and_kwargs(model.config.get_text_config(decoder=True))
    except Exception:  # a config the cache cannot read: keep the per-call loop
        return False
    kinds = (DynamicLayer, DynamicSlidingWindowLayer)
    return (
        bool(cache.layers)
        and set(layer_types) <= _BATCHABLE_LAYER_TYPES
        and all(type(layer) in kinds for layer in cache.layers)
    )


@dataclass(eq=False)
class DecodeRequest:
    """One generation in the scheduler: its prompt, its sampling state, its outbox."""

    ids: list[int]
    params: SamplingParams
    eos: frozenset[int]
    generator: torch.Generator | None
    out: queue.SimpleQueue[Any] = field(default_factory=queue.SimpleQueue)
    cancelled: bool = False
    produced: int = 0
    last: int = 0  # the newest token (the next step's input)
    length: int = 0  # tokens in this row's cache (the next token's position id)

    @classmethod
    def new(
        cls, ids: Sequence[int], params: SamplingParams, *, eos_ids: Sequence[int]
    ) -> DecodeRequest:
        """A request for ``ids`` with its own sampling generator (seeded by ``params``)."""
        return cls(
            ids=list(ids),
            params=params,
            eos=frozenset(eos_ids),
            generator=sampling_generator(params),
        )

    def emit(self, token: int) -> bool:
        """Hand ``token`` to the reader; True when the generation has ended with it."""
        self.out.put(token)
        self.produced += 1
        self.last = token
        ended = token in self.eos or self.produced >= self.params.max_new_tokens
        if ended:
            self.out.put(_END)
        return ended

    def fail(self, exc: BaseException) -> None:
        """End the reader's stream with ``exc``."""
        self.out.put(exc)


class TokenStream:
    """The token ids of one submitted generation, as the scheduler decodes them.

    Iterating blocks until the next token; an error in the model is raised here.
    :meth:`close` (or leaving the ``for`` loop of a closed generator around it)
    gives the sequence's batch slot back at the next decode step.
    """

    def __init__(self, request: DecodeRequest) -> None:
        self._request = request
        self._ended = False

    def __iter__(self) -> Iterator[int]:
        return self

    def __next__(self) -> int:
        if self._ended:
            raise StopIteration
        item = self._request.out.get()
        if item is _END:
            self._ended = True
            raise StopIteration
        if isinstance(item, BaseException):
            self._ended = True
            raise item
        return int(item)

    @property
    def produced(self) -> int:
        """Tokens decoded for this stream so far (read or not)."""
        return self._request.produced

    def close(self) -> None:
        """Stop the generation: the scheduler drops it before its next forward pass."""
        self._request.cancelled = True
        self._ended = True


class DecodeBatch:
    """The active sequences and their left-padded key/value cache; driven by one thread.

    Synchronous: :meth:`add` prefills a request and lets it join, :meth:`step`
    decodes one token for every row. The scheduler calls both from its thread;
    tests call them directly to place joins at exact steps.
    """

    def __init__(self, model: PreTrainedModel, *, device: Any) -> None:
        self.model = model
        self.device = device
        self.rows: list[DecodeRequest] = []
        self._layers: list[tuple[torch.Tensor, torch.Tensor]] = []  # (B, H, L, D) per layer
        self._cache: Any = None
        self._mask: torch.Tensor | None = None  # (B, L): 1 for a real token, 0 for padding
        self._cache_name = cache_kwarg(model)
        self._prefill_kwargs = {"logits_to_keep": 1} if keeps_logits(model) else {}

    @property
    def size(self) -> int:
        """Sequences decoding now."""
        return len(self.rows)

    @torch.inference_mode()
    def add(self, request: DecodeRequest) -> None:
        """Prefill ``request`` alone, emit its first token, and let it join (unless it ended).

        An error in the prefill ends this request only.
        """
        if request.cancelled:
            return
        try:
            ids = torch.tensor([request.ids], dtype=torch.long, device=self.device)  # (1, P)
            out = self.model(
                input_ids=ids,
                use_cache=True,
                **{self._cache_name: _full_cache()},
                **self._prefill_kwargs,
            )
            token = pick_token(out.logits[0, -1], request.params, request.generator)
        except Exception as exc:
            request.fail(exc)
            return
        request.length = len(request.ids)
        if request.emit(token):
            return
        layers = [(layer.keys, layer.values) for layer in cache_of(out).layers]
        self._join(request, layers)

    @torch.inference_mode()
    def step(self) -> None:
        """One decode step for every row; rows that end or were cancelled leave.

        An error in the forward pass ends every row with it (they shared the pass).
        """
        self._leave([r for r in self.rows if r.cancelled])
        if not self.rows:
            return
        assert self._mask is not None
        try:
            logits = self._forward()
            ended = [
                r
                for i, r in enumerate(self.rows)
                if r.emit(pick_token(logits[i], r.params, r.generator))
            ]
        except Exception as exc:
            self.fail(exc)
            return
        self._leave(ended)

    def fail(self, exc: BaseException) -> None:
        """End every row with ``exc`` and empty the batch."""
        for request in self.rows:
            request.fail(exc)
        self._reset()

    def _forward(self) -> torch.Tensor:
        """The rows' last tokens through the model against the batch cache: logits (B, V)."""
        assert self._mask is not None
        ids = torch.tensor([[r.last] for r in self.rows], dtype=torch.long, device=self.device)
        positions = torch.tensor([[r.length] for r in self.rows], device=self.device)  # (B, 1)
        mask = torch.cat([self._mask, self._mask.new_ones(len(self.rows), 1)], dim=1)
        out = self.model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=positions,
            use_cache=True,
            **{self._cache_name: self._cache},
        )
        self._cache = cache_of(out)
        self._mask = mask
        for request in self.rows:
            request.length += 1
        return out.logits[:, -1]

    def _join(
        self, request: DecodeRequest, layers: list[tuple[torch.Tensor, torch.Tensor]]
    ) -> None:
        """Add one prefilled sequence (its per-layer (1, H, P, D) keys/values) as a new row."""
        if not self.rows:
            merged = layers
            mask = torch.ones(1, request.length, dtype=torch.long, device=self.device)
        else:
            assert self._mask is not None
            width = max(self._mask.shape[1], request.length)
            merged = [
                (_cat_rows(bk, k, width), _cat_rows(bv, v, width))
                for (bk, bv), (k, v) in zip(self._current_layers(), layers, strict=True)
            ]
            own = torch.ones(1, request.length, dtype=torch.long, device=self.device)
            mask = torch.cat([_left_pad(self._mask, width), _left_pad(own, width)])
        self.rows.append(request)
        self._install(merged, mask)

    def _leave(self, gone: Sequence[DecodeRequest]) -> None:
        """Drop ``gone`` rows, then the padding columns no remaining row needs."""
        if not gone:
            return
        keep = [i for i, r in enumerate(self.rows) if r not in gone]
        if not keep:
            self._reset()
            return
        assert self._mask is not None
        mask = self._mask[keep]
        # Columns that are padding in every remaining row (the left-over of a long row).
        lead = int((mask.sum(0) > 0).nonzero()[0])
        index = torch.tensor(keep, device=self.device)
        layers = [
            (k.index_select(0, index)[..., lead:, :], v.index_select(0, index)[..., lead:, :])
            for k, v in self._current_layers()
        ]
        self.rows = [self.rows[i] for i in keep]
        self._install(layers, mask[:, lead:])

    def _current_layers(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return [(layer.keys, layer.values) for layer in self._cache.layers]

    def _install(self, layers: list[tuple[torch.Tensor, torch.Tensor]], mask: torch.Tensor) -> None:
        from transformers import DynamicCache

        self._cache = DynamicCache(ddp_cache_data=layers)
        self._mask = mask

    def _reset(self) -> None:
        self.rows, self._cache, self._mask = [], None, None


def _full_cache() -> Any:
    """An empty cache whose every layer keeps every token.

    A sliding-window layer's own cache keeps only its window, so a prefilled row's
    layers would have different lengths; with every token kept, every layer of
    the batch has the same columns and the model's mask applies the window.
    """
    from transformers import DynamicCache

    return DynamicCache()


def _left_pad(t: torch.Tensor, width: int) -> torch.Tensor:
    """``t`` with zeros before its sequence axis (dim 2 of (B, H, L, D), dim 1 of (B, L))."""
    axis = 2 if t.dim() == 4 else 1
    missing = width - t.shape[axis]
    if missing == 0:
        return t
    shape = list(t.shape)
    shape[axis] = missing
    return torch.cat([t.new_zeros(shape), t], dim=axis)


def _cat_rows(batch: torch.Tensor, new: torch.Tensor, width: int) -> torch.Tensor:
    """Stack (B, H, L, D) and (1, H, P, D) into (B+1, H, width, D), both left-padded."""
    return torch.cat([_left_pad(batch, width), _left_pad(new, width)])


class DecodeScheduler:
    """Decodes every submitted generation of one causal LM in a shared batch.

    Thread-safe: :meth:`submit` may be called from any thread. At most
    ``max_batch`` sequences decode together; later ones wait (first come, first
    served) and join as soon as a row leaves.

    Args:
        model: A causal LM for which :func:`batchable` is true.
        device: Where the model's inputs go.
        max_batch: Most sequences in one decode step.
    """

    def __init__(
        self, model: PreTrainedModel, *, device: Any, max_batch: int = DEFAULT_MAX_BATCH
    ) -> None:
        if max_batch < 1:
            raise InvalidArgument(
                f"max_batch must be at least 1, got {max_batch}; use 1 to decode one at a time",
                field="max_batch",
            )
        self.max_batch = max_batch
        self.batch = DecodeBatch(model, device=device)
        self._pending: deque[DecodeRequest] = deque()
        self._lock = threading.Lock()
        self._running = False
        self._closed = False
        self._thread: threading.Thread | None = None
        _SCHEDULERS.add(self)

    def submit(
        self, ids: Sequence[int], params: SamplingParams, *, eos_ids: Sequence[int]
    ) -> TokenStream:
        """Queue one generation; its tokens arrive on the returned stream."""
        request = DecodeRequest.new(ids, params, eos_ids=eos_ids)
        with self._lock:
            if self._closed:
                raise Unavailable("the model's decode loop has stopped (the process is exiting)")
            self._pending.append(request)
            if not self._running:
                self._running = True
                self._thread = threading.Thread(target=self._run, name="aimass-decode", daemon=True)
                self._thread.start()
        return TokenStream(request)

    def close(self, timeout: float = 30.0) -> None:
        """Stop after the current decode step and wait for the loop's thread to end.

        Called at interpreter exit: a daemon thread still inside a forward pass (torch
        releases the GIL there) while the process tears down torch's thread pool
        aborts the process ("terminate called without an active exception") — a
        script that streamed a generation to its end and exited hit it about one run
        in six. Generations still decoding end with ``Unavailable``.
        """
        with self._lock:
            self._closed = True
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    @property
    def waiting(self) -> int:
        """Generations submitted that have not joined the batch yet."""
        return len(self._pending)

    def _run(self) -> None:
        """The scheduler thread: admit, step, until nothing is left (then it ends)."""
        try:
            while self._admit():
                self.batch.step()
        except BaseException as exc:  # a bug here must not leave readers blocked forever
            with self._lock:
                self._running = False
                pending, self._pending = list(self._pending), deque()
            for request in pending:
                request.fail(exc)
            self.batch.fail(exc)
            raise

    def _admit(self) -> bool:
        """Let waiting generations join while there are free rows; False when all is done."""
        with self._lock:
            if self._closed:
                self._running = False
                stopped = Unavailable("the model's decode loop stopped: the process is exiting")
                for request in self._pending:
                    request.fail(stopped)
                self._pending.clear()
                self.batch.fail(stopped)
                return False
            self._pending = deque(r for r in self._pending if not r.cancelled)
            if not self._pending and not self.batch.size:
                self._running = False
                return False
            free = self.max_batch - self.batch.size
            joining = [self._pending.popleft() for _ in range(min(free, len(self._pending)))]
        for request in joining:
            self.batch.add(request)
        return True


# Every scheduler of this process, closed at exit (see DecodeScheduler.close).
_SCHEDULERS: weakref.WeakSet[DecodeScheduler] = weakref.WeakSet()


@atexit.register
def _close_schedulers() -> None:
    for scheduler in list(_SCHEDULERS):
        scheduler.close()
