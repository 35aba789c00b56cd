"""Helpers shared by the store's feature repositories."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any, TypeVar

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from aimass.errors import NotFound
from aimass.store.tables import ProjectRow

SessionFactory = Callable[[], AbstractContextManager[Session]]
RowT = TypeVar("RowT")


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


def next_version(session: Session, column: Any, *where: Any) -> int:
    """One more than the highest version matching ``where`` (1 for the first)."""
    current = session.scalar(select(func.max(column)).where(*where))
    return int(current or 0) + 1


def describe_versions(versions: Iterator[int] | list[int]) -> str:
    """``latest is 5`` or ``it has no versions`` for not-found messages."""
    found = sorted(versions)
    return f"latest is {found[-1]}" if found else "it has no versions"
