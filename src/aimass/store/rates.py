"""Counters of rate-limit windows in the metadata database, shared by every server on it.

Each counter is one row: its key (the limit, the subject, the window's number), its
count and when it expires. An increment is one ``INSERT ... ON CONFLICT DO UPDATE
... RETURNING`` statement, so servers incrementing the same counter at once each get
a distinct count (PostgreSQL and SQLite alike), and an expired row starts again at
the increment. Expired rows are deleted now and then by the incrementing servers.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import case, delete, select, update

from aimass.store._common import SessionFactory
from aimass.store.tables import RateCounterRow

__all__ = ["RateRepository"]

# One increment in this many also deletes the expired rows.
PRUNE_EVERY = 1000


class RateRepository:
    """Shared rate-limit counters (see the module docstring).

    Args:
        session: The store's session factory.
        dialect: The database's dialect name (``postgresql`` or ``sqlite``).
    """

    def __init__(self, session: SessionFactory, dialect: str) -> None:
        self._session = session
        from sqlalchemy.dialects import postgresql, sqlite

        # Both dialects spell the upsert alike; the statement is each one's own.
        self._insert: Any = postgresql.insert if dialect == "postgresql" else sqlite.insert
        self._increments = 0

    def incr(self, key: str, expiry: float, amount: int = 1) -> int:
        """Add ``amount`` to ``key``'s count (started again when expired, to expire in
        ``expiry`` seconds) and return the new count."""
        now = time.time()
        row = RateCounterRow
        stmt = self._insert(row).values(key=key, count=amount, expires_at=now + expiry)
        expired = row.expires_at <= now
        stmt = stmt.on_conflict_do_update(
            index_elements=[row.key],
            set_={
                "count": case((expired, stmt.excluded.count), else_=row.count + amount),
                "expires_at": case((expired, stmt.excluded.expires_at), else_=row.expires_at),
            },
        ).returning(row.count)
        with self._session() as session:
            count = int(session.execute(stmt).scalar_one())
        self._increments += 1
        if self._increments % PRUNE_EVERY == 0:
            self.prune()
        return count

    def decr(self, key: str, amount: int = 1) -> None:
        """Take ``amount`` back from ``key``'s count (never below zero)."""
        row = RateCounterRow
        with self._session() as session:
            session.execute(
                update(row)
                .where(row.key == key)
                .values(count=case((row.count > amount, row.count - amount), else_=0))
            )

    def get(self, key: str) -> int:
        """``key``'s count (0 when it has none or it expired)."""
        row = RateCounterRow
        with self._session() as session:
            found = session.scalar(
                select(row.count).where(row.key == key, row.expires_at > time.time())
            )
        return int(found or 0)

    def get_expiry(self, key: str) -> float:
        """When ``key`` expires (seconds since the epoch; now when it has no count)."""
        now = time.time()
        row = RateCounterRow
        with self._session() as session:
            found = session.scalar(select(row.expires_at).where(row.key == key))
        return float(found) if found is not None and found > now else now

    def clear(self, key: str) -> None:
        """Forget ``key``."""
        with self._session() as session:
            session.execute(delete(RateCounterRow).where(RateCounterRow.key == key))

    def prune(self) -> int:
        """Delete the expired counters; how many went."""
        with self._session() as session:
            done = session.execute(
                delete(RateCounterRow).where(RateCounterRow.expires_at <= time.time())
            )
            return int(done.rowcount)  # type: ignore[attr-defined]  # a CursorResult

    def reset(self) -> int:
        """Forget every counter; how many went."""
        with self._session() as session:
            return int(session.execute(delete(RateCounterRow)).rowcount)  # type: ignore[attr-defined]
