"""Leases on concurrency slots (calls in flight per key), shared by every server on the
metadata database.

A call in flight is one row: the slot it holds (``predict:key:ID``), the server process
holding it and when the lease lapses. Taking a slot inserts the row, then counts the
slot's live rows; past the limit the row is deleted again and the call refused. That
never lets more calls in than the limit, whatever the interleaving: of any calls over
the limit, the one whose row was committed last counted after every other row existed,
so it saw them all and backed out (two racing calls may both back out: a refusal with
``Retry-After: 1``, never an excess). Each statement runs on its own in autocommit, so
no transaction or lock is held between them.

The holder renews its leases (one ``UPDATE`` per server, not per call) while it runs;
the leases of a server that died lapse after their time to live and stop counting,
and are deleted now and then by the servers taking slots.
"""

from __future__ import annotations

import time
import uuid
from contextlib import AbstractContextManager

from sqlalchemy import Connection, Engine, delete, func, insert, select, update

from aimass.store._common import autocommit_connection
from aimass.store.tables import SlotLeaseRow

__all__ = ["SlotLeaseRepository"]

# One acquisition in this many also deletes the lapsed leases.
PRUNE_EVERY = 1000


class SlotLeaseRepository:
    """Shared concurrency slots (see the module docstring).

    Args:
        engine: The store's engine; every call is one or two autocommit statements.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine.execution_options(isolation_level="AUTOCOMMIT")
        self._acquired = 0

    def _connected(self) -> AbstractContextManager[Connection]:
        return autocommit_connection(self._engine, "count calls in flight")

    def acquire(self, slot: str, limit: int, *, holder: str, ttl: float) -> str | None:
        """Take one of ``slot``'s ``limit`` places for ``holder``, its lease lapsing in
        ``ttl`` seconds unless renewed: the lease's id, or ``None`` when the slot is full."""
        lease = uuid.uuid4().hex
        row = SlotLeaseRow
        with self._connected() as connection:
            connection.execute(
                insert(row).values(id=lease, slot=slot, holder=holder, expires_at=time.time() + ttl)
            )
            live = connection.scalar(
                select(func.count())
                .select_from(row)
                .where(row.slot == slot, row.expires_at > time.time())
            )
            if int(live or 0) > limit:
                connection.execute(delete(row).where(row.id == lease))
                return None
        self._acquired += 1
        if self._acquired % PRUNE_EVERY == 0:
            self.prune()
        return lease

    def release(self, lease: str) -> None:
        """Give back the place ``lease`` holds."""
        with self._connected() as connection:
            connection.execute(delete(SlotLeaseRow).where(SlotLeaseRow.id == lease))

    def renew(self, holder: str, ttl: float) -> int:
        """Extend every lease of ``holder`` to lapse ``ttl`` seconds from now; how many."""
        row = SlotLeaseRow
        with self._connected() as connection:
            done = connection.execute(
                update(row).where(row.holder == holder).values(expires_at=time.time() + ttl)
            )
            return int(done.rowcount)

    def release_holder(self, holder: str) -> int:
        """Give back every place ``holder`` holds (a server stopping); how many."""
        with self._connected() as connection:
            done = connection.execute(delete(SlotLeaseRow).where(SlotLeaseRow.holder == holder))
            return int(done.rowcount)

    def count(self, slot: str) -> int:
        """Live leases of ``slot``, every server's."""
        row = SlotLeaseRow
        with self._connected() as connection:
            found = connection.scalar(
                select(func.count())
                .select_from(row)
                .where(row.slot == slot, row.expires_at > time.time())
            )
        return int(found or 0)

    def prune(self) -> int:
        """Delete the lapsed leases; how many went."""
        with self._connected() as connection:
            done = connection.execute(
                delete(SlotLeaseRow).where(SlotLeaseRow.expires_at <= time.time())
            )
            return int(done.rowcount)
