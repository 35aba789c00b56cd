"""``ws.models``: the registry of trained versions: resolve, aliases (and who may move
them), cards, export, import of a Hugging Face classifier, signature checks."""

from __future__ import annotations

import builtins
from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aimass.entities import (
    Attachment,
    ModelVersion,
    RegisteredModel,
)
from aimass.errors import NotFound, PermissionDenied
from aimass.refs import parse_ref
from aimass.store import DEFAULT_PROJECT
from aimass.workspace.access import Principal
from aimass.workspace.cards import render_card

if TYPE_CHECKING:
    from aimass.artifacts.archive import BundleArchive
from aimass.workspace._service import Service

__all__ = ["ModelService"]


class ModelService(Service):
    """``ws.models``: registered versions and their aliases."""

    def check_alias_move(self, principal: Principal, project: str, model: str, alias: str) -> None:
        """Protected aliases (``production``) need ``models:write`` on the model;
        other aliases ``models:write`` or ``train``."""
        if principal.can("models:write", project=project, model=model):
            return
        if alias not in self.settings.protected_aliases and principal.can("train", project=project):
            return
        raise PermissionDenied(
            f"moving alias {alias!r} of model {model!r} needs the scope models:write on it"
            + (" (a protected alias)" if alias in self.settings.protected_aliases else ""),
            alias=alias,
        )

    def get(self, ref: str, *, project: str = DEFAULT_PROJECT) -> ModelVersion:
        """Resolve ``NAME``, ``NAME@VERSION`` or ``NAME@ALIAS``."""
        return self.store.registry.get_version(project, parse_ref(ref, kind="model"))

    def set_alias(
        self, name: str, alias: str, version: int, *, project: str = DEFAULT_PROJECT
    ) -> ModelVersion:
        """Point ``alias`` of model ``name`` at ``version``."""
        return self.store.registry.set_alias(project, name, alias, version)

    def delete_alias(self, name: str, alias: str, *, project: str = DEFAULT_PROJECT) -> None:
        """Remove ``alias`` from model ``name``."""
        self.store.registry.delete_alias(project, name, alias)

    def delete_version(
        self, name: str, version: int, *, project: str = DEFAULT_PROJECT
    ) -> ModelVersion:
        """Delete a version no alias points at (aliased versions are refused)."""
        return self.store.registry.delete_version(project, name, version)

    def card(self, ref: str, *, project: str = DEFAULT_PROJECT) -> str:
        """The model card (Markdown) of a version."""
        version = self.get(ref, project=project)
        lineage = version.lineage  # an imported version has neither dataset nor base
        dataset = base = None
        # Deleted since training: the card says so from the lineage.
        with suppress(NotFound):
            dataset = (
                self._ws.datasets.get(lineage.dataset, project=project) if lineage.dataset else None
            )
        with suppress(NotFound):
            base = self._ws.bases.get(lineage.base, project=project) if lineage.base else None
        attachments = self.store.registry.attachments(project, parse_ref(version.ref))
        return render_card(version, dataset=dataset, base=base, attachments=attachments)

    def export(self, ref: str, destination: Path, *, project: str = DEFAULT_PROJECT) -> list[str]:
        """Copy a version's verified bundle out as a Hugging Face model directory."""
        from aimass.artifacts.bundle import copy_bundle_files

        version = self.get(ref, project=project)
        return copy_bundle_files(self.artifacts.resolve(version.uri), Path(destination))

    def export_archive(
        self, ref: str, *, project: str = DEFAULT_PROJECT
    ) -> tuple[ModelVersion, BundleArchive]:
        """A version's verified, decrypted bundle as a tar stream (the export endpoint)."""
        from aimass.artifacts.archive import open_bundle_archive

        version = self.get(ref, project=project)
        return version, open_bundle_archive(self.artifacts.resolve(version.uri))

    def import_(
        self,
        source: str,
        *,
        name: str | None = None,
        alias: str | None = None,
        project: str = DEFAULT_PROJECT,
    ) -> tuple[ModelVersion, bool]:
        """Register a Hugging Face ``*ForSequenceClassification`` directory as a version."""
        from aimass.jobs.imported import import_classifier

        self.store.projects.get(project)
        return import_classifier(
            Path(source),
            store=self.store,
            artifacts=self.artifacts,
            project=project,
            name=name,
            alias=alias,
        )

    def verify(self, ref: str, *, project: str = DEFAULT_PROJECT) -> dict[str, Any]:
        """Check a version's signature, then every file against its manifest.

        Raises:
            BundleFormatError: unsigned, untrusted or bad signature, or a file that
                does not match the manifest.
        """
        from aimass.artifacts.bundle import verify_bundle

        version = self.get(ref, project=project)
        key = self.artifacts.key_of(version.uri)
        signature = self.artifacts.check_signature(key, self.artifacts.stored(version.uri))
        manifest = verify_bundle(self.artifacts.resolve(version.uri))
        return {
            "ref": version.ref,
            "digest": manifest.digest,
            "files": len(manifest.files),
            "signed_by": signature.key_id,
            "trusted": signature.trusted,
            "encrypted": self.artifacts.is_encrypted(version.uri),
        }

    def list(self, *, project: str = DEFAULT_PROJECT) -> list[RegisteredModel]:
        """Registered models."""
        return self.store.registry.list_models(project)

    def registered(self, name: str, *, project: str = DEFAULT_PROJECT) -> RegisteredModel:
        """One registered model (its versions and aliases)."""
        return self.store.registry.get_model(project, name)

    def versions(self, name: str, *, project: str = DEFAULT_PROJECT) -> builtins.list[ModelVersion]:
        """Every version of model ``name``."""
        return self.store.registry.list_versions(project, name)

    def attachments(
        self, ref: str, *, kind: str | None = None, project: str = DEFAULT_PROJECT
    ) -> builtins.list[Attachment]:
        """Reports attached to a version (``kind``: ``evaluation``, ``privacy-audit``)."""
        version = self.get(ref, project=project)
        return self.store.registry.attachments(project, parse_ref(version.ref), kind=kind)
