"""Engine creation and the one managed session every store method uses.

Nobody calls ``session.commit()`` by hand: :func:`managed_session` commits on
success, rolls back on any error, and translates database errors into the
aimass error tree at this boundary.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from aimass.errors import AimassError, AlreadyExists, Internal, Unavailable

__all__ = ["make_engine", "managed_session"]


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers (the API, the CLI) proceed while a job writes.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def make_engine(uri: str) -> Engine:
    """Create an engine for ``uri`` with the settings aimass relies on."""
    if uri.startswith("sqlite"):
        engine = create_engine(uri, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(uri, pool_pre_ping=True)


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
        raise AlreadyExists(f"the store refused a duplicate: {exc.orig}") from exc
    except OperationalError as exc:
        session.rollback()
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
