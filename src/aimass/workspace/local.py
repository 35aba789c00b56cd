"""``LocalClient``: the operations contract on a home in this process, no server.

The same namespaces, names and arguments as :class:`aimass.Client` (see
:mod:`aimass.operations`), answered by the workspace on this machine and returned
as the same wire schemas. The CLI uses it when ``AIMASS_URL`` is unset; a notebook
can too::

    from aimass.settings import load_settings
    from aimass.workspace.local import LocalClient

    with LocalClient.open(load_settings()) as local:
        local.datasets.import_sample("reviews")
        job = local.jobs.submit_training(dataset="reviews", model="churn")
        local.jobs.wait(job.id)  # no server: the job runs here, now
        local.predict("churn@latest", ["a fine film"])

The caller is the home's owner (every scope, every project), as the CLI's local
mode has always been; key and limit changes are audited as the server audits them.
Differences from the HTTP client, by design: ``datasets.import_path`` and
``models.import_`` read any path this process may read (there is no server boundary
to guard with ``AIMASS_IMPORT_DIRS``), and ``jobs.wait`` on a queued job runs it in
this process unless worker threads of this workspace are running.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from aimass import schemas as s
from aimass._version import __version__
from aimass.store import DEFAULT_PROJECT, AuditRecord
from aimass.workspace.access import local_principal

if TYPE_CHECKING:
    from aimass.settings import Settings
    from aimass.workspace import Workspace

from aimass.workspace._local_admin import (
    LocalAudit,
    LocalJobs,
    LocalKeys,
    LocalPipelines,
    LocalProjects,
)
from aimass.workspace._local_data import LocalBases, LocalDatasets, LocalModels

__all__ = ["LocalClient"]


class LocalClient:
    """The operations of :class:`aimass.Client`, in process on a workspace.

    Args:
        workspace: The home to work on (not closed by :meth:`close` unless opened
            by :meth:`open`).
        project: Default project for every call (override per call).
    """

    def __init__(self, workspace: Workspace, *, project: str = DEFAULT_PROJECT) -> None:
        self.workspace = workspace
        self.project = project
        self._owned = False
        self.datasets = LocalDatasets(self)
        self.bases = LocalBases(self)
        self.jobs = LocalJobs(self)
        self.models = LocalModels(self)
        self.pipelines = LocalPipelines(self)
        self.keys = LocalKeys(self)
        self.projects = LocalProjects(self)
        self.audit = LocalAudit(self)

    @classmethod
    def open(cls, settings: Settings, *, project: str = DEFAULT_PROJECT) -> LocalClient:
        """A client on its own workspace of ``settings``' home, closed with the client."""
        from aimass.workspace import Workspace

        client = cls(Workspace(settings), project=project)
        client._owned = True
        return client

    def __enter__(self) -> LocalClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the workspace when this client opened it."""
        if self._owned:
            self.workspace.close()

    def record(self, action: str, project: str | None, resource: str, details: Any) -> None:
        """The audit entry the server's request pipeline would write for this change."""
        self.workspace.audit.record(
            AuditRecord(
                actor=local_principal().actor,
                action=action,
                resource=resource,
                outcome="ok",
                project=project,
                details=details,
            )
        )

    def whoami(self) -> s.WhoAmI:
        """The home's owner: every scope, every project."""
        me = local_principal()
        return s.WhoAmI(
            actor=me.actor, key_id=me.key_id, project=me.project, scopes=sorted(me.scopes)
        )

    def about(self) -> s.AboutOut:
        """As ``Client.about``: this installation and the home's settings."""
        return s.AboutOut(
            version=__version__, commercial_use_only=self.workspace.settings.commercial_use_only
        )

    def collect_garbage(
        self, *, older_than: float = 3600.0, dry_run: bool = False
    ) -> s.GarbageReportOut:
        """As ``Client.collect_garbage``, on this home: any ``older_than`` (a short one
        only while nothing else writes to the home)."""
        from aimass.workspace.gc import collect_garbage

        ws = self.workspace
        report = collect_garbage(
            ws.store, ws.artifacts, ws.audit, older_than=older_than, dry_run=dry_run
        )
        return s.GarbageReportOut.model_validate(report.to_dict())

    def predict(
        self,
        ref: str,
        inputs: Sequence[str],
        *,
        explain: bool | str | None = None,
        project: str | None = None,
    ) -> list[dict[str, Any]]:
        """As ``Client.predict``."""
        return self.workspace.serving.predict(
            ref, inputs, project=project or self.project, explain=explain
        )

    def predict_full(
        self,
        ref: str,
        inputs: Sequence[str],
        *,
        explain: bool | str | None = None,
        project: str | None = None,
    ) -> s.PredictResponse:
        """As ``Client.predict_full``."""
        version = self.workspace.models.get(ref, project=project or self.project)
        pinned = f"{version.name}@{version.version}"
        predictions = self.predict(pinned, inputs, explain=explain, project=project)
        return s.PredictResponse(
            model=version.name, version=version.version, predictions=predictions
        )

    def generate(
        self, ref: str, prompt: str, *, project: str | None = None, **options: Any
    ) -> dict[str, Any]:
        """As ``Client.generate``."""
        return self.workspace.serving.generate(
            ref, prompt, project=project or self.project, **options
        )

    def generate_stream(
        self, ref: str, prompt: str, *, project: str | None = None, **options: Any
    ) -> Iterator[dict[str, Any]]:
        """As ``Client.generate_stream``."""
        return self.workspace.serving.generate_stream(
            ref, prompt, project=project or self.project, **options
        )

    def report_document(self, ref: str, report: str, *, project: str | None = None) -> Any:
        """An evaluation report's ``report.json``, decoded."""
        return json.loads(self.models.report(ref, report, fmt="json", project=project))


if TYPE_CHECKING:
    from aimass.operations import Operations

    def _keeps_the_contract(local: LocalClient) -> Operations:
        # mypy checks the types here; tests/test_operations_contract.py the names.
        return local
