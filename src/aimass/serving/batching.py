"""Micro-batching of concurrent predict calls, with a rule users can reason about.

Each input becomes an item in a *length bucket*: the smallest power of two (at
least 8) that holds its token count. A bucket is released as one batch when

1. it holds ``max_batch_size`` items (reason ``full``), or
2. its padded size (items × bucket length) reaches ``max_tokens`` (reason ``tokens``), or
3. its oldest item has waited ``max_wait`` seconds (reason ``wait``) — and a
   runner of the model is free.

Among releasable buckets the one with the oldest item goes first (first come,
first served across buckets, so no length starves). A model has ``concurrency``
runners (runner processes, or one in-process thread) and each runs one batch at
a time; items that arrive while all are busy queue up and form the next batch.
With the default ``max_wait`` of 0 a free runner takes whatever is queued at
once, so a lone request is never held back, and under load batches grow by
themselves to what arrived during the previous batch's compute; a positive
``max_wait`` holds a non-full batch back to gather more at moderate load, at
that latency cost. Short inputs are therefore never padded to the longest one in
flight, and the worst added latency is ``max_wait`` plus one batch's compute.
Every batch is reported (:class:`BatchRecord`: size, padded tokens, wait,
compute, reason) to a callback, which the server exports as Prometheus metrics.

Where the forward pass runs is the :class:`Backend`'s business:
:class:`InProcessBackend` runs it in a thread of this process,
:class:`~aimass.serving.runner.RunnerPool` in runner processes. The same back end
also computes a call's explanations and streams generations, so predict, explain
and generate share one loaded copy of the model.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

from aimass.errors import InvalidArgument, Unavailable
from aimass.serving.predictor import Predictor
from aimass.serving.wire import require_generation
from aimass.settings import Settings

__all__ = [
    "Backend",
    "BatchPolicy",
    "BatchRecord",
    "BatcherPool",
    "InProcessBackend",
    "MicroBatcher",
    "bucket_of",
]

MIN_BUCKET = 8
# Up to this many characters a request's tokens are counted on the event loop (a
# thread hop costs more than that); above it, in the batcher's counting thread, so
# a long request never stalls other requests or /healthz.
INLINE_COUNT_CHARS = 16_384
# The default token budget of a batch. On a CPU the forward pass costs about the same
# per padded token from 128-256 tokens a batch on (bench/batching.py): a larger batch
# buys no throughput there, it only makes what is queued behind it wait longer, which
# is what the p99 latency at 32 clients measures. A GPU is the opposite: it is fastest
# on batches as large as fit.
CPU_MAX_TOKENS = 256
GPU_MAX_TOKENS = 8192


def bucket_of(length: int) -> int:
    """The padded length an input of ``length`` tokens is batched at."""
    bucket = MIN_BUCKET
    while bucket < length:
        bucket *= 2
    return bucket


@dataclass(frozen=True)
class BatchPolicy:
    """When a batch is released (see the module docstring).

    Attributes:
        max_batch_size: Most inputs in one forward pass.
        max_wait: Seconds the oldest input may wait for companions.
        max_tokens: Most padded tokens (inputs × bucket length) in one batch.
    """

    max_batch_size: int = 32
    max_wait: float = 0.0
    max_tokens: int = 8192

    def __post_init__(self) -> None:
        if self.max_batch_size < 1 or self.max_tokens < 1 or self.max_wait < 0:
            raise InvalidArgument(
                "batch policy needs max_batch_size >= 1, max_tokens >= 1 and max_wait >= 0"
            )

    def limit(self, bucket: int) -> int:
        """Most items a batch of this bucket may hold."""
        return max(1, min(self.max_batch_size, self.max_tokens // bucket))

    @classmethod
    def from_settings(cls, settings: Settings) -> BatchPolicy:
        """The policy ``settings`` ask for; an unset token budget is chosen for the device
        the models run on (:data:`CPU_MAX_TOKENS` on a CPU, :data:`GPU_MAX_TOKENS` on CUDA)."""
        max_tokens = settings.batch_max_tokens
        if max_tokens is None:
            from aimass.models.device import resolve_device

            on_gpu = resolve_device(settings.device).type == "cuda"
            max_tokens = GPU_MAX_TOKENS if on_gpu else CPU_MAX_TOKENS
        return cls(
            max_batch_size=settings.batch_max_size,
            max_wait=settings.batch_max_wait_ms / 1000,
            max_tokens=max_tokens,
        )


@dataclass(frozen=True)
class BatchRecord:
    """What one batch was and why it ran."""

    model: str
    size: int
    bucket: int
    tokens: int
    wait: float
    compute: float
    reason: str


@dataclass
class _Item:
    text: str
    bucket: int
    enqueued: float
    future: asyncio.Future[dict[str, Any]]


class Backend(Protocol):
    """Where one model version's batches run."""

    concurrency: int
    """Batches it runs at once (each in its own thread of the batcher)."""
    restarts: int
    """Runner processes restarted after dying."""

    def open(self) -> None:
        """Load what :meth:`lengths` and :meth:`run` need (blocking; called once, off the loop)."""

    def lengths(self, texts: list[str]) -> list[int]:
        """Token counts, cheap enough to call on the event loop."""

    def run(self, texts: list[str]) -> list[dict[str, Any]]:
        """Results for one batch (blocking)."""

    def explain(
        self, texts: list[str], results: list[dict[str, Any]], method: str | bool | None
    ) -> list[dict[str, Any]]:
        """``results`` with an ``explanation`` each (blocking; outside the batches)."""

    def generate_stream(self, prompt: str, options: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """Generation events as decoded (blocking iterator; close it to stop early)."""

    @property
    def busy(self) -> int:
        """Explanations and generations in progress (a busy back end is not closed)."""

    def close(self) -> None:
        """Release processes and memory (blocking)."""

    def pids(self) -> list[int]:
        """Process ids of its live runner processes (none when it runs in process)."""


class InProcessBackend:
    """Batches run in a thread of this process, on a predictor from ``load``."""

    concurrency = 1
    restarts = 0

    def __init__(self, load: Callable[[], Predictor], *, name: str = "this model") -> None:
        self._load = load
        self.name = name
        self._busy = 0

    def open(self) -> None:
        """Load the predictor (and its token counter)."""
        self._load().token_lengths(["warm-up"])

    def lengths(self, texts: list[str]) -> list[int]:
        """The predictor's token counts."""
        return self._load().token_lengths(texts)

    def run(self, texts: list[str]) -> list[dict[str, Any]]:
        """One forward pass over ``texts``."""
        return self._load().predict(texts, batch_size=len(texts))

    def explain(
        self, texts: list[str], results: list[dict[str, Any]], method: str | bool | None
    ) -> list[dict[str, Any]]:
        """The predictor's explanations, in the calling thread."""
        self._busy += 1
        try:
            return self._load().with_explanations(texts, results, method)
        finally:
            self._busy -= 1

    def generate_stream(self, prompt: str, options: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """The predictor's generation, in the calling thread."""
        predictor = require_generation(self._load(), self.name)
        self._busy += 1
        try:
            yield from predictor.generate_stream(prompt, **options)
        finally:
            self._busy -= 1

    @property
    def busy(self) -> int:
        """Explanations and generations running on the predictor now."""
        return self._busy

    def close(self) -> None:
        """Nothing: the predictor cache owns the predictor."""

    def pids(self) -> list[int]:
        """None: batches run in this process."""
        return []


class MicroBatcher:
    """Batches the predict calls for one model version.

    Args:
        name: Label for records and metrics (``project/model@version``).
        run: ``texts -> results`` for one batch (runs in a batcher thread).
        lengths: ``texts -> token counts``: on the event loop for short requests, in a
            counting thread (one per batcher, so the counter is never used by two
            threads at once) above ``INLINE_COUNT_CHARS`` characters.
        policy: The release rule.
        on_batch: Called with every :class:`BatchRecord` (in the event loop).
        concurrency: Batches run at once (one per runner).
    """

    def __init__(
        self,
        name: str,
        run: Callable[[list[str]], list[dict[str, Any]]],
        *,
        lengths: Callable[[list[str]], list[int]],
        policy: BatchPolicy,
        on_batch: Callable[[BatchRecord], None] | None = None,
        concurrency: int = 1,
    ) -> None:
        if concurrency < 1:
            raise InvalidArgument(f"a batcher needs concurrency >= 1, got {concurrency}")
        self.name = name
        self.policy = policy
        self.concurrency = concurrency
        self._run = run
        self._lengths = lengths
        self._on_batch = on_batch
        self._buckets: dict[int, deque[_Item]] = {}
        self._executor = ThreadPoolExecutor(
            max_workers=concurrency, thread_name_prefix="aimass-batch"
        )
        self._counting = ThreadPoolExecutor(max_workers=1, thread_name_prefix="aimass-count")
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._running: set[asyncio.Task[None]] = set()
        self._closed = False

    @property
    def pending(self) -> int:
        """Inputs waiting for a batch."""
        return sum(len(q) for q in self._buckets.values())

    async def predict(self, texts: Sequence[str]) -> list[dict[str, Any]]:
        """Results for ``texts``, in order, computed in whatever batches the rule forms."""
        if self._closed:
            raise Unavailable(f"model {self.name} is being unloaded; retry")
        loop = asyncio.get_running_loop()
        if sum(len(text) for text in texts) <= INLINE_COUNT_CHARS:
            lengths = self._lengths(list(texts))
        else:
            lengths = await loop.run_in_executor(self._counting, self._lengths, list(texts))
            if self._closed:  # unloaded while counting: nothing would run the items
                raise Unavailable(f"model {self.name} is being unloaded; retry")
        self._ensure_running()
        now = loop.time()
        items = [
            _Item(text, bucket_of(n), now, loop.create_future())
            for text, n in zip(texts, lengths, strict=True)
        ]
        for item in items:
            self._buckets.setdefault(item.bucket, deque()).append(item)
        assert self._wakeup is not None
        self._wakeup.set()
        return list(await asyncio.gather(*(item.future for item in items)))

    def _ensure_running(self) -> None:
        if self._task is None or self._task.done():
            self._wakeup = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._schedule())

    def _ripe(self, now: float) -> tuple[int, str] | None:
        """The bucket to release now and why, or None (the rule in the module docstring)."""
        best: tuple[float, int, str] | None = None
        for bucket, queue in self._buckets.items():
            if not queue:
                continue
            limit = self.policy.limit(bucket)
            if len(queue) >= limit:
                reason = "full" if limit == self.policy.max_batch_size else "tokens"
            elif now - queue[0].enqueued >= self.policy.max_wait:
                reason = "wait"
            else:
                continue
            if best is None or queue[0].enqueued < best[0]:
                best = (queue[0].enqueued, bucket, reason)
        return None if best is None else (best[1], best[2])

    def _next_deadline(self) -> float:
        heads = [q[0].enqueued for q in self._buckets.values() if q]
        return min(heads) + self.policy.max_wait

    async def _schedule(self) -> None:
        loop = asyncio.get_running_loop()
        assert self._wakeup is not None
        while not self._closed:
            if not self.pending or len(self._running) >= self.concurrency:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            now = loop.time()
            choice = self._ripe(now)
            if choice is None:
                self._wakeup.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), self._next_deadline() - now)
                continue
            bucket, reason = choice
            queue = self._buckets[bucket]
            batch = [queue.popleft() for _ in range(min(len(queue), self.policy.limit(bucket)))]
            batch = [item for item in batch if not item.future.done()]  # callers that gave up
            if batch:
                task = loop.create_task(self._release(batch, bucket, reason, now))
                self._running.add(task)
                task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        if self._wakeup is not None:
            self._wakeup.set()  # a runner is free

    async def _release(self, batch: list[_Item], bucket: int, reason: str, now: float) -> None:
        started = time.perf_counter()
        try:
            results = await asyncio.get_running_loop().run_in_executor(
                self._executor, self._run, [item.text for item in batch]
            )
        except Exception as exc:
            for item in batch:
                if not item.future.done():
                    item.future.set_exception(exc)
            return
        compute = time.perf_counter() - started
        for item, result in zip(batch, results, strict=True):
            if not item.future.done():
                item.future.set_result(result)
        if self._on_batch is not None:
            self._on_batch(
                BatchRecord(
                    model=self.name,
                    size=len(batch),
                    bucket=bucket,
                    tokens=len(batch) * bucket,
                    wait=now - batch[0].enqueued,
                    compute=compute,
                    reason=reason,
                )
            )

    async def close(self) -> None:
        """Stop: queued inputs fail with Unavailable; batches in flight finish first."""
        self._closed = True
        for queue in self._buckets.values():
            while queue:
                item = queue.popleft()
                if not item.future.done():
                    item.future.set_exception(Unavailable(f"model {self.name} was unloaded"))
        if self._task is not None:
            self._task.cancel()
        if self._running:
            await asyncio.gather(*self._running, return_exceptions=True)
        self._executor.shutdown(wait=False)
        self._counting.shutdown(wait=False)


class BatcherPool:
    """One :class:`MicroBatcher` per loaded model version, at most ``capacity`` idle ones kept.

    Args:
        policy: The release rule for every model.
        capacity: Batchers kept; beyond it the least recently used idle one is
            closed, with its back end.
        on_batch: Passed to every batcher.
    """

    def __init__(
        self,
        policy: BatchPolicy,
        *,
        capacity: int = 8,
        on_batch: Callable[[BatchRecord], None] | None = None,
    ) -> None:
        self.policy = policy
        self.capacity = capacity
        self.on_batch = on_batch
        self._batchers: OrderedDict[str, tuple[MicroBatcher, Backend]] = OrderedDict()
        self._opening: dict[str, asyncio.Task[MicroBatcher]] = {}

    async def get(self, key: str, *, name: str, backend: Callable[[], Backend]) -> MicroBatcher:
        """The batcher for ``key`` (a bundle digest).

        The first call makes the back end with ``backend()`` and opens it in a
        worker thread, so loading a model never blocks the event loop; callers
        that arrive meanwhile wait for the same opening, and a caller that gives
        up does not stop it.
        """
        entry = self._batchers.get(key)
        if entry is not None:
            self._batchers.move_to_end(key)
            return entry[0]
        task = self._opening.get(key)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._open(key, name, backend))
            task.add_done_callback(lambda t: t.cancelled() or t.exception())  # mark retrieved
            self._opening[key] = task
        return await asyncio.shield(task)

    async def _open(self, key: str, name: str, backend: Callable[[], Backend]) -> MicroBatcher:
        try:
            made = backend()
            try:
                await asyncio.to_thread(made.open)
            except BaseException:
                await asyncio.to_thread(made.close)
                raise
            batcher = MicroBatcher(
                name,
                made.run,
                lengths=made.lengths,
                policy=self.policy,
                on_batch=self.on_batch,
                concurrency=made.concurrency,
            )
            self._batchers[key] = (batcher, made)
        finally:
            del self._opening[key]
        self._evict()
        return batcher

    def _evict(self) -> None:
        for key in list(self._batchers)[: max(0, len(self._batchers) - self.capacity)]:
            batcher, backend = self._batchers[key]
            if not batcher.pending and not backend.busy:
                del self._batchers[key]
                asyncio.get_running_loop().create_task(self._shut(batcher, backend))

    @staticmethod
    async def _shut(batcher: MicroBatcher, backend: Backend) -> None:
        await batcher.close()
        await asyncio.to_thread(backend.close)

    @property
    def pending(self) -> int:
        """Inputs waiting across all models (the queue-depth gauge)."""
        return sum(b.pending for b, _ in self._batchers.values())

    def backend_of(self, key: str) -> Backend:
        """The back end of the loaded batcher ``key`` (after :meth:`get`)."""
        return self._batchers[key][1]

    def backends(self) -> dict[str, Backend]:
        """The back end of each loaded model, by batcher name (``project/model@version``)."""
        return {batcher.name: backend for batcher, backend in self._batchers.values()}

    async def close(self) -> None:
        """Close every batcher and its back end."""
        entries = list(self._batchers.values())
        self._batchers.clear()
        for batcher, backend in entries:
            await self._shut(batcher, backend)
