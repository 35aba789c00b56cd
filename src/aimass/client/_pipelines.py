"""The ``pipelines`` namespace of :class:`aimass.Client` and :class:`aimass.AsyncClient`."""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from typing import Any

from aimass.client._async import _AsyncResource
from aimass.client._resources import _Resource
from aimass.client._wire import predict_body, version_path
from aimass.schemas import PipelinePredictResponse, PipelineVersionOut

_REPORT = "/pipelines/{n}/versions/{s}/reports/{r}/report.{f}"
_ALIAS = "/pipelines/{n}/aliases/{a}"
_VERSION = "/pipelines/{n}/versions/{v}"


def _create_body(spec: Mapping[str, Any], name: str, description: str) -> dict[str, Any]:
    return {"name": name, "spec": dict(spec), "description": description}


class _Pipelines(_Resource):
    """``client.pipelines``: create, list, get, versions, set_alias, delete_alias,
    delete_version, predict, report."""

    def create(
        self,
        spec: Mapping[str, Any],
        *,
        name: str,
        description: str = "",
        project: str | None = None,
    ) -> PipelineVersionOut:
        """Send a spec (``{"steps": [...]}``); the server checks it, pins its models
        (aliases resolved now) and answers the new version (``created: false`` when the
        same pinned spec already was one). Every problem comes back in one InvalidArgument.
        """
        body = _create_body(spec, name, description)
        return self._send("POST", PipelineVersionOut, "/pipelines", project, body)

    def list(self, *, project: str | None = None) -> list[PipelineVersionOut]:
        """The latest version of every pipeline."""
        return self._get(list[PipelineVersionOut], "/pipelines", project)

    def get(self, ref: str, *, project: str | None = None) -> PipelineVersionOut:
        """``NAME`` (latest), ``NAME@VERSION`` or ``NAME@ALIAS``."""
        template = "/pipelines/{n}/versions/{s}"
        return self._get(PipelineVersionOut, template, project, **version_path(ref))

    def versions(
        self, name: str, *, project: str | None = None
    ) -> builtins.list[PipelineVersionOut]:
        """Every version of ``name``, oldest first."""
        return self._get(list[PipelineVersionOut], "/pipelines/{n}/versions", project, n=name)

    def set_alias(
        self, name: str, alias: str, version: int, *, project: str | None = None
    ) -> PipelineVersionOut:
        """Point ``alias`` at ``version``."""
        template = "/pipelines/{n}/aliases/{a}"
        body = {"version": version}
        return self._send("PUT", PipelineVersionOut, template, project, body, n=name, a=alias)

    def delete_alias(self, name: str, alias: str, *, project: str | None = None) -> None:
        """Remove ``alias`` from pipeline ``name``."""
        self._c.request("DELETE", self._c._p(_ALIAS, project, n=name, a=alias))

    def delete_version(
        self, name: str, version: int, *, project: str | None = None
    ) -> PipelineVersionOut:
        """Delete a version no alias points at (Conflict naming the aliases otherwise)."""
        return self._send("DELETE", PipelineVersionOut, _VERSION, project, None, n=name, v=version)

    def predict(
        self,
        ref: str,
        inputs: Sequence[str],
        *,
        explain: bool | str | None = None,
        project: str | None = None,
    ) -> PipelinePredictResponse:
        """Run pipeline ``ref`` over ``inputs``: per input the final ``label`` (``abstain``
        when a threshold abstained), ``score``, ``probabilities``, ``decided_by`` and the
        ``trace``; with ``explain``, the deciding model's ``explanation``."""
        body = predict_body(inputs, explain)
        template = "/pipelines/{r}:predict"
        return self._send("POST", PipelinePredictResponse, template, project, body, r=ref)

    def report(
        self, ref: str, report: str, *, fmt: str = "html", project: str | None = None
    ) -> bytes:
        """Evaluation report ``report`` of pipeline version ``ref``: ``report.html`` (or
        ``report.json``) as bytes (its name is a key of the version's ``evaluations``)."""
        url = self._c._p(_REPORT, project, r=report, f=fmt, **version_path(ref))
        return self._c.request_bytes("GET", url)


class AsyncPipelines(_AsyncResource):
    """``async_client.pipelines`` (as ``Client.pipelines``)."""

    async def create(
        self,
        spec: Mapping[str, Any],
        *,
        name: str,
        description: str = "",
        project: str | None = None,
    ) -> PipelineVersionOut:
        """As ``Client.pipelines.create``."""
        body = _create_body(spec, name, description)
        return await self._send("POST", PipelineVersionOut, "/pipelines", project, body)

    async def list(self, *, project: str | None = None) -> list[PipelineVersionOut]:
        """As ``Client.pipelines.list``."""
        return await self._get(list[PipelineVersionOut], "/pipelines", project)

    async def get(self, ref: str, *, project: str | None = None) -> PipelineVersionOut:
        """As ``Client.pipelines.get``."""
        template = "/pipelines/{n}/versions/{s}"
        return await self._get(PipelineVersionOut, template, project, **version_path(ref))

    async def versions(
        self, name: str, *, project: str | None = None
    ) -> builtins.list[PipelineVersionOut]:
        """As ``Client.pipelines.versions``."""
        return await self._get(list[PipelineVersionOut], "/pipelines/{n}/versions", project, n=name)

    async def set_alias(
        self, name: str, alias: str, version: int, *, project: str | None = None
    ) -> PipelineVersionOut:
        """As ``Client.pipelines.set_alias``."""
        template = "/pipelines/{n}/aliases/{a}"
        body = {"version": version}
        return await self._send("PUT", PipelineVersionOut, template, project, body, n=name, a=alias)

    async def delete_alias(self, name: str, alias: str, *, project: str | None = None) -> None:
        """As ``Client.pipelines.delete_alias``."""
        await self._c.request("DELETE", self._c._p(_ALIAS, project, n=name, a=alias))

    async def delete_version(
        self, name: str, version: int, *, project: str | None = None
    ) -> PipelineVersionOut:
        """As ``Client.pipelines.delete_version``."""
        return await self._send("DELETE", PipelineVersionOut, _VERSION, project, n=name, v=version)

    async def predict(
        self,
        ref: str,
        inputs: Sequence[str],
        *,
        explain: bool | str | None = None,
        project: str | None = None,
    ) -> PipelinePredictResponse:
        """As ``Client.pipelines.predict``."""
        body = predict_body(inputs, explain)
        template = "/pipelines/{r}:predict"
        return await self._send("POST", PipelinePredictResponse, template, project, body, r=ref)

    async def report(
        self, ref: str, report: str, *, fmt: str = "html", project: str | None = None
    ) -> bytes:
        """As ``Client.pipelines.report``."""
        url = self._c._p(_REPORT, project, r=report, f=fmt, **version_path(ref))
        return await self._c.request_bytes("GET", url)
