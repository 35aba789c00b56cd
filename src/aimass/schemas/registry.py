"""Wire schemas of the model registry: models, versions, lineage, aliases, attachments.

Registering a Hugging Face classifier directory, registered models and their
versions with lineage and metrics, the reports attached to a version, pointing
an alias at a version, and the result of verifying a signed bundle.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from pydantic import Field

from aimass.schemas._common import Created, Name, _In, _Out

if TYPE_CHECKING:
    # Types only: schemas and entities are sibling layers; converters read attributes.
    from aimass import entities as e


# -- registry -------------------------------------------------------------------------


class ModelImport(_In):
    """Register a Hugging Face classifier directory (inside the import dirs) as a model."""

    path: str = Field(max_length=4096)
    name: Name
    alias: Name | None = None


class LineageOut(_Out):
    """Where a model version came from."""

    dataset: str
    dataset_digest: str
    base: str
    base_digest: str
    job_id: str
    task: str
    config: dict[str, Any]
    code_version: str


class RegisteredModelOut(_Out):
    """A named model with its aliases."""

    project: str
    name: str
    description: str
    created_at: datetime
    latest_version: int
    aliases: dict[str, int]

    @classmethod
    def from_entity(cls, m: e.RegisteredModel) -> RegisteredModelOut:
        """Convert a :class:`~aimass.entities.RegisteredModel`."""
        return cls(
            project=m.project,
            name=m.name,
            description=m.description,
            created_at=m.created_at,
            latest_version=m.latest_version,
            aliases=m.aliases,
        )


class ModelVersionOut(_Out):
    """One model version with lineage and metrics."""

    project: str
    name: str
    version: int
    task: str
    digest: str
    metrics: dict[str, Any]
    lineage: LineageOut
    privacy: dict[str, Any] | None
    aliases: list[str]
    created_at: datetime
    created: Created = None

    @property
    def ref(self) -> str:
        """``name@version``."""
        return f"{self.name}@{self.version}"

    @classmethod
    def from_entity(cls, v: e.ModelVersion) -> ModelVersionOut:
        """Convert a :class:`~aimass.entities.ModelVersion`."""
        lin = v.lineage
        return cls(
            project=v.project,
            name=v.name,
            version=v.version,
            task=v.task,
            digest=v.digest,
            metrics=v.metrics,
            lineage=LineageOut(**{f: getattr(lin, f) for f in LineageOut.model_fields}),
            privacy=v.privacy,
            aliases=list(v.aliases),
            created_at=v.created_at,
        )


class AttachmentOut(_Out):
    """A report attached to a model version (an evaluation report, a privacy audit, ...)."""

    project: str
    model: str
    version: int
    kind: str
    name: str
    uri: str
    summary: dict[str, Any]
    created_at: datetime

    @classmethod
    def from_entity(cls, a: e.Attachment) -> AttachmentOut:
        """Convert an :class:`~aimass.entities.Attachment`."""
        return cls(**{f: getattr(a, f) for f in cls.model_fields})


class AliasSet(_In):
    """Point an alias at a version."""

    version: int = Field(ge=1)


class BundleVerifyOut(_Out):
    """A registered version whose signature and files checked out."""

    ref: str
    digest: str
    files: int
    signed_by: str
    trusted: bool
    encrypted: bool
