"""Shared concurrency slots: never more calls in than the limit whatever the interleaving
(SQLite and PostgreSQL), leases that lapse unless renewed, and a server's leases given
back together."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor


def _clear(store):
    store.slots.prune()
    for holder in ("a", "b", "dead"):
        store.slots.release_holder(holder)


def test_racing_calls_never_take_more_places_than_the_limit(store):
    _clear(store)
    start = threading.Barrier(12)

    def take(i):
        start.wait()
        return store.slots.acquire("predict:key:k", 3, holder="ab"[i % 2], ttl=60)

    with ThreadPoolExecutor(12) as pool:
        leases = [lease for lease in pool.map(take, range(12)) if lease is not None]
    # Racers may all back out (each counted the others' rows), none gets in over the limit.
    assert len(leases) <= 3
    assert store.slots.count("predict:key:k") == len(leases)
    for lease in leases:
        store.slots.release(lease)
    assert store.slots.count("predict:key:k") == 0
    # Once the race is over, the places are there to take one after the other.
    taken = [store.slots.acquire("predict:key:k", 3, holder="a", ttl=60) for _ in range(4)]
    assert [lease is not None for lease in taken] == [True, True, True, False]
    assert store.slots.acquire("predict:key:other", 3, holder="a", ttl=60) is not None
    assert store.slots.release_holder("a") == 4 and store.slots.count("predict:key:k") == 0


def test_a_lease_lapses_unless_renewed(store):
    _clear(store)
    assert store.slots.acquire("generate:key:k", 2, holder="dead", ttl=0.3) is not None
    assert store.slots.acquire("generate:key:k", 2, holder="b", ttl=0.3) is not None
    assert store.slots.acquire("generate:key:k", 2, holder="a", ttl=60) is None  # full
    time.sleep(0.15)
    assert store.slots.renew("b", 60) == 1  # a running server keeps its lease
    time.sleep(0.3)
    # The dead server's lease no longer counts: one place is free again.
    assert store.slots.count("generate:key:k") == 1
    assert store.slots.acquire("generate:key:k", 2, holder="a", ttl=60) is not None
    assert store.slots.prune() == 1
    _clear(store)


def test_a_database_that_does_not_answer_is_unavailable_not_internal():
    import pytest

    from aimass.errors import Unavailable
    from aimass.store.session import make_engine
    from aimass.store.slots import SlotLeaseRepository

    gone = SlotLeaseRepository(make_engine("postgresql+psycopg://u:p@127.0.0.1:9/none"))
    with pytest.raises(Unavailable, match="could not count calls in flight"):
        gone.acquire("predict:key:k", 1, holder="a", ttl=60)
