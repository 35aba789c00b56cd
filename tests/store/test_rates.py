"""Shared rate-limit counters: atomic increments on SQLite and PostgreSQL, expiry, and the
sliding window the server's limiter reads from them."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor


def test_increments_are_atomic_across_threads(store):
    store.rates.reset()
    with ThreadPoolExecutor(8) as pool:
        counts = list(pool.map(lambda _: store.rates.incr("k", 60), range(40)))
    assert sorted(counts) == list(range(1, 41))  # each increment saw its own count
    assert store.rates.get("k") == 40
    assert 58 < store.rates.get_expiry("k") - time.time() <= 60
    store.rates.decr("k", 50)
    assert store.rates.get("k") == 0  # never below zero


def test_an_expired_counter_starts_again_and_is_pruned(store):
    store.rates.reset()
    assert [store.rates.incr("short", 0.2) for _ in range(3)] == [1, 2, 3]
    store.rates.incr("long", 60)
    time.sleep(0.3)
    assert store.rates.get("short") == 0
    assert store.rates.prune() == 1 and store.rates.get("long") == 1
    assert store.rates.incr("short", 0.2) == 1


def test_the_sliding_window_limiter_counts_in_the_database(store):
    from limits import parse
    from limits.strategies import SlidingWindowCounterRateLimiter

    from aimass.server.throttle import DatabaseRateStorage

    store.rates.reset()
    one, two = (SlidingWindowCounterRateLimiter(DatabaseRateStorage(store.rates)) for _ in range(2))
    item = parse("3/minute")
    assert [one.hit(item, "key:a"), two.hit(item, "key:a"), one.hit(item, "key:a")] == [True] * 3
    assert not two.hit(item, "key:a") and not one.test(item, "key:a")
    assert one.hit(item, "key:b")  # another subject counts apart
    stats = two.get_window_stats(item, "key:a")
    assert stats.remaining == 0 and stats.reset_time > time.time()


def test_a_key_too_long_for_the_column_is_counted_by_its_digest(store):
    store.rates.reset()
    long = "address:" + "f" * 400
    assert [store.rates.incr(long, 60) for _ in range(2)] == [1, 2]
    assert store.rates.get(long) == 2 and store.rates.get_many([long, "other"]) == {
        long: 2,
        "other": 0,
    }
    store.rates.clear(long)
    assert store.rates.get(long) == 0


def test_a_database_that_does_not_answer_is_unavailable_not_internal():
    import pytest

    from aimass.errors import Unavailable
    from aimass.store.rates import RateRepository
    from aimass.store.session import make_engine

    gone = RateRepository(make_engine("postgresql+psycopg://u:p@127.0.0.1:9/none"))
    with pytest.raises(Unavailable, match="could not count a rate limit"):
        gone.incr("k", 60)
