"""Engine creation and the one managed session every store method uses.

Nobody calls ``session.commit()`` by hand: :func:`managed_session` commits on
success, rolls back on any error, and translates database errors into the
aimass error tree at this boundary.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.exc import DataError, IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from aimass.errors import (
    AimassError,
    AlreadyExists,
    Conflict,
    Internal,
    InvalidArgument,
    Unavailable,
)

__all__ = ["make_engine", "managed_session", "private_sqlite_file"]


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers (the API, the CLI) proceed while a job writes.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def private_sqlite_file(uri: str) -> None:
    """Create the SQLite file of ``uri`` as 0600 (or tighten an existing one to it).

    SQLite gives its ``-wal`` and ``-shm`` files the mode of the database file, so
    they stay private too. In-memory and non-file URIs are left alone.
    """
    database = make_url(uri).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    path = Path(database)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    if path.stat().st_mode & 0o077:
        os.chmod(path, 0o600)


def make_engine(uri: str) -> Engine:
    """Create an engine for ``uri`` with the settings aimass relies on.

    A SQLite database file is created readable by its owner only (0600).
    """
    if uri.startswith("sqlite"):
        private_sqlite_file(uri)
        engine = create_engine(uri, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(uri, pool_pre_ping=True)


# PostgreSQL SQLSTATEs: unique violation; serialization failure and deadlock, which
# a retry of the whole transaction resolves.
_UNIQUE_VIOLATION = "23505"
_TRANSIENT = {"40001", "40P01"}


def _sqlstate(exc: SQLAlchemyError) -> str | None:
    state = getattr(getattr(exc, "orig", None), "sqlstate", None)
    return state if isinstance(state, str) else None


def _is_duplicate(exc: IntegrityError) -> bool:
    # psycopg reports a SQLSTATE; sqlite3 only a message.
    return _sqlstate(exc) == _UNIQUE_VIOLATION or "UNIQUE constraint failed" in str(exc.orig)


@contextmanager
def managed_session(maker: sessionmaker[Session]) -> Iterator[Session]:
    """A session that commits on success and rolls back (and translates) on error."""
    session = maker()
    try:
        yield session
        session.commit()
    except AimassError:
        session.rollback()
        raise
    except IntegrityError as exc:
        session.rollback()
        if _is_duplicate(exc):
            raise AlreadyExists(f"the store refused a duplicate: {exc.orig}") from exc
        raise Conflict(
            f"the store refused a change that breaks a reference or a rule: {exc.orig}; "
            "something it depends on was changed or deleted meanwhile, retry after checking it"
        ) from exc
    except DataError as exc:
        session.rollback()
        raise InvalidArgument(
            f"the metadata database refused a value: {exc.orig}; shorten or correct it"
        ) from exc
    except OperationalError as exc:
        session.rollback()
        if _sqlstate(exc) in _TRANSIENT:
            raise Unavailable(
                f"the metadata database aborted a transaction that conflicted with a "
                f"concurrent one ({exc.orig}); retry the request"
            ) from exc
        raise Unavailable(
            f"the metadata database could not be used: {exc.orig}; check AIMASS_STORE_URI "
            "and that the database is reachable"
        ) from exc
    except SQLAlchemyError as exc:
        session.rollback()
        raise Internal(f"metadata store error: {exc}") from exc
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
