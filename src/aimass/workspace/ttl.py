"""A small thread-safe cache whose entries expire: for hot read paths that must stay fresh.

Used where a request would otherwise hit the database for something that
changes rarely (the key behind an API token, the version behind an alias). A
write made through this process invalidates the entry at once; a write made by
another process is seen within ``ttl`` seconds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
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

    def put(self, key: K, value: V) -> V:
        """Store ``value`` under ``key`` and return it."""
        if self.ttl <= 0:
            return value
        with self._lock:
            self._items[key] = (time.monotonic(), value)
            while len(self._items) > self.size:
                del self._items[next(iter(self._items))]
        return value

    def get_or_load(self, key: K, load: Callable[[], V]) -> V:
        """The cached value, or ``load()`` stored for next time."""
        found = self.get(key)
        return found if found is not None else self.put(key, load())

    def invalidate(self, match: Callable[[K, V], bool] | None = None) -> None:
        """Drop every entry (or those for which ``match(key, value)`` is true)."""
        with self._lock:
            if match is None:
                self._items.clear()
                return
            for key in [k for k, (_, v) in self._items.items() if match(k, v)]:
                del self._items[key]
