"""Helpers shared by the store's feature repositories."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any, TypeVar

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from aimass.errors import AlreadyExists, NotFound
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
