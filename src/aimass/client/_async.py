"""The namespaces of :class:`aimass.AsyncClient`: those of :class:`aimass.Client`, awaited.

Each method has the signature of its synchronous twin (the operations contract in
:mod:`aimass.operations`, checked by ``tests/test_operations_contract.py``) and
sends the same request; the docstrings are on the synchronous side.
"""

from __future__ import annotations

import asyncio
import builtins
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aimass.client._download import download_async
from aimass.client._export import download_bundle_async
from aimass.client._transport import path
from aimass.client._wire import (
    T,
    job_outcome,
    key_changes,
    key_create_body,
    parse,
    version_path,
)
from aimass.schemas import (
    ApiKeyOut,
    AttachmentOut,
    AuditEventOut,
    AuditVerifyOut,
    BundleVerifyOut,
    JobLogLineOut,
    JobOut,
    KeyCreated,
    ModelVersionOut,
    ProjectOut,
    RegisteredModelOut,
)

if TYPE_CHECKING:
    from aimass.client._client import AsyncClient


class _AsyncResource:
    def __init__(self, client: AsyncClient) -> None:
        self._c = client

    async def _get(self, kind: type[T], template: str, project: str | None, **kw: Any) -> T:
        params = kw.pop("params", None)
        url = self._c._p(template, project, **kw)
        return parse(kind, await self._c.request("GET", url, params=params))

    async def _send(
        self,
        method: str,
        kind: type[T],
        template: str,
        project: str | None,
        body: Any = None,
        **kw: Any,
    ) -> T:
        url = self._c._p(template, project, **kw)
        return parse(kind, await self._c.request(method, url, json=body))


class AsyncModels(_AsyncResource):
    """``async_client.models`` (as ``Client.models``)."""

    async def list(self, *, project: str | None = None) -> list[RegisteredModelOut]:
        """As ``Client.models.list``."""
        return await self._get(list[RegisteredModelOut], "/models", project)

    async def versions(
        self, name: str, *, project: str | None = None
    ) -> builtins.list[ModelVersionOut]:
        """As ``Client.models.versions``."""
        return await self._get(list[ModelVersionOut], "/models/{n}/versions", project, n=name)

    async def get(self, ref: str, *, project: str | None = None) -> ModelVersionOut:
        """As ``Client.models.get``."""
        template = "/models/{n}/versions/{s}"
        return await self._get(ModelVersionOut, template, project, **version_path(ref))

    async def set_alias(
        self, name: str, alias: str, version: int, *, project: str | None = None
    ) -> ModelVersionOut:
        """As ``Client.models.set_alias``."""
        body = {"version": version}
        template = "/models/{n}/aliases/{a}"
        return await self._send("PUT", ModelVersionOut, template, project, body, n=name, a=alias)

    async def delete_alias(self, name: str, alias: str, *, project: str | None = None) -> None:
        """As ``Client.models.delete_alias``."""
        url = self._c._p("/models/{n}/aliases/{a}", project, n=name, a=alias)
        await self._c.request("DELETE", url)

    async def card(self, ref: str, *, project: str | None = None) -> str:
        """As ``Client.models.card``."""
        url = self._c._p("/models/{n}/versions/{s}/card", project, **version_path(ref))
        return str(await self._c.request("GET", url))

    async def verify(self, ref: str, *, project: str | None = None) -> BundleVerifyOut:
        """As ``Client.models.verify``."""
        template = "/models/{n}/versions/{s}/verify"
        return await self._get(BundleVerifyOut, template, project, **version_path(ref))

    async def import_(
        self,
        path: str,
        *,
        name: str,
        alias: str | None = None,
        project: str | None = None,
    ) -> ModelVersionOut:
        """As ``Client.models.import_``."""
        body = {"path": path, "name": name, "alias": alias}
        return await self._send("POST", ModelVersionOut, "/models", project, body)

    async def export(
        self, ref: str, destination: str | Path, *, project: str | None = None
    ) -> builtins.list[str]:
        """As ``Client.models.export``."""
        url = self._c._p("/models/{n}/versions/{s}/export", project, **version_path(ref))
        return await download_bundle_async(
            self._c._http, url, Path(destination), server=self._c.url
        )

    async def attachments(
        self, ref: str, *, kind: str | None = None, project: str | None = None
    ) -> builtins.list[AttachmentOut]:
        """As ``Client.models.attachments``."""
        template = "/models/{n}/versions/{s}/attachments"
        return await self._get(
            list[AttachmentOut], template, project, params={"kind": kind}, **version_path(ref)
        )

    async def report(
        self, ref: str, report: str, *, fmt: str = "html", project: str | None = None
    ) -> bytes:
        """As ``Client.models.report``."""
        template = "/models/{n}/versions/{s}/reports/{r}/report.{f}"
        url = self._c._p(template, project, r=report, f=fmt, **version_path(ref))
        return await self._c.request_bytes("GET", url)

    async def delete_version(
        self, name: str, version: int, *, project: str | None = None
    ) -> ModelVersionOut:
        """As ``Client.models.delete_version``."""
        template = "/models/{n}/versions/{v}"
        return await self._send("DELETE", ModelVersionOut, template, project, n=name, v=version)


class AsyncJobs(_AsyncResource):
    """``async_client.jobs`` (as ``Client.jobs``)."""

    async def submit_training(
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
    ) -> JobOut:
        """As ``Client.jobs.submit_training``."""
        body = {
            "kind": "train",
            "dataset": dataset,
            "base": base,
            "model": model,
            "config": config or {},
            "alias": alias,
            "reuse": reuse,
            "privacy": privacy,
        }
        return await self._send("POST", JobOut, "/jobs", project, body)

    async def submit_batch_predict(
        self,
        *,
        model: str,
        dataset: str,
        output: str,
        split: str | None = None,
        project: str | None = None,
    ) -> JobOut:
        """As ``Client.jobs.submit_batch_predict``."""
        body = {
            "kind": "batch-predict",
            "model": model,
            "dataset": dataset,
            "output": output,
            "split": split,
        }
        return await self._send("POST", JobOut, "/jobs", project, body)

    async def submit_evaluation(
        self,
        *,
        model: str | None = None,
        dataset: str,
        split: str = "test",
        group_field: str | None = None,
        options: dict[str, Any] | None = None,
        pipeline: str | None = None,
        project: str | None = None,
    ) -> JobOut:
        """As ``Client.jobs.submit_evaluation``."""
        body = {
            "kind": "evaluate",
            "model": model,
            "dataset": dataset,
            "split": split,
            "group_field": group_field,
            "options": options or {},
            "pipeline": pipeline,
        }
        return await self._send("POST", JobOut, "/jobs", project, body)

    async def submit_optimization(
        self,
        *,
        model: str,
        dataset: str | None = None,
        split: str = "test",
        threshold: float = 0.5,
        project: str | None = None,
    ) -> JobOut:
        """As ``Client.jobs.submit_optimization``."""
        body = {
            "kind": "optimize",
            "model": model,
            "dataset": dataset,
            "split": split,
            "threshold": threshold,
        }
        return await self._send("POST", JobOut, "/jobs", project, body)

    async def submit_audit(
        self,
        *,
        model: str,
        dataset: str,
        max_examples: int = 1000,
        calibrated: bool = True,
        project: str | None = None,
    ) -> JobOut:
        """As ``Client.jobs.submit_audit``."""
        body = {
            "kind": "audit-privacy",
            "model": model,
            "dataset": dataset,
            "max_examples": max_examples,
            "calibrated": calibrated,
        }
        return await self._send("POST", JobOut, "/jobs", project, body)

    async def list(
        self,
        *,
        status: str | None = None,
        kind: str | None = None,
        limit: int = 100,
        project: str | None = None,
    ) -> list[JobOut]:
        """As ``Client.jobs.list``."""
        params = {"status": status, "kind": kind, "limit": limit}
        return await self._get(list[JobOut], "/jobs", project, params=params)

    async def get(self, job_id: str, *, project: str | None = None) -> JobOut:
        """As ``Client.jobs.get``."""
        return await self._get(JobOut, "/jobs/{j}", project, j=job_id)

    async def logs(
        self, job_id: str, *, after: int = 0, project: str | None = None
    ) -> builtins.list[JobLogLineOut]:
        """As ``Client.jobs.logs``."""
        params = {"after": after}
        return await self._get(
            list[JobLogLineOut], "/jobs/{j}/logs", project, j=job_id, params=params
        )

    async def cancel(self, job_id: str, *, project: str | None = None) -> JobOut:
        """As ``Client.jobs.cancel``."""
        return await self._send("POST", JobOut, "/jobs/{j}:cancel", project, j=job_id)

    async def results(
        self,
        job_id: str,
        destination: str | Path = ".",
        *,
        fmt: str = "parquet",
        project: str | None = None,
    ) -> Path:
        """As ``Client.jobs.results``."""
        url = self._c._p("/jobs/{j}/results", project, j=job_id)
        return await download_async(
            self._c._http, url, Path(destination), params={"format": fmt}, server=self._c.url
        )

    async def wait(
        self,
        job_id: str,
        *,
        progress: Callable[[JobOut], None] | None = None,
        poll: float = 1.0,
        timeout: float | None = None,
        project: str | None = None,
    ) -> JobOut:
        """As ``Client.jobs.wait``; sleeps without blocking the event loop."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            job = await self.get(job_id, project=project)
            if progress is not None:
                progress(job)
            if job.finished:
                return job_outcome(job)
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {job.status} after {timeout} s")
            await asyncio.sleep(poll)


class AsyncKeys(_AsyncResource):
    """``async_client.keys`` (as ``Client.keys``)."""

    async def create(
        self,
        name: str,
        *,
        scopes: Sequence[str],
        expires_in_days: float | None = None,
        predict_budget: int | None = None,
        output_policy: str | None = None,
        limits: Mapping[str, int | str] | None = None,
        project: str | None = None,
    ) -> KeyCreated:
        """As ``Client.keys.create``."""
        body = key_create_body(name, scopes, expires_in_days, predict_budget, output_policy, limits)
        return await self._send("POST", KeyCreated, "/keys", project, body)

    async def list(self, *, project: str | None = None) -> list[ApiKeyOut]:
        """As ``Client.keys.list``."""
        return await self._get(list[ApiKeyOut], "/keys", project)

    async def get(self, key_id: str, *, project: str | None = None) -> ApiKeyOut:
        """As ``Client.keys.get``."""
        return await self._get(ApiKeyOut, "/keys/{k}", project, k=key_id)

    async def update(
        self,
        key_id: str,
        *,
        predict_budget: int | str | None = None,
        output_policy: str | None = None,
        limits: Mapping[str, int | str | None] | None = None,
        project: str | None = None,
    ) -> ApiKeyOut:
        """As ``Client.keys.update``."""
        body = key_changes(predict_budget, output_policy, limits)
        return await self._send("PATCH", ApiKeyOut, "/keys/{k}", project, body, k=key_id)

    async def revoke(self, key_id: str, *, project: str | None = None) -> ApiKeyOut:
        """As ``Client.keys.revoke``."""
        return await self._send("DELETE", ApiKeyOut, "/keys/{k}", project, k=key_id)


class AsyncProjects(_AsyncResource):
    """``async_client.projects`` (as ``Client.projects``)."""

    async def list(self) -> list[ProjectOut]:
        """As ``Client.projects.list``."""
        return parse(list[ProjectOut], await self._c.request("GET", "/v1/projects"))

    async def create(self, name: str, *, description: str = "") -> ProjectOut:
        """As ``Client.projects.create``."""
        body = {"name": name, "description": description}
        return parse(ProjectOut, await self._c.request("POST", "/v1/projects", json=body))

    async def get(self, name: str) -> ProjectOut:
        """As ``Client.projects.get``."""
        return parse(ProjectOut, await self._c.request("GET", path("/v1/projects/{p}", p=name)))

    async def set_limits(self, name: str, limits: Mapping[str, int | str | None]) -> ProjectOut:
        """As ``Client.projects.set_limits``."""
        url = path("/v1/projects/{p}", p=name)
        body = {"limits": dict(limits)}
        return parse(ProjectOut, await self._c.request("PATCH", url, json=body))


class AsyncAudit(_AsyncResource):
    """``async_client.audit`` (as ``Client.audit``)."""

    async def list(
        self,
        *,
        project: str | None = None,
        action: str | None = None,
        before: int | None = None,
        limit: int = 100,
    ) -> list[AuditEventOut]:
        """As ``Client.audit.list``."""
        params = {"project": project, "action": action, "before": before, "limit": limit}
        return parse(list[AuditEventOut], await self._c.request("GET", "/v1/audit", params=params))

    async def verify(self) -> AuditVerifyOut:
        """As ``Client.audit.verify``."""
        return parse(AuditVerifyOut, await self._c.request("GET", "/v1/audit:verify"))
