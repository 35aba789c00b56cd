"""The TTL cache: entries expire, writes invalidate, a zero TTL caches nothing, and
callers that miss together share one load."""

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

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


def test_threads_that_miss_together_share_one_load():
    cache = TTLCache(60)
    loads = []
    started = threading.Event()

    def load():
        loads.append(1)
        started.set()
        time.sleep(0.1)  # the other threads arrive while this load runs
        return "v"

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: cache.get_or_load("k", load), range(8)))
    assert results == ["v"] * 8
    assert len(loads) == 1


def test_coroutines_that_miss_together_share_one_load():
    cache = TTLCache(60)
    loads = []

    async def load():
        loads.append(1)
        await asyncio.sleep(0.05)
        return "v"

    async def main():
        return await asyncio.gather(*(cache.aget_or_load("k", load) for _ in range(32)))

    assert asyncio.run(main()) == ["v"] * 32
    assert len(loads) == 1
    assert cache.get("k") == "v"


def test_a_failed_load_fails_every_waiter_and_is_not_cached():
    cache = TTLCache(60)
    calls = []

    async def load():
        calls.append(1)
        await asyncio.sleep(0.02)
        raise KeyError("gone")

    async def main():
        return await asyncio.gather(
            *(cache.aget_or_load("k", load) for _ in range(4)), return_exceptions=True
        )

    outcomes = asyncio.run(main())
    assert all(isinstance(o, KeyError) for o in outcomes) and len(calls) == 1
    assert cache.get("k") is None


def test_the_caller_that_started_a_load_may_go_away():
    cache = TTLCache(60)

    async def load():
        await asyncio.sleep(0.05)
        return "v"

    async def main():
        first = asyncio.create_task(cache.aget_or_load("k", load))
        await asyncio.sleep(0)
        second = asyncio.create_task(cache.aget_or_load("k", load))
        await asyncio.sleep(0.01)
        first.cancel()  # a client that disconnected
        return await second

    assert asyncio.run(main()) == "v"
    assert cache.get("k") == "v"


def test_a_load_overtaken_by_an_invalidation_is_not_cached():
    cache = TTLCache(60)

    async def load():
        await asyncio.sleep(0.02)
        return "old"

    async def main():
        pending = asyncio.create_task(cache.aget_or_load("alias", load))
        await asyncio.sleep(0.005)
        cache.invalidate()  # the alias moved while the old target was being read
        return await pending

    assert asyncio.run(main()) == "old"  # its callers asked before the move
    assert cache.get("alias") is None
    generation = cache.generation
    cache.invalidate()
    assert cache.put("k", 1, generation=generation) == 1 and cache.get("k") is None
