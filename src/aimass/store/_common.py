"""Helpers shared by the store's feature repositories."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from aimass.errors import AlreadyExists, NotFound, Unavailable
from aimass.store.tables import ProjectRow, RetiredVersionRow

SessionFactory = Callable[[], AbstractContextManager[Session]]
RowT = TypeVar("RowT")
T = TypeVar("T")


def project_row(session: Session, project: str) -> ProjectRow:
    """The row of ``project`` or a NotFound that lists the projects that exist."""
    row = session.scalar(select(ProjectRow).where(ProjectRow.name == project))
    if row is None:
        names = session.scalars(select(ProjectRow.name).order_by(ProjectRow.name)).all()
        raise NotFound(
            f"project {project!r} does not exist (projects: {', '.join(names) or 'none'})",
            resource="project",
            name=project,
        )
    return row


def next_version(
    session: Session, column: Any, *where: Any, retired: tuple[int, str, str] | None = None
) -> int:
    """One more than the highest version matching ``where`` (1 for the first), and above
    every deleted one when ``retired`` names the thing: ``(project id, kind, name)``."""
    current = int(session.scalar(select(func.max(column)).where(*where)) or 0)
    if retired is not None and (row := session.get(RetiredVersionRow, retired)) is not None:
        current = max(current, row.version)
    return current + 1


def retire_version(session: Session, key: tuple[int, str, str], version: int) -> None:
    """Record that ``version`` of ``key`` (project id, kind, name) was deleted, so that
    :func:`next_version` never gives its number out again."""
    row = session.get(RetiredVersionRow, key)
    if row is None:
        project_id, kind, name = key
        session.add(RetiredVersionRow(project_id=project_id, kind=kind, name=name, version=version))
    elif row.version < version:
        row.version = version


def describe_versions(versions: Iterator[int] | list[int]) -> str:
    """``latest is 5`` or ``it has no versions`` for not-found messages."""
    found = sorted(versions)
    return f"latest is {found[-1]}" if found else "it has no versions"


def retry_on_duplicate(write: Callable[[], T], *, attempts: int = 5) -> T:
    """Run ``write`` (one whole transaction) again when a concurrent writer won a race.

    Only for writes whose unique keys the store picks itself (the next version number,
    a get-or-create row): the loser's unique violation rolls back its transaction, and
    the next try sees the winner's row. Another process on the same database (several
    ``aimass serve`` on one PostgreSQL) is what makes these races possible.
    """
    for attempt in range(attempts):
        try:
            return write()
        except AlreadyExists:
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


@contextmanager
def autocommit_connection(engine: Engine, doing: str) -> Iterator[Connection]:
    """A pooled connection of an autocommit ``engine``; a database that does not answer
    is Unavailable (503) naming what could not be done (``doing``: "count a rate
    limit"), as for every other store call."""
    try:
        with engine.connect() as connection:
            yield connection
    except OperationalError as exc:
        raise Unavailable(
            f"the metadata database could not {doing}: {exc.orig}; check AIMASS_STORE_URI "
            "and that the database is reachable"
        ) from exc
