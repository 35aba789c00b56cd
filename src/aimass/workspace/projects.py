"""``ws.projects``: the tenants of a home."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aimass.entities import (
    Project,
)
from aimass.workspace.access import Principal

if TYPE_CHECKING:
    pass
from aimass.workspace._service import Service

__all__ = ["ProjectService"]


class ProjectService(Service):
    """``ws.projects``: create and list projects."""

    def create(self, name: str, *, description: str = "") -> Project:
        """Create a project (a tenant: its datasets, models, jobs and keys)."""
        return self.store.projects.create(name, description=description)

    def list(self, principal: Principal | None = None) -> list[Project]:
        """Projects ``principal`` may see (all of them for the local operator)."""
        found = self.store.projects.list()
        return [p for p in found if principal is None or principal.sees(p.name)]

    def get(self, name: str) -> Project:
        """One project, with its stored limits."""
        return self.store.projects.get(name)
