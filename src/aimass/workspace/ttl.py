"""A small thread-safe cache whose entries expire: for hot read paths that must stay fresh.

Used where a request would otherwise hit the database for something that
changes rarely (the key behind an API token, the version behind an alias). A
write made through this process invalidates the entry at once; a write made by
another process is seen within ``ttl`` seconds.

A miss loads once: when an entry expires under load, the callers that miss it
together share one load (:meth:`TTLCache.get_or_load` from threads,
:meth:`TTLCache.aget_or_load` from an event loop) instead of each querying the
database: 32 concurrent requests at each expiry would otherwise cost 32 queries
and a latency spike for all of them. A load that an invalidation overtook is
returned to its callers but not cached, so a moved alias is never put back.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

__all__ = ["TTLCache"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class TTLCache(Generic[K, V]):
    """Entries live ``ttl`` seconds (``ttl <= 0`` disables caching); at most ``size`` kept.

    Args:
        ttl: Seconds an entry stays valid.
        size: Most entries; the oldest is dropped beyond it.
    """

    def __init__(self, ttl: float, *, size: int = 4096) -> None:
        self.ttl = ttl
        self.size = size
        self._items: dict[K, tuple[float, V]] = {}
        self._lock = threading.Lock()
        # Bumped by every invalidation: a load that started before one is not cached.
        self._generation = 0
        self._loading: dict[K, threading.Lock] = {}
        self._pending: dict[K, asyncio.Future[V]] = {}

    def get(self, key: K) -> V | None:
        """The live value of ``key``, or ``None``."""
        if self.ttl <= 0:
            return None
        with self._lock:
            found = self._items.get(key)
            if found is None:
                return None
            if time.monotonic() - found[0] >= self.ttl:
                del self._items[key]
                return None
            return found[1]

    def put(self, key: K, value: V, *, generation: int | None = None) -> V:
        """Store ``value`` under ``key`` and return it; not stored when ``generation``
        (from :attr:`generation` before the load) was overtaken by an invalidation."""
        if self.ttl <= 0:
            return value
        with self._lock:
            if generation is not None and generation != self._generation:
                return value
            self._items[key] = (time.monotonic(), value)
            while len(self._items) > self.size:
                del self._items[next(iter(self._items))]
        return value

    @property
    def generation(self) -> int:
        """Changes with every :meth:`invalidate`; pass it to :meth:`put` after a load."""
        with self._lock:
            return self._generation

    def get_or_load(self, key: K, load: Callable[[], V]) -> V:
        """The cached value, or ``load()`` stored for next time; threads that miss the
        same key together wait for one ``load()``."""
        if self.ttl <= 0:
            return load()
        found = self.get(key)
        if found is not None:
            return found
        with self._lock:
            gate = self._loading.setdefault(key, threading.Lock())
        with gate:
            found = self.get(key)  # loaded by the thread this one waited for
            if found is not None:
                return found
            try:
                generation = self.generation
                return self.put(key, load(), generation=generation)
            finally:
                with self._lock:
                    self._loading.pop(key, None)

    async def aget_or_load(self, key: K, load: Callable[[], Awaitable[V]]) -> V:
        """:meth:`get_or_load` for an event loop: coroutines that miss the same key
        together await one ``load()`` (which goes on if the caller that started it is
        cancelled); a failed load is not cached and fails every one of them."""
        if self.ttl <= 0:
            return await load()
        found = self.get(key)
        if found is not None:
            return found
        pending = self._pending.get(key)
        if pending is None:
            pending = asyncio.ensure_future(self._load(key, load))
            self._pending[key] = pending
            pending.add_done_callback(lambda done: self._forget_pending(key, done))
        return await asyncio.shield(pending)

    async def _load(self, key: K, load: Callable[[], Awaitable[V]]) -> V:
        generation = self.generation
        return self.put(key, await load(), generation=generation)

    def _forget_pending(self, key: K, done: asyncio.Future[V]) -> None:
        if self._pending.get(key) is done:
            del self._pending[key]
        if not done.cancelled():
            done.exception()  # retrieved: a failure nobody awaited is not logged as lost

    def invalidate(self, match: Callable[[K, V], bool] | None = None) -> None:
        """Drop every entry (or those for which ``match(key, value)`` is true); loads
        under way are not cached."""
        with self._lock:
            self._generation += 1
            if match is None:
                self._items.clear()
                return
            for key in [k for k, (_, v) in self._items.items() if match(k, v)]:
                del self._items[key]
