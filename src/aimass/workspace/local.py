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

import builtins
import json
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aimass import schemas as s
from aimass.entities import JobStatus
from aimass.errors import InvalidArgument, JobFailed, NotFound
from aimass.operations import ALL_PROJECTS
from aimass.refs import parse_ref
from aimass.store import DEFAULT_PROJECT, AuditRecord
from aimass.workspace.access import local_principal

if TYPE_CHECKING:
    from aimass.settings import Settings
    from aimass.workspace import Workspace

__all__ = ["LocalClient"]


def _created(out: Any, created: bool) -> Any:
    """``out`` (a wire schema) saying whether the import stored something new."""
    return out.model_copy(update={"created": created})


class _Local:
    def __init__(self, client: LocalClient) -> None:
        self._client = client
        self._ws = client.workspace

    def _p(self, project: str | None) -> str:
        return project or self._client.project


class LocalDatasets(_Local):
    """``local.datasets`` (as ``Client.datasets``)."""

    def list(self, *, project: str | None = None) -> list[s.DatasetVersionOut]:
        """As ``Client.datasets.list``."""
        found = self._ws.store.datasets.list(self._p(project))
        return [s.DatasetVersionOut.from_entity(v) for v in found]

    def get(self, ref: str, *, project: str | None = None) -> s.DatasetVersionOut:
        """As ``Client.datasets.get``."""
        return s.DatasetVersionOut.from_entity(self._ws.dataset(ref, project=self._p(project)))

    def versions(
        self, name: str, *, project: str | None = None
    ) -> builtins.list[s.DatasetVersionOut]:
        """As ``Client.datasets.versions``."""
        found = self._ws.store.datasets.versions(self._p(project), name)
        return [s.DatasetVersionOut.from_entity(v) for v in found]

    def upload(
        self,
        file: str | Path,
        *,
        name: str,
        fmt: str | None = None,
        project: str | None = None,
        **options: Any,
    ) -> s.DatasetVersionOut:
        """As ``Client.datasets.upload``: the file is read where it lies."""
        from aimass.data.importer import ImportOptions
        from aimass.workspace.privacy import DeidentifyOptions

        version, created = self._ws.import_dataset(
            Path(file),
            name=name,
            project=self._p(project),
            fmt=fmt,
            options=ImportOptions.from_fields(options),
            deidentify=DeidentifyOptions.from_fields(options.get("deidentify")),
        )
        return _created(s.DatasetVersionOut.from_entity(version), created)

    def import_path(
        self,
        server_path: str,
        *,
        name: str,
        fmt: str | None = None,
        project: str | None = None,
        **options: Any,
    ) -> s.DatasetVersionOut:
        """As ``Client.datasets.import_path``; in process the home's machine is this one."""
        return self.upload(server_path, name=name, fmt=fmt, project=project, **options)

    def import_sample(
        self,
        sample: str,
        *,
        name: str | None = None,
        seed: int = 0,
        deidentify: dict[str, Any] | None = None,
        project: str | None = None,
    ) -> s.DatasetVersionOut:
        """As ``Client.datasets.import_sample``."""
        from aimass.workspace.privacy import DeidentifyOptions

        version, created = self._ws.import_sample(
            sample,
            name=name,
            project=self._p(project),
            seed=seed,
            deidentify=DeidentifyOptions.from_fields(deidentify),
        )
        return _created(s.DatasetVersionOut.from_entity(version), created)

    def samples(self) -> builtins.list[s.SampleOut]:
        """As ``Client.datasets.samples``."""
        from aimass.data.samples import list_samples

        return [s.SampleOut.from_entity(sample) for sample in list_samples()]


class LocalBases(_Local):
    """``local.bases`` (as ``Client.bases``)."""

    def list(self, *, project: str | None = None) -> list[s.BaseModelOut]:
        """As ``Client.bases.list``."""
        return [s.BaseModelOut.from_entity(b) for b in self._ws.store.bases.list(self._p(project))]

    def get(self, name: str, *, project: str | None = None) -> s.BaseModelOut:
        """As ``Client.bases.get``."""
        return s.BaseModelOut.from_entity(self._ws.base(name, project=self._p(project)))

    def import_(
        self,
        source: str | None = None,
        *,
        path: str | None = None,
        name: str | None = None,
        project: str | None = None,
    ) -> s.BaseModelOut:
        """As ``Client.bases.import_``."""
        if (source is None) == (path is None):
            raise InvalidArgument("give exactly one of a packaged base name or path=DIRECTORY")
        found = source if source is not None else str(path)
        base, created = self._ws.import_base(found, name=name, project=self._p(project))
        return _created(s.BaseModelOut.from_entity(base), created)


class LocalModels(_Local):
    """``local.models`` (as ``Client.models``)."""

    def list(self, *, project: str | None = None) -> list[s.RegisteredModelOut]:
        """As ``Client.models.list``."""
        found = self._ws.store.registry.list_models(self._p(project))
        return [s.RegisteredModelOut.from_entity(m) for m in found]

    def versions(
        self, name: str, *, project: str | None = None
    ) -> builtins.list[s.ModelVersionOut]:
        """As ``Client.models.versions``."""
        found = self._ws.store.registry.list_versions(self._p(project), name)
        return [s.ModelVersionOut.from_entity(v) for v in found]

    def get(self, ref: str, *, project: str | None = None) -> s.ModelVersionOut:
        """As ``Client.models.get``."""
        return s.ModelVersionOut.from_entity(self._ws.model_version(ref, project=self._p(project)))

    def set_alias(
        self, name: str, alias: str, version: int, *, project: str | None = None
    ) -> s.ModelVersionOut:
        """As ``Client.models.set_alias``."""
        moved = self._ws.set_alias(name, version, alias, project=self._p(project))
        return s.ModelVersionOut.from_entity(moved)

    def delete_alias(self, name: str, alias: str, *, project: str | None = None) -> None:
        """As ``Client.models.delete_alias``."""
        self._ws.delete_alias(name, alias, project=self._p(project))

    def card(self, ref: str, *, project: str | None = None) -> str:
        """As ``Client.models.card``."""
        return self._ws.model_card(ref, project=self._p(project))

    def verify(self, ref: str, *, project: str | None = None) -> s.BundleVerifyOut:
        """As ``Client.models.verify``."""
        return s.BundleVerifyOut(**self._ws.verify_model(ref, project=self._p(project)))

    def import_(
        self,
        path: str,
        *,
        name: str,
        alias: str | None = None,
        project: str | None = None,
    ) -> s.ModelVersionOut:
        """As ``Client.models.import_``; the directory is read where it lies."""
        version, created = self._ws.import_model(
            str(path), name=name, alias=alias, project=self._p(project)
        )
        return _created(s.ModelVersionOut.from_entity(version), created)

    def export(
        self, ref: str, destination: str | Path, *, project: str | None = None
    ) -> builtins.list[str]:
        """As ``Client.models.export``."""
        return self._ws.export_model(ref, Path(destination), project=self._p(project))

    def attachments(
        self, ref: str, *, kind: str | None = None, project: str | None = None
    ) -> builtins.list[s.AttachmentOut]:
        """As ``Client.models.attachments``."""
        project = self._p(project)
        version = self._ws.model_version(ref, project=project)
        found = self._ws.store.registry.attachments(project, parse_ref(version.ref), kind=kind)
        return [s.AttachmentOut.from_entity(a) for a in found]

    def report(
        self, ref: str, report: str, *, fmt: str = "html", project: str | None = None
    ) -> bytes:
        """As ``Client.models.report``."""
        found = self._ws.evaluations(ref, project=self._p(project))
        chosen = next((a for a in found if a.name == report), None)
        if chosen is None:
            known = ", ".join(a.name for a in found) or "none"
            raise NotFound(
                f"model {ref} has no evaluation report {report!r} (reports: {known}); "
                f"create one with 'aimass evaluate {ref} --dataset NAME'"
            )
        return self._ws.report_file(chosen, fmt=fmt).read_bytes()

    def delete_version(
        self, name: str, version: int, *, project: str | None = None
    ) -> s.ModelVersionOut:
        """As ``Client.models.delete_version``."""
        deleted = self._ws.delete_version(name, version, project=self._p(project))
        return s.ModelVersionOut.from_entity(deleted)


class LocalJobs(_Local):
    """``local.jobs`` (as ``Client.jobs``); ``wait`` runs a queued job here."""

    def submit_training(
        self,
        *,
        dataset: str,
        model: str,
        base: str | None = None,
        config: dict[str, Any] | None = None,
        alias: str | None = None,
        reuse: bool = False,
        privacy: dict[str, Any] | None = None,
        project: str | None = None,
    ) -> s.JobOut:
        """As ``Client.jobs.submit_training``."""
        from aimass.jobs.train import TrainSpec

        spec = TrainSpec(
            dataset=dataset,
            base=base,
            model=model,
            config=config or {},
            alias=alias,
            privacy=privacy,
        )
        job = self._ws.submit_training(spec, project=self._p(project), reuse=reuse)
        return s.JobOut.from_entity(job)

    def submit_batch_predict(
        self,
        *,
        model: str,
        dataset: str,
        output: str,
        split: str | None = None,
        project: str | None = None,
    ) -> s.JobOut:
        """As ``Client.jobs.submit_batch_predict``."""
        from aimass.jobs.batch import BatchPredictSpec

        spec = BatchPredictSpec(model=model, dataset=dataset, output=output, split=split)
        return s.JobOut.from_entity(self._ws.submit_batch_predict(spec, project=self._p(project)))

    def submit_evaluation(
        self,
        *,
        model: str,
        dataset: str,
        split: str = "test",
        group_field: str | None = None,
        options: dict[str, Any] | None = None,
        project: str | None = None,
    ) -> s.JobOut:
        """As ``Client.jobs.submit_evaluation``."""
        from aimass.jobs.evaluate import EvaluateSpec

        spec = EvaluateSpec(
            model=model,
            dataset=dataset,
            split=split,
            group_field=group_field,
            options=options or {},
        )
        return s.JobOut.from_entity(self._ws.submit_evaluation(spec, project=self._p(project)))

    def list(
        self,
        *,
        status: str | None = None,
        kind: str | None = None,
        limit: int = 100,
        project: str | None = None,
    ) -> list[s.JobOut]:
        """As ``Client.jobs.list``."""
        found = self._ws.jobs(project=self._p(project), status=status, kind=kind, limit=limit)
        return [s.JobOut.from_entity(j) for j in found]

    def get(self, job_id: str, *, project: str | None = None) -> s.JobOut:
        """As ``Client.jobs.get``."""
        return s.JobOut.from_entity(self._ws.job(job_id, project=self._p(project)))

    def logs(
        self, job_id: str, *, after: int = 0, project: str | None = None
    ) -> builtins.list[s.JobLogLineOut]:
        """As ``Client.jobs.logs``."""
        lines = self._ws.job_logs(job_id, project=self._p(project), after=after)
        return [s.JobLogLineOut.from_entity(line) for line in lines]

    def cancel(self, job_id: str, *, project: str | None = None) -> s.JobOut:
        """As ``Client.jobs.cancel``."""
        return s.JobOut.from_entity(self._ws.cancel_job(job_id, project=self._p(project)))

    def results(
        self,
        job_id: str,
        destination: str | Path = ".",
        *,
        fmt: str = "parquet",
        project: str | None = None,
    ) -> Path:
        """As ``Client.jobs.results``."""
        from aimass.workspace.results import write_job_results

        return write_job_results(
            self._ws, job_id, Path(destination), project=self._p(project), fmt=fmt
        )

    def wait(
        self,
        job_id: str,
        *,
        progress: Callable[[s.JobOut], None] | None = None,
        poll: float = 1.0,
        timeout: float | None = None,
        project: str | None = None,
    ) -> s.JobOut:
        """As ``Client.jobs.wait``. A queued job is run in this process first, unless
        this workspace's worker threads are running (then they take it)."""
        project = self._p(project)
        queued = self._ws.job(job_id, project=project).status == JobStatus.QUEUED
        if queued and not self._ws.workers_running:
            self._ws.run_job(job_id)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            job = self.get(job_id, project=project)
            if progress is not None:
                progress(job)
            if job.finished:
                if job.status == "failed":
                    raise JobFailed(f"job {job.id} failed: {job.error}", job_id=job.id)
                return job
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {job.status} after {timeout} s")
            time.sleep(poll)


def _key_details(key: s.ApiKeyOut) -> dict[str, Any]:
    return {
        "key_id": key.id,
        "scopes": key.scopes,
        "predict_budget": key.predict_budget,
        "output_policy": key.output_policy,
        "limits": key.limits,
    }


class LocalKeys(_Local):
    """``local.keys`` (as ``Client.keys``); changes are audited as the server does.

    ``project=ALL_PROJECTS`` (``"*"``) works on all-projects keys: ``create`` makes
    one, ``list`` lists every key, ``get``/``update``/``revoke`` find a key of any
    project.
    """

    def _scope(self, project: str | None) -> str | None:
        return None if project == ALL_PROJECTS else self._p(project)

    def create(
        self,
        name: str,
        *,
        scopes: Sequence[str],
        expires_in_days: float | None = None,
        predict_budget: int | None = None,
        output_policy: str | None = None,
        limits: Mapping[str, int | str] | None = None,
        project: str | None = None,
    ) -> s.KeyCreated:
        """As ``Client.keys.create``."""
        record, key = self._ws.keys.create(
            name,
            project=self._scope(project),
            scopes=list(scopes),
            expires_in_days=expires_in_days,
            created_by=local_principal().actor,
            predict_budget=predict_budget,
            output_policy=output_policy,
            limits=dict(limits or {}),
        )
        out = s.ApiKeyOut.from_entity(record)
        self._client.record("keys.create", out.project, f"keys/{out.id}", _key_details(out))
        return s.KeyCreated(key=key, record=out)

    def list(self, *, project: str | None = None) -> list[s.ApiKeyOut]:
        """As ``Client.keys.list``."""
        return [
            s.ApiKeyOut.from_entity(k) for k in self._ws.keys.list(project=self._scope(project))
        ]

    def get(self, key_id: str, *, project: str | None = None) -> s.ApiKeyOut:
        """As ``Client.keys.get``."""
        return s.ApiKeyOut.from_entity(
            self._ws.store.keys.get(key_id, project=self._scope(project))
        )

    def update(
        self,
        key_id: str,
        *,
        predict_budget: int | str | None = None,
        output_policy: str | None = None,
        limits: Mapping[str, int | str | None] | None = None,
        project: str | None = None,
    ) -> s.ApiKeyOut:
        """As ``Client.keys.update``."""
        from aimass.client._wire import key_changes

        changes = key_changes(predict_budget, output_policy, limits)
        updated = self._ws.keys.update(key_id, changes, project=self._scope(project))
        out = s.ApiKeyOut.from_entity(updated)
        details = {**_key_details(out), "changed": sorted(changes)}
        self._client.record("keys.update", out.project, f"keys/{out.id}", details)
        return out

    def revoke(self, key_id: str, *, project: str | None = None) -> s.ApiKeyOut:
        """As ``Client.keys.revoke``."""
        return s.ApiKeyOut.from_entity(self._ws.keys.revoke(key_id, project=self._scope(project)))


class LocalProjects(_Local):
    """``local.projects`` (as ``Client.projects``)."""

    def list(self) -> list[s.ProjectOut]:
        """As ``Client.projects.list``."""
        return [s.ProjectOut.from_entity(p) for p in self._ws.projects()]

    def create(self, name: str, *, description: str = "") -> s.ProjectOut:
        """As ``Client.projects.create``."""
        return s.ProjectOut.from_entity(self._ws.create_project(name, description=description))

    def get(self, name: str) -> s.ProjectOut:
        """As ``Client.projects.get``."""
        return s.ProjectOut.from_entity(self._ws.store.projects.get(name))

    def set_limits(self, name: str, limits: Mapping[str, int | str | None]) -> s.ProjectOut:
        """As ``Client.projects.set_limits``."""
        out = s.ProjectOut.from_entity(self._ws.limits.set_project_limits(name, dict(limits)))
        details = {"limits": out.limits, "changed": sorted(limits)}
        self._client.record("projects.update", name, f"projects/{name}", details)
        return out


class LocalAudit(_Local):
    """``local.audit`` (as ``Client.audit``)."""

    def list(
        self,
        *,
        project: str | None = None,
        action: str | None = None,
        before: int | None = None,
        limit: int = 100,
    ) -> list[s.AuditEventOut]:
        """As ``Client.audit.list`` (``project=None``: every project)."""
        found = self._ws.audit.list(project=project, action=action, before=before, limit=limit)
        return [s.AuditEventOut.from_entity(e) for e in found]

    def verify(self) -> s.AuditVerifyOut:
        """As ``Client.audit.verify``."""
        r = self._ws.audit.verify()
        return s.AuditVerifyOut(ok=r.ok, rows=r.rows, head_seq=r.head_seq, problems=r.problems)


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

    def predict(
        self,
        ref: str,
        inputs: Sequence[str],
        *,
        explain: bool | str | None = None,
        project: str | None = None,
    ) -> list[dict[str, Any]]:
        """As ``Client.predict``."""
        return self.workspace.predict(ref, inputs, project=project or self.project, explain=explain)

    def predict_full(
        self,
        ref: str,
        inputs: Sequence[str],
        *,
        explain: bool | str | None = None,
        project: str | None = None,
    ) -> s.PredictResponse:
        """As ``Client.predict_full``."""
        version = self.workspace.model_version(ref, project=project or self.project)
        pinned = f"{version.name}@{version.version}"
        predictions = self.predict(pinned, inputs, explain=explain, project=project)
        return s.PredictResponse(
            model=version.name, version=version.version, predictions=predictions
        )

    def generate(
        self, ref: str, prompt: str, *, project: str | None = None, **options: Any
    ) -> dict[str, Any]:
        """As ``Client.generate``."""
        return self.workspace.generate(ref, prompt, project=project or self.project, **options)

    def generate_stream(
        self, ref: str, prompt: str, *, project: str | None = None, **options: Any
    ) -> Iterator[dict[str, Any]]:
        """As ``Client.generate_stream``."""
        return self.workspace.generate_stream(
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
