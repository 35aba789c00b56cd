"""The data namespaces of :class:`aimass.AsyncClient`: datasets and bases.

As the rest of :mod:`aimass.client._async`: each method has the signature of its
synchronous twin and sends the same request.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aimass.client._async import _AsyncResource
from aimass.client._wire import parse, upload_body
from aimass.schemas import BaseModelOut, DatasetVersionOut, PackagedBaseOut, SampleOut


class AsyncDatasets(_AsyncResource):
    """``async_client.datasets`` (as ``Client.datasets``)."""

    async def list(self, *, project: str | None = None) -> list[DatasetVersionOut]:
        """As ``Client.datasets.list``."""
        return await self._get(list[DatasetVersionOut], "/datasets", project)

    async def get(self, ref: str, *, project: str | None = None) -> DatasetVersionOut:
        """As ``Client.datasets.get``."""
        name, _, version = ref.partition("@")
        if version and version != "latest":
            template = "/datasets/{n}/versions/{v}"
            return await self._get(DatasetVersionOut, template, project, n=name, v=version)
        return await self._get(DatasetVersionOut, "/datasets/{n}", project, n=name)

    async def versions(
        self, name: str, *, project: str | None = None
    ) -> builtins.list[DatasetVersionOut]:
        """As ``Client.datasets.versions``."""
        return await self._get(list[DatasetVersionOut], "/datasets/{n}/versions", project, n=name)

    async def delete_version(
        self, name: str, version: int, *, project: str | None = None
    ) -> DatasetVersionOut:
        """As ``Client.datasets.delete_version``."""
        template = "/datasets/{n}/versions/{v}"
        return await self._send("DELETE", DatasetVersionOut, template, project, n=name, v=version)

    async def upload(
        self,
        file: str | Path,
        *,
        name: str,
        fmt: str | None = None,
        project: str | None = None,
        **options: Any,
    ) -> DatasetVersionOut:
        """As ``Client.datasets.upload``."""
        body = upload_body(Path(file), name, fmt, options)
        return await self._send("POST", DatasetVersionOut, "/datasets", project, body)

    async def import_path(
        self,
        server_path: str,
        *,
        name: str,
        fmt: str | None = None,
        project: str | None = None,
        **options: Any,
    ) -> DatasetVersionOut:
        """As ``Client.datasets.import_path``."""
        body = {"name": name, "path": server_path, "format": fmt, **options}
        return await self._send("POST", DatasetVersionOut, "/datasets:import", project, body)

    async def import_sample(
        self,
        sample: str,
        *,
        name: str | None = None,
        seed: int = 0,
        deidentify: dict[str, Any] | None = None,
        project: str | None = None,
    ) -> DatasetVersionOut:
        """As ``Client.datasets.import_sample``."""
        body = {"sample": sample, "name": name, "seed": seed, "deidentify": deidentify}
        return await self._send("POST", DatasetVersionOut, "/datasets:import-sample", project, body)

    async def samples(self) -> builtins.list[SampleOut]:
        """As ``Client.datasets.samples``."""
        return parse(list[SampleOut], await self._c.request("GET", "/v1/samples"))


class AsyncBases(_AsyncResource):
    """``async_client.bases`` (as ``Client.bases``)."""

    async def list(self, *, project: str | None = None) -> list[BaseModelOut]:
        """As ``Client.bases.list``."""
        return await self._get(list[BaseModelOut], "/bases", project)

    async def get(self, name: str, *, project: str | None = None) -> BaseModelOut:
        """As ``Client.bases.get``."""
        return await self._get(BaseModelOut, "/bases/{n}", project, n=name)

    async def versions(
        self, name: str, *, project: str | None = None
    ) -> builtins.list[BaseModelOut]:
        """As ``Client.bases.versions``."""
        return await self._get(list[BaseModelOut], "/bases/{n}/versions", project, n=name)

    async def delete_version(
        self, name: str, version: int, *, project: str | None = None
    ) -> BaseModelOut:
        """As ``Client.bases.delete_version``."""
        template = "/bases/{n}/versions/{v}"
        return await self._send("DELETE", BaseModelOut, template, project, n=name, v=version)

    async def packaged(self) -> builtins.list[PackagedBaseOut]:
        """As ``Client.bases.packaged``."""
        return parse(list[PackagedBaseOut], await self._c.request("GET", "/v1/packaged-bases"))

    async def import_(
        self,
        source: str | None = None,
        *,
        path: str | None = None,
        name: str | None = None,
        project: str | None = None,
    ) -> BaseModelOut:
        """As ``Client.bases.import_``."""
        body = {"source": source, "path": path, "name": name}
        return await self._send("POST", BaseModelOut, "/bases", project, body)

    async def from_model(self, ref: str, *, name: str, project: str | None = None) -> BaseModelOut:
        """As ``Client.bases.from_model``."""
        body = {"model": ref, "name": name}
        return await self._send("POST", BaseModelOut, "/bases:from-model", project, body)

    async def shrink(
        self,
        ref: str,
        *,
        name: str,
        layers: int,
        pick: str = "first",
        intermediate_size: int = 0,
        project: str | None = None,
    ) -> BaseModelOut:
        """As ``Client.bases.shrink``."""
        body = {
            "base": ref,
            "name": name,
            "layers": layers,
            "pick": pick,
            "intermediate_size": intermediate_size,
        }
        return await self._send("POST", BaseModelOut, "/bases:shrink", project, body)

    async def train_tokenizer(
        self,
        dataset: str,
        *,
        name: str,
        kind: str = "wordpiece",
        vocab_size: int = 8000,
        min_frequency: int = 2,
        project: str | None = None,
    ) -> BaseModelOut:
        """As ``Client.bases.train_tokenizer``."""
        body = {
            "dataset": dataset,
            "name": name,
            "kind": kind,
            "vocab_size": vocab_size,
            "min_frequency": min_frequency,
        }
        return await self._send("POST", BaseModelOut, "/bases:train-tokenizer", project, body)

    async def create_scratch(
        self,
        name: str,
        *,
        architecture: str,
        tokenizer: str,
        preset: str = "tiny",
        seed: int = 0,
        overrides: Mapping[str, int | float] | None = None,
        project: str | None = None,
    ) -> BaseModelOut:
        """As ``Client.bases.create_scratch``."""
        body = {
            "name": name,
            "architecture": architecture,
            "tokenizer": tokenizer,
            "preset": preset,
            "seed": seed,
            "overrides": dict(overrides or {}),
        }
        return await self._send("POST", BaseModelOut, "/bases:scratch", project, body)
