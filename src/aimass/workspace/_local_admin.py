"""The job, pipeline and administration namespaces of
:class:`~aimass.workspace.local.LocalClient`: jobs, pipelines, keys, projects, audit (each
method as its ``Client`` twin)."""

from __future__ import annotations

import builtins
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from aimass import schemas as s
from aimass.entities import JobStatus
from aimass.operations import ALL_PROJECTS, key_changes, wait_for
from aimass.workspace._local_data import _Local
from aimass.workspace.access import local_principal

__all__ = ["LocalAudit", "LocalJobs", "LocalKeys", "LocalPipelines", "LocalProjects"]


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
        job = self._ws.jobs.submit_training(spec, project=self._p(project), reuse=reuse)
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
        return s.JobOut.from_entity(
            self._ws.jobs.submit_batch_predict(spec, project=self._p(project))
        )

    def submit_evaluation(
        self,
        *,
        model: str | None = None,
        dataset: str,
        split: str = "test",
        group_field: str | None = None,
        options: dict[str, Any] | None = None,
        pipeline: str | None = None,
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
            pipeline=pipeline,
        )
        return s.JobOut.from_entity(self._ws.jobs.submit_evaluation(spec, project=self._p(project)))

    def submit_optimization(
        self,
        *,
        model: str,
        dataset: str | None = None,
        split: str = "test",
        threshold: float = 0.5,
        project: str | None = None,
    ) -> s.JobOut:
        """As ``Client.jobs.submit_optimization``."""
        from aimass.jobs.optimize import OptimizeSpec

        spec = OptimizeSpec(model=model, dataset=dataset, split=split, threshold=threshold)
        return s.JobOut.from_entity(
            self._ws.jobs.submit_optimization(spec, project=self._p(project))
        )

    def submit_audit(
        self,
        *,
        model: str,
        dataset: str,
        max_examples: int = 1000,
        calibrated: bool = True,
        project: str | None = None,
    ) -> s.JobOut:
        """As ``Client.jobs.submit_audit``."""
        from aimass.jobs.audit import AuditSpec

        spec = AuditSpec(
            model=model, dataset=dataset, max_examples=max_examples, calibrated=calibrated
        )
        return s.JobOut.from_entity(self._ws.jobs.submit_audit(spec, project=self._p(project)))

    def list(
        self,
        *,
        status: str | None = None,
        kind: str | None = None,
        limit: int = 100,
        project: str | None = None,
    ) -> list[s.JobOut]:
        """As ``Client.jobs.list``."""
        found = self._ws.jobs.list(project=self._p(project), status=status, kind=kind, limit=limit)
        return [s.JobOut.from_entity(j) for j in found]

    def get(self, job_id: str, *, project: str | None = None) -> s.JobOut:
        """As ``Client.jobs.get``."""
        return s.JobOut.from_entity(self._ws.jobs.get(job_id, project=self._p(project)))

    def logs(
        self, job_id: str, *, after: int = 0, project: str | None = None
    ) -> builtins.list[s.JobLogLineOut]:
        """As ``Client.jobs.logs``."""
        lines = self._ws.jobs.logs(job_id, project=self._p(project), after=after)
        return [s.JobLogLineOut.from_entity(line) for line in lines]

    def cancel(self, job_id: str, *, project: str | None = None) -> s.JobOut:
        """As ``Client.jobs.cancel``."""
        return s.JobOut.from_entity(self._ws.jobs.cancel(job_id, project=self._p(project)))

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
        queued = self._ws.jobs.get(job_id, project=project).status == JobStatus.QUEUED
        if queued and not self._ws.jobs.workers_running:
            self._ws.jobs.run(job_id)
        return wait_for(
            lambda: self.get(job_id, project=project),
            progress=progress,
            poll=poll,
            timeout=timeout,
        )


class LocalPipelines(_Local):
    """``local.pipelines`` (as ``Client.pipelines``); creating and moving aliases are
    audited as the server audits them."""

    def create(
        self,
        spec: Mapping[str, Any],
        *,
        name: str,
        description: str = "",
        project: str | None = None,
    ) -> s.PipelineVersionOut:
        """As ``Client.pipelines.create``."""
        project = self._p(project)
        version, created = self._ws.pipelines.create(
            dict(spec),
            name=name,
            description=description,
            created_by=local_principal().actor,
            project=project,
        )
        out = s.PipelineVersionOut.from_entity(version).model_copy(update={"created": created})
        details = {"ref": out.name + f"@{out.version}", "created": created, "models": out.models}
        self._client.record("pipelines.create", project, f"pipelines/{name}", details)
        return out

    def list(self, *, project: str | None = None) -> list[s.PipelineVersionOut]:
        """As ``Client.pipelines.list``."""
        found = self._ws.pipelines.list(project=self._p(project))
        return [s.PipelineVersionOut.from_entity(p) for p in found]

    def get(self, ref: str, *, project: str | None = None) -> s.PipelineVersionOut:
        """As ``Client.pipelines.get``."""
        return s.PipelineVersionOut.from_entity(
            self._ws.pipelines.get(ref, project=self._p(project))
        )

    def versions(
        self, name: str, *, project: str | None = None
    ) -> builtins.list[s.PipelineVersionOut]:
        """As ``Client.pipelines.versions``."""
        found = self._ws.pipelines.versions(name, project=self._p(project))
        return [s.PipelineVersionOut.from_entity(p) for p in found]

    def set_alias(
        self, name: str, alias: str, version: int, *, project: str | None = None
    ) -> s.PipelineVersionOut:
        """As ``Client.pipelines.set_alias``."""
        project = self._p(project)
        moved = self._ws.pipelines.set_alias(name, alias, version, project=project)
        details = {"alias": alias, "version": version}
        self._client.record("pipelines.set_alias", project, f"pipelines/{name}", details)
        return s.PipelineVersionOut.from_entity(moved)

    def predict(
        self,
        ref: str,
        inputs: Sequence[str],
        *,
        explain: bool | str | None = None,
        project: str | None = None,
    ) -> s.PipelinePredictResponse:
        """As ``Client.pipelines.predict`` (the models run in this process)."""
        version, run = self._ws.pipelines.predict(
            ref, inputs, project=self._p(project), explain=explain
        )
        return s.PipelinePredictResponse(
            pipeline=version.name, version=version.version, predictions=run.results
        )

    def delete_alias(self, name: str, alias: str, *, project: str | None = None) -> None:
        """As ``Client.pipelines.delete_alias``."""
        project = self._p(project)
        self._ws.pipelines.delete_alias(name, alias, project=project)
        details = {"alias": alias}
        self._client.record("pipelines.delete_alias", project, f"pipelines/{name}", details)

    def delete_version(
        self, name: str, version: int, *, project: str | None = None
    ) -> s.PipelineVersionOut:
        """As ``Client.pipelines.delete_version``."""
        project = self._p(project)
        deleted = self._ws.pipelines.delete_version(name, version, project=project)
        details = {"version": version}
        self._client.record("pipelines.delete_version", project, f"pipelines/{name}", details)
        return s.PipelineVersionOut.from_entity(deleted)

    def report(
        self, ref: str, report: str, *, fmt: str = "html", project: str | None = None
    ) -> bytes:
        """As ``Client.pipelines.report``."""
        path = self._ws.pipelines.report_file(ref, report, fmt=fmt, project=self._p(project))
        return path.read_bytes()


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
        return s.ApiKeyOut.from_entity(self._ws.keys.get(key_id, project=self._scope(project)))

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
        return [s.ProjectOut.from_entity(p) for p in self._ws.projects.list()]

    def create(self, name: str, *, description: str = "") -> s.ProjectOut:
        """As ``Client.projects.create``."""
        return s.ProjectOut.from_entity(self._ws.projects.create(name, description=description))

    def get(self, name: str) -> s.ProjectOut:
        """As ``Client.projects.get``."""
        return s.ProjectOut.from_entity(self._ws.projects.get(name))

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
