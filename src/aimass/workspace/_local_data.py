"""The data namespaces of :class:`~aimass.workspace.local.LocalClient`: datasets, bases,
models (each method as its ``Client`` twin, answered by the workspace's services)."""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aimass import schemas as s
from aimass.errors import InvalidArgument, NotFound

if TYPE_CHECKING:
    from aimass.workspace.local import LocalClient


__all__ = ["LocalBases", "LocalDatasets", "LocalModels"]


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
        found = self._ws.datasets.list(project=self._p(project))
        return [s.DatasetVersionOut.from_entity(v) for v in found]

    def get(self, ref: str, *, project: str | None = None) -> s.DatasetVersionOut:
        """As ``Client.datasets.get``."""
        return s.DatasetVersionOut.from_entity(self._ws.datasets.get(ref, project=self._p(project)))

    def versions(
        self, name: str, *, project: str | None = None
    ) -> builtins.list[s.DatasetVersionOut]:
        """As ``Client.datasets.versions``."""
        found = self._ws.datasets.versions(name, project=self._p(project))
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

        version, created = self._ws.datasets.import_file(
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

        version, created = self._ws.datasets.import_sample(
            sample,
            name=name,
            project=self._p(project),
            seed=seed,
            deidentify=DeidentifyOptions.from_fields(deidentify),
        )
        return _created(s.DatasetVersionOut.from_entity(version), created)

    def delete_version(
        self, name: str, version: int, *, project: str | None = None
    ) -> s.DatasetVersionOut:
        """As ``Client.datasets.delete_version``."""
        project = self._p(project)
        deleted = self._ws.datasets.delete_version(name, version, project=project)
        self._client.record(
            "datasets.delete_version", project, f"datasets/{name}", {"version": version}
        )
        return s.DatasetVersionOut.from_entity(deleted)

    def samples(self) -> builtins.list[s.SampleOut]:
        """As ``Client.datasets.samples``."""
        from aimass.data.samples import list_samples

        return [s.SampleOut.from_entity(sample) for sample in list_samples()]


class LocalBases(_Local):
    """``local.bases`` (as ``Client.bases``)."""

    def list(self, *, project: str | None = None) -> list[s.BaseModelOut]:
        """As ``Client.bases.list``."""
        return [
            s.BaseModelOut.from_entity(b) for b in self._ws.bases.list(project=self._p(project))
        ]

    def get(self, name: str, *, project: str | None = None) -> s.BaseModelOut:
        """As ``Client.bases.get``."""
        return s.BaseModelOut.from_entity(self._ws.bases.get(name, project=self._p(project)))

    def versions(self, name: str, *, project: str | None = None) -> builtins.list[s.BaseModelOut]:
        """As ``Client.bases.versions``."""
        found = self._ws.bases.versions(name, project=self._p(project))
        return [s.BaseModelOut.from_entity(b) for b in found]

    def delete_version(
        self, name: str, version: int, *, project: str | None = None
    ) -> s.BaseModelOut:
        """As ``Client.bases.delete_version``."""
        project = self._p(project)
        deleted = self._ws.bases.delete_version(name, version, project=project)
        self._client.record("bases.delete_version", project, f"bases/{name}", {"version": version})
        return s.BaseModelOut.from_entity(deleted)

    def packaged(self) -> builtins.list[s.PackagedBaseOut]:
        """As ``Client.bases.packaged``."""
        from aimass.jobs.bases import list_packaged_bases

        return [s.PackagedBaseOut.from_entity(base) for base in list_packaged_bases()]

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
        base, created = self._ws.bases.import_(found, name=name, project=self._p(project))
        return _created(s.BaseModelOut.from_entity(base), created)

    def from_model(self, ref: str, *, name: str, project: str | None = None) -> s.BaseModelOut:
        """As ``Client.bases.from_model``."""
        base, created = self._ws.bases.from_model(ref, name=name, project=self._p(project))
        return _created(s.BaseModelOut.from_entity(base), created)

    def shrink(
        self,
        ref: str,
        *,
        name: str,
        layers: int,
        pick: str = "first",
        intermediate_size: int = 0,
        project: str | None = None,
    ) -> s.BaseModelOut:
        """As ``Client.bases.shrink``."""
        base, created = self._ws.bases.shrink(
            ref,
            name=name,
            layers=layers,
            pick=pick,
            intermediate_size=intermediate_size,
            project=self._p(project),
        )
        return _created(s.BaseModelOut.from_entity(base), created)

    def train_tokenizer(
        self,
        dataset: str,
        *,
        name: str,
        kind: str = "wordpiece",
        vocab_size: int = 8000,
        min_frequency: int = 2,
        project: str | None = None,
    ) -> s.BaseModelOut:
        """As ``Client.bases.train_tokenizer``."""
        tokenizer, created = self._ws.bases.train_tokenizer(
            dataset,
            name=name,
            kind=kind,
            vocab_size=vocab_size,
            min_frequency=min_frequency,
            project=self._p(project),
        )
        return _created(s.BaseModelOut.from_entity(tokenizer), created)

    def create_scratch(
        self,
        name: str,
        *,
        architecture: str,
        tokenizer: str,
        preset: str = "tiny",
        seed: int = 0,
        overrides: Mapping[str, int | float] | None = None,
        project: str | None = None,
    ) -> s.BaseModelOut:
        """As ``Client.bases.create_scratch``."""
        base, created = self._ws.bases.create_scratch(
            name,
            architecture=architecture,
            tokenizer=tokenizer,
            preset=preset,
            seed=seed,
            overrides=dict(overrides or {}),
            project=self._p(project),
        )
        return _created(s.BaseModelOut.from_entity(base), created)


class LocalModels(_Local):
    """``local.models`` (as ``Client.models``)."""

    def list(self, *, project: str | None = None) -> list[s.RegisteredModelOut]:
        """As ``Client.models.list``."""
        found = self._ws.models.list(project=self._p(project))
        return [s.RegisteredModelOut.from_entity(m) for m in found]

    def versions(
        self, name: str, *, project: str | None = None
    ) -> builtins.list[s.ModelVersionOut]:
        """As ``Client.models.versions``."""
        found = self._ws.models.versions(name, project=self._p(project))
        return [s.ModelVersionOut.from_entity(v) for v in found]

    def get(self, ref: str, *, project: str | None = None) -> s.ModelVersionOut:
        """As ``Client.models.get``."""
        return s.ModelVersionOut.from_entity(self._ws.models.get(ref, project=self._p(project)))

    def set_alias(
        self, name: str, alias: str, version: int, *, project: str | None = None
    ) -> s.ModelVersionOut:
        """As ``Client.models.set_alias``."""
        moved = self._ws.models.set_alias(name, alias, version, project=self._p(project))
        return s.ModelVersionOut.from_entity(moved)

    def delete_alias(self, name: str, alias: str, *, project: str | None = None) -> None:
        """As ``Client.models.delete_alias``."""
        self._ws.models.delete_alias(name, alias, project=self._p(project))

    def card(self, ref: str, *, project: str | None = None) -> str:
        """As ``Client.models.card``."""
        return self._ws.models.card(ref, project=self._p(project))

    def verify(self, ref: str, *, project: str | None = None) -> s.BundleVerifyOut:
        """As ``Client.models.verify``."""
        return s.BundleVerifyOut(**self._ws.models.verify(ref, project=self._p(project)))

    def import_(
        self,
        path: str,
        *,
        name: str,
        alias: str | None = None,
        project: str | None = None,
    ) -> s.ModelVersionOut:
        """As ``Client.models.import_``; the directory is read where it lies."""
        version, created = self._ws.models.import_(
            str(path), name=name, alias=alias, project=self._p(project)
        )
        return _created(s.ModelVersionOut.from_entity(version), created)

    def export(
        self, ref: str, destination: str | Path, *, project: str | None = None
    ) -> builtins.list[str]:
        """As ``Client.models.export``."""
        return self._ws.models.export(ref, Path(destination), project=self._p(project))

    def attachments(
        self, ref: str, *, kind: str | None = None, project: str | None = None
    ) -> builtins.list[s.AttachmentOut]:
        """As ``Client.models.attachments``."""
        found = self._ws.models.attachments(ref, kind=kind, project=self._p(project))
        return [s.AttachmentOut.from_entity(a) for a in found]

    def report(
        self, ref: str, report: str, *, fmt: str = "html", project: str | None = None
    ) -> bytes:
        """As ``Client.models.report``."""
        found = self._ws.reports.evaluations(ref, project=self._p(project))
        chosen = next((a for a in found if a.name == report), None)
        if chosen is None:
            known = ", ".join(a.name for a in found) or "none"
            raise NotFound(
                f"model {ref} has no evaluation report {report!r} (reports: {known}); "
                f"create one with 'aimass evaluate {ref} --dataset NAME'"
            )
        return self._ws.reports.report_file(chosen, fmt=fmt).read_bytes()

    def delete_version(
        self, name: str, version: int, *, project: str | None = None
    ) -> s.ModelVersionOut:
        """As ``Client.models.delete_version``."""
        project = self._p(project)
        deleted = self._ws.models.delete_version(name, version, project=project)
        self._client.record(
            "models.delete_version", project, f"models/{name}", {"version": version}
        )
        return s.ModelVersionOut.from_entity(deleted)
