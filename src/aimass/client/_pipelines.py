"""The ``pipelines`` namespace of :class:`aimass.Client` and :class:`aimass.AsyncClient`."""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from typing import Any

from aimass.client._async import _AsyncResource
from aimass.client._resources import _Resource
from aimass.client._wire import version_path
from aimass.schemas import PipelinePredictResponse, PipelineVersionOut


def _create_body(spec: Mapping[str, Any], name: str, description: str) -> dict[str, Any]:
    return {"name": name, "spec": dict(spec), "description": description}


def _predict_body(inputs: Sequence[str], explain: bool | str | None) -> dict[str, Any]:
    body: dict[str, Any] = {"inputs": list(inputs)}
    if explain:
        body["explain"] = explain
    return body


class _Pipelines(_Resource):
    """``client.pipelines``: create, list, get, versions, set_alias, predict."""

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
        body = _predict_body(inputs, explain)
        template = "/pipelines/{r}:predict"
        return self._send("POST", PipelinePredictResponse, template, project, body, r=ref)


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

    async def predict(
        self,
        ref: str,
        inputs: Sequence[str],
        *,
        explain: bool | str | None = None,
        project: str | None = None,
    ) -> PipelinePredictResponse:
        """As ``Client.pipelines.predict``."""
        body = _predict_body(inputs, explain)
        template = "/pipelines/{r}:predict"
        return await self._send("POST", PipelinePredictResponse, template, project, body, r=ref)
