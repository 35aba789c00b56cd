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
    FailedPrecondition,
    Internal,
    InvalidArgument,
    Unavailable,
)

__all__ = ["make_engine", "managed_session", "private_sqlite_file", "unreadable"]


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


def make_engine(uri: str, *, key: bytes | None = None) -> Engine:
    """Create an engine for ``uri`` with the settings aimass relies on.

    A SQLite database file is created readable by its owner only (0600). With ``key``
    (32 bytes) it is a SQLCipher database encrypted under that key
    (:mod:`aimass.artifacts.database_key`).
    """
    if uri.startswith("sqlite"):
        private_sqlite_file(uri)
        if key is not None:
            engine = _cipher_engine(uri, key)
        else:
            engine = create_engine(uri, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if key is not None:
        raise InvalidArgument("only a SQLite metadata database is encrypted by aimass")
    return create_engine(uri, pool_pre_ping=True)


def _cipher_engine(uri: str, key: bytes) -> Engine:
    """An engine whose connections are SQLCipher's, each keyed before any other
    statement (SQLCipher reads nothing of the file until it has the key)."""
    from sqlcipher3 import dbapi2

    database = make_url(uri).database
    raw_key = f"PRAGMA key = \"x'{key.hex()}'\""

    def connect() -> Any:
        connection = dbapi2.connect(database, check_same_thread=False, timeout=30)
        connection.execute(raw_key)
        return connection

    return create_engine(uri, module=dbapi2, creator=connect)


def unreadable(uri: str, *, encrypted: bool) -> AimassError:
    """The error for a SQLite database that opened but said "file is not a database": a
    wrong key, a missing key, or not a database at all."""
    database = make_url(uri).database
    if encrypted:
        return FailedPrecondition(
            f"the metadata database {database} cannot be read with its key ({database}.key "
            "unwrapped by the master key): the key file or the master keyring belongs to "
            "another database, or the database was replaced by a plaintext copy; restore "
            "the database and its key file from one backup (an interrupted 'aimass db "
            "encrypt' is finished by running it again)",
            path=database,
        )
    return FailedPrecondition(
        f"the metadata database {database} is not a plaintext SQLite database: it is "
        f"encrypted, and its key file {database}.key is missing, or it is not a database; "
        "restore the key file from the backup taken with the database",
        path=database,
    )


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
