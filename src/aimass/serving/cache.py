"""An LRU cache of loaded predictors, keyed by bundle digest."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable

from aimass.serving.predictor import Predictor

__all__ = ["PredictorCache"]


class PredictorCache:
    """Keeps at most ``capacity`` predictors; the least recently used is evicted.

    Loading happens outside the lock (it can take seconds), so a slow load never
    blocks requests for models that are already loaded.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._items: OrderedDict[str, Predictor] = OrderedDict()
        self._lock = threading.Lock()
        self._loading: dict[str, threading.Lock] = {}

    def get(self, key: str, load: Callable[[], Predictor]) -> Predictor:
        """The predictor for ``key``, calling ``load`` at most once when missing."""
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            gate = self._loading.setdefault(key, threading.Lock())
        with gate:
            with self._lock:
                if key in self._items:
                    return self._items[key]
            predictor = load()
            with self._lock:
                self._items[key] = predictor
                self._items.move_to_end(key)
                while len(self._items) > self.capacity:
                    self._items.popitem(last=False)
                self._loading.pop(key, None)
            return predictor

    def __contains__(self, key: str) -> bool:
        with self._lock:
            return key in self._items

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def clear(self) -> None:
        """Drop every loaded predictor."""
        with self._lock:
            self._items.clear()
