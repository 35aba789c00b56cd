"""Counters of rate-limit windows in the metadata database, shared by every server on it.

Each counter is one row: its key (the limit, the subject, the window's number), its
count and when it expires. An increment is one ``INSERT ... ON CONFLICT DO UPDATE
... RETURNING`` statement, so servers incrementing the same counter at once each get
a distinct count (PostgreSQL and SQLite alike), and an expired row starts again at
the increment. Expired rows are deleted now and then by the incrementing servers.
"""

from __future__ import annotations

import hashlib
import time
from contextlib import AbstractContextManager
from typing import Any

from sqlalchemy import Connection, Engine, case, delete, select, update

from aimass.store._common import autocommit_connection
from aimass.store.tables import RateCounterRow

__all__ = ["RateRepository"]

# One increment in this many also deletes the expired rows.
PRUNE_EVERY = 1000
_KEY_CHARS = 255  # the column's width


def _bounded(key: str) -> str:
    """``key``, or its digest when it would not fit the column (a subject is a client
    address or a key id, short; this keeps an odd one from failing the request)."""
    if len(key) <= _KEY_CHARS:
        return key
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


class RateRepository:
    """Shared rate-limit counters (see the module docstring).

    Args:
        engine: The store's engine. Every call is one statement on a pooled connection
            in autocommit: a request is checked against three limits, and a transaction
            around each statement would cost two more round trips.
    """

    def __init__(self, engine: Engine) -> None:
        from sqlalchemy.dialects import postgresql, sqlite

        self._engine = engine.execution_options(isolation_level="AUTOCOMMIT")
        # Both dialects spell the upsert alike; the statement is each one's own.
        is_postgresql = engine.dialect.name == "postgresql"
        self._insert: Any = postgresql.insert if is_postgresql else sqlite.insert
        self._increments = 0

    def _connected(self) -> AbstractContextManager[Connection]:
        return autocommit_connection(self._engine, "count a rate limit")

    def incr(self, key: str, expiry: float, amount: int = 1) -> int:
        """Add ``amount`` to ``key``'s count (started again when expired, to expire in
        ``expiry`` seconds) and return the new count."""
        now = time.time()
        row = RateCounterRow
        stmt = self._insert(row).values(key=_bounded(key), count=amount, expires_at=now + expiry)
        expired = row.expires_at <= now
        stmt = stmt.on_conflict_do_update(
            index_elements=[row.key],
            set_={
                "count": case((expired, stmt.excluded.count), else_=row.count + amount),
                "expires_at": case((expired, stmt.excluded.expires_at), else_=row.expires_at),
            },
        ).returning(row.count)
        with self._connected() as connection:
            count = int(connection.execute(stmt).scalar_one())
        self._increments += 1
        if self._increments % PRUNE_EVERY == 0:
            self.prune()
        return count

    def decr(self, key: str, amount: int = 1) -> None:
        """Take ``amount`` back from ``key``'s count (never below zero)."""
        row = RateCounterRow
        with self._connected() as connection:
            connection.execute(
                update(row)
                .where(row.key == _bounded(key))
                .values(count=case((row.count > amount, row.count - amount), else_=0))
            )

    def get(self, key: str) -> int:
        """``key``'s count (0 when it has none or it expired)."""
        return self.get_many([key])[key]

    def get_many(self, keys: list[str]) -> dict[str, int]:
        """The counts of ``keys`` in one query (0 for those without one)."""
        row = RateCounterRow
        stored = {_bounded(key): key for key in keys}
        with self._connected() as connection:
            found = connection.execute(
                select(row.key, row.count).where(
                    row.key.in_(list(stored)), row.expires_at > time.time()
                )
            ).all()
        counts = dict.fromkeys(keys, 0)
        counts.update({stored[key]: int(count) for key, count in found})
        return counts

    def get_expiry(self, key: str) -> float:
        """When ``key`` expires (seconds since the epoch; now when it has no count)."""
        now = time.time()
        row = RateCounterRow
        with self._connected() as connection:
            found = connection.scalar(select(row.expires_at).where(row.key == _bounded(key)))
        return float(found) if found is not None and found > now else now

    def clear(self, key: str) -> None:
        """Forget ``key``."""
        with self._connected() as connection:
            connection.execute(delete(RateCounterRow).where(RateCounterRow.key == _bounded(key)))

    def prune(self) -> int:
        """Delete the expired counters; how many went."""
        with self._connected() as connection:
            done = connection.execute(
                delete(RateCounterRow).where(RateCounterRow.expires_at <= time.time())
            )
            return int(done.rowcount)

    def reset(self) -> int:
        """Forget every counter; how many went."""
        with self._connected() as connection:
            return int(connection.execute(delete(RateCounterRow)).rowcount)
