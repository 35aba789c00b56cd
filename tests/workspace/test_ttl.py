"""The TTL cache: entries expire, writes invalidate, a zero TTL caches nothing."""

import time

from aimass.workspace.ttl import TTLCache


def test_entries_expire():
    cache = TTLCache(0.05)
    cache.put("k", 1)
    assert cache.get("k") == 1
    time.sleep(0.06)
    assert cache.get("k") is None


def test_invalidate_all_or_matching():
    cache = TTLCache(60)
    for key in ("a1", "a2", "b1"):
        cache.put(key, key)
    cache.invalidate(lambda key, _value: key.startswith("a"))
    assert (cache.get("a1"), cache.get("b1")) == (None, "b1")
    cache.invalidate()
    assert cache.get("b1") is None


def test_zero_ttl_disables_caching():
    cache = TTLCache(0)
    loads = []
    for _ in range(3):
        cache.get_or_load("k", lambda: loads.append(1) or 7)
    assert len(loads) == 3


def test_size_is_bounded():
    cache = TTLCache(60, size=2)
    for i in range(5):
        cache.put(i, i)
    assert [cache.get(i) for i in range(5)] == [None, None, None, 3, 4]
