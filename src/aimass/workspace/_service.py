"""The base of the workspace's namespaced services (``ws.datasets``, ``ws.models``, ...)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aimass.artifacts.storage import ArtifactStore
    from aimass.settings import Settings
    from aimass.store import Store
    from aimass.workspace import Workspace


class Service:
    """One namespace of a :class:`~aimass.workspace.Workspace`: the operations on one kind
    of thing and the policy that goes with them. Services reach each other through the
    workspace (``self._ws.models.get(...)``), never through the store around them.

    Args:
        ws: The workspace whose store, artifacts and settings the service uses.
    """

    def __init__(self, ws: Workspace) -> None:
        self._ws = ws

    @property
    def settings(self) -> Settings:
        """The workspace's settings."""
        return self._ws.settings

    @property
    def store(self) -> Store:
        """The metadata store."""
        return self._ws.store

    @property
    def artifacts(self) -> ArtifactStore:
        """The artifact store."""
        return self._ws.artifacts
