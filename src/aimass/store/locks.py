"""Named locks held across every process that shares one metadata database.

For the few check-then-act steps that no row can guard: creating the schema of a new
database, bootstrapping the first admin key. Several ``aimass serve`` processes on one
PostgreSQL take turns through a session-level advisory lock; a SQLite store is served
by one process, whose database write lock already serialises its writers, so there
the lock is a no-op.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, text

__all__ = ["database_lock", "lock_key"]


def lock_key(name: str) -> int:
    """The signed 64-bit advisory-lock key of ``name`` (stable across processes)."""
    return int.from_bytes(
        hashlib.sha256(f"aimass:{name}".encode()).digest()[:8], "big", signed=True
    )


@contextmanager
def database_lock(engine: Engine, name: str) -> Iterator[None]:
    """Hold the lock ``name`` while the block runs (PostgreSQL; a no-op on SQLite).

    The lock lives on a connection of its own, so the block's own work (sessions,
    Alembic's migration transaction) runs on other connections and commits as usual.
    """
    if engine.dialect.name != "postgresql":
        yield
        return
    key = lock_key(name)
    with engine.connect() as connection:
        connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": key})
        connection.commit()
        try:
            yield
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
            connection.commit()
