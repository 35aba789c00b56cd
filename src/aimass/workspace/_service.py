"""The base of the workspace's namespaced services (``ws.datasets``, ``ws.models``, ...)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aimass.entities import JobStatus
from aimass.errors import Conflict

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

    def refuse_while_jobs_read(
        self, project: str, *, field: str, what: str, ref: str, latest: bool
    ) -> None:
        """Conflict naming the queued and running jobs whose spec reads ``ref``
        (``name@version``) as its ``field`` (``dataset``, ``base``): by that reference, or
        by the bare name when ``latest`` (deleting the latest version would change what
        they read). A distillation's unlabelled transfer set counts as a dataset."""
        name = ref.partition("@")[0]
        names = {ref} | ({name, f"{name}@latest"} if latest else set())
        found = []
        for status in (JobStatus.QUEUED, JobStatus.RUNNING):
            for job in self.store.jobs.list(project, status=status, limit=10_000):
                config = job.spec.get("config") or {}
                read = [job.spec.get(field)]
                if field == "dataset" and isinstance(config, dict):
                    read.append(config.get("unlabelled"))
                if any(isinstance(value, str) and value in names for value in read):
                    found.append(f"{job.id} ({job.kind}, {status})")
        if found:
            raise Conflict(
                f"{what} {ref} is read by job(s) {', '.join(found[:5])}"
                + (f" and {len(found) - 5} more" if len(found) > 5 else "")
                + "; wait for them to finish or cancel them ('aimass jobs cancel ID')",
                jobs=[f.split(" ", 1)[0] for f in found[:100]],
            )
