"""ORM rows of the metadata store (SQLAlchemy 2).

Rows never leave the store: each has a ``to_entity()`` that builds the frozen
domain entity. Schema changes go through an Alembic revision in
``migrations/versions``; ``tests/store/test_migrations.py`` proves that migrating
an empty database reproduces this metadata exactly.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from aimass.entities import (
    ApiKey,
    Attachment,
    AuditEvent,
    BaseModel,
    DatasetSchema,
    DatasetVersion,
    Job,
    JobLogLine,
    JobStatus,
    Lineage,
    ModelVersion,
    PipelineVersion,
    Project,
)
from aimass.store._clock import _aware, aware, utcnow

# Explicit constraint names, so migrations are identical on SQLite and PostgreSQL.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base with the shared naming convention."""

    metadata = MetaData(naming_convention=NAMING)


class ProjectRow(Base):
    __tablename__ = "projects"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # Per-project limits over the settings' values (NULL: none set).
    limits: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)

    def to_entity(self) -> Project:
        return Project(
            name=self.name,
            description=self.description,
            created_at=aware(self.created_at),
            limits=dict(self.limits or {}),
        )


class DatasetVersionRow(Base):
    __tablename__ = "dataset_versions"
    __table_args__ = (
        UniqueConstraint("project_id", "name", "version", name="uq_dataset_versions_version"),
        UniqueConstraint("project_id", "name", "digest", name="uq_dataset_versions_digest"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(63), index=True)
    version: Mapped[int] = mapped_column(Integer)
    digest: Mapped[str] = mapped_column(String(64))
    uri: Mapped[str] = mapped_column(Text)
    format: Mapped[str] = mapped_column(String(16))
    schema: Mapped[dict[str, Any]] = mapped_column(JSON)
    num_rows: Mapped[int] = mapped_column(Integer)
    splits: Mapped[dict[str, Any]] = mapped_column(JSON)
    stats: Mapped[dict[str, Any]] = mapped_column(JSON)
    provenance: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    project: Mapped[ProjectRow] = relationship()

    def to_entity(self) -> DatasetVersion:
        schema = dict(self.schema)
        schema["extra_fields"] = tuple(schema.get("extra_fields", ()))
        return DatasetVersion(
            project=self.project.name,
            name=self.name,
            version=self.version,
            digest=self.digest,
            uri=self.uri,
            format=self.format,
            schema=DatasetSchema(**schema),
            num_rows=self.num_rows,
            splits=dict(self.splits),
            stats=dict(self.stats),
            provenance=dict(self.provenance),
            created_at=aware(self.created_at),
        )


class BaseModelRow(Base):
    __tablename__ = "base_models"
    __table_args__ = (
        UniqueConstraint("project_id", "name", "version", name="uq_base_models_version"),
        UniqueConstraint("project_id", "name", "digest", name="uq_base_models_digest"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(63), index=True)
    version: Mapped[int] = mapped_column(Integer)
    digest: Mapped[str] = mapped_column(String(64))
    uri: Mapped[str] = mapped_column(Text)
    architecture: Mapped[str] = mapped_column(String(63))
    family: Mapped[str] = mapped_column(String(31))
    num_parameters: Mapped[int] = mapped_column(Integer)
    provenance: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    project: Mapped[ProjectRow] = relationship()

    def to_entity(self) -> BaseModel:
        return BaseModel(
            project=self.project.name,
            name=self.name,
            version=self.version,
            digest=self.digest,
            uri=self.uri,
            architecture=self.architecture,
            family=self.family,
            num_parameters=self.num_parameters,
            provenance=dict(self.provenance),
            created_at=aware(self.created_at),
        )


class RegisteredModelRow(Base):
    __tablename__ = "registered_models"
    __table_args__ = (UniqueConstraint("project_id", "name", name="uq_registered_models_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(63))
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    project: Mapped[ProjectRow] = relationship()
    versions: Mapped[list[ModelVersionRow]] = relationship(
        back_populates="model", order_by="ModelVersionRow.version"
    )
    aliases: Mapped[list[ModelAliasRow]] = relationship(back_populates="model")


class ModelVersionRow(Base):
    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("model_id", "version", name="uq_model_versions_version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("registered_models.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    task: Mapped[str] = mapped_column(String(63))
    digest: Mapped[str] = mapped_column(String(64))
    uri: Mapped[str] = mapped_column(Text)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON)
    lineage: Mapped[dict[str, Any]] = mapped_column(JSON)
    privacy: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    # Digest of (dataset, base, task, config): lets a re-run find an identical version.
    config_digest: Mapped[str] = mapped_column(String(64), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    model: Mapped[RegisteredModelRow] = relationship(back_populates="versions")
    aliases: Mapped[list[ModelAliasRow]] = relationship(back_populates="version_row")

    def to_entity(self) -> ModelVersion:
        return ModelVersion(
            project=self.model.project.name,
            name=self.model.name,
            version=self.version,
            task=self.task,
            digest=self.digest,
            uri=self.uri,
            metrics=dict(self.metrics),
            lineage=Lineage(**self.lineage),
            privacy=dict(self.privacy) if self.privacy is not None else None,
            aliases=tuple(sorted(a.alias for a in self.aliases)),
            created_at=aware(self.created_at),
        )


class ModelAliasRow(Base):
    __tablename__ = "model_aliases"
    __table_args__ = (UniqueConstraint("model_id", "alias", name="uq_model_aliases_alias"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("registered_models.id", ondelete="CASCADE"))
    alias: Mapped[str] = mapped_column(String(63))
    version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id", ondelete="CASCADE"))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    model: Mapped[RegisteredModelRow] = relationship(back_populates="aliases")
    version_row: Mapped[ModelVersionRow] = relationship(back_populates="aliases")


class AttachmentRow(Base):
    __tablename__ = "model_attachments"
    __table_args__ = (
        UniqueConstraint("version_id", "kind", "name", name="uq_model_attachments_name"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(63))
    name: Mapped[str] = mapped_column(String(63))
    uri: Mapped[str] = mapped_column(Text)
    summary: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    version_row: Mapped[ModelVersionRow] = relationship()

    def to_entity(self) -> Attachment:
        version = self.version_row
        return Attachment(
            project=version.model.project.name,
            model=version.model.name,
            version=version.version,
            kind=self.kind,
            name=self.name,
            uri=self.uri,
            summary=dict(self.summary),
            created_at=aware(self.created_at),
        )


class PipelineVersionRow(Base):
    __tablename__ = "pipeline_versions"
    __table_args__ = (
        UniqueConstraint("project_id", "name", "version", name="uq_pipeline_versions_version"),
        UniqueConstraint("project_id", "name", "digest", name="uq_pipeline_versions_digest"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(63), index=True)
    version: Mapped[int] = mapped_column(Integer)
    # SHA-256 of the canonical pinned spec: the same spec again is the same version.
    digest: Mapped[str] = mapped_column(String(64))
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    description: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str | None] = mapped_column(String(127), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # Report name → headline numbers and the report's URI (a pipeline has no attachments).
    evaluations: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)

    project: Mapped[ProjectRow] = relationship()
    aliases: Mapped[list[PipelineAliasRow]] = relationship(back_populates="version_row")

    def to_entity(self) -> PipelineVersion:
        return PipelineVersion(
            project=self.project.name,
            name=self.name,
            version=self.version,
            digest=self.digest,
            spec=dict(self.spec),
            description=self.description,
            created_by=self.created_by,
            created_at=aware(self.created_at),
            aliases=tuple(sorted(a.alias for a in self.aliases)),
            evaluations=dict(self.evaluations or {}),
        )


class PipelineAliasRow(Base):
    __tablename__ = "pipeline_aliases"
    __table_args__ = (
        UniqueConstraint("project_id", "name", "alias", name="uq_pipeline_aliases_alias"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(63))
    alias: Mapped[str] = mapped_column(String(63))
    version_id: Mapped[int] = mapped_column(ForeignKey("pipeline_versions.id", ondelete="CASCADE"))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    version_row: Mapped[PipelineVersionRow] = relationship(back_populates="aliases")


class RetiredVersionRow(Base):
    """The highest version deleted from a name: the next is numbered above it."""

    __tablename__ = "retired_versions"
    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    kind: Mapped[str] = mapped_column(String(15), primary_key=True)
    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)


class RateCounterRow(Base):
    """One window of a rate limit shared by every server on the database (``key``: the
    limit, its subject and the window's number)."""

    __tablename__ = "rate_counters"
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    count: Mapped[int] = mapped_column(Integer)
    expires_at: Mapped[float] = mapped_column(Float, index=True)


class SlotLeaseRow(Base):
    """A call in flight holding a shared concurrency slot (``predict:key:ID``)."""

    __tablename__ = "slot_leases"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    slot: Mapped[str] = mapped_column(String(255), index=True)
    holder: Mapped[str] = mapped_column(String(64), index=True)
    expires_at: Mapped[float] = mapped_column(Float, index=True)


class JobRow(Base):
    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(31))
    status: Mapped[str] = mapped_column(String(15), index=True)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON)
    result: Mapped[dict[str, Any]] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # Incremented by every claim: a worker whose attempt is stale may not finish the job.
    attempt: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    project: Mapped[ProjectRow] = relationship()

    def to_entity(self) -> Job:
        return Job(
            id=self.id,
            project=self.project.name,
            kind=self.kind,
            status=JobStatus(self.status),
            spec=dict(self.spec),
            progress=self.progress,
            metrics=dict(self.metrics),
            result=dict(self.result),
            error=self.error,
            created_at=aware(self.created_at),
            started_at=_aware(self.started_at),
            finished_at=_aware(self.finished_at),
            attempt=self.attempt,
            cancel_requested=self.cancel_requested,
            heartbeat_at=_aware(self.heartbeat_at),
        )


class JobLogRow(Base):
    __tablename__ = "job_logs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    time: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    level: Mapped[str] = mapped_column(String(15))
    message: Mapped[str] = mapped_column(Text)

    def to_entity(self) -> JobLogLine:
        return JobLogLine(
            job_id=self.job_id,
            seq=self.id,
            time=aware(self.time),
            level=self.level,
            message=self.message,
        )


class ApiKeyRow(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(63))
    # NULL: an all-projects admin key (only the bootstrap key or another such key makes one).
    project_id: Mapped[int | None] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), nullable=True
    )
    scopes: Mapped[list[str]] = mapped_column(JSON)
    secret_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_by: Mapped[str | None] = mapped_column(String(127), nullable=True)
    # Query budget (inputs per UTC day; NULL: unlimited), output policy (NULL: full
    # output) and per-key limits over the settings' values (NULL: none set).
    predict_budget: Mapped[int | None] = mapped_column(Integer, nullable=True)
    output_policy: Mapped[str | None] = mapped_column(String(63), nullable=True)
    limits: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)

    project: Mapped[ProjectRow | None] = relationship()

    def to_entity(self) -> ApiKey:
        return ApiKey(
            id=self.id,
            name=self.name,
            project=self.project.name if self.project is not None else None,
            scopes=tuple(self.scopes),
            created_at=aware(self.created_at),
            expires_at=_aware(self.expires_at),
            revoked=self.revoked,
            last_used_at=_aware(self.last_used_at),
            created_by=self.created_by,
            predict_budget=self.predict_budget,
            output_policy=self.output_policy,
            limits=dict(self.limits or {}),
        )


class KeyUsageRow(Base):
    """Inputs one budgeted key sent on one UTC day (only keys with a budget get rows)."""

    __tablename__ = "key_usage"

    key_id: Mapped[str] = mapped_column(
        ForeignKey("api_keys.id", ondelete="CASCADE"), primary_key=True
    )
    day: Mapped[str] = mapped_column(String(10), primary_key=True)  # YYYY-MM-DD, UTC
    inputs: Mapped[int] = mapped_column(Integer, default=0)


class AuditRow(Base):
    __tablename__ = "audit_log"

    # Explicit sequence numbers (not autoincrement): a gap is a deleted row.
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    actor: Mapped[str] = mapped_column(String(127))
    key_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    # Names, not foreign keys: the log outlives what it talks about.
    project: Mapped[str | None] = mapped_column(String(63), nullable=True, index=True)
    action: Mapped[str] = mapped_column(String(63))
    resource: Mapped[str] = mapped_column(Text)
    outcome: Mapped[str] = mapped_column(String(31))
    status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    request_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    input_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    details: Mapped[dict[str, Any]] = mapped_column(JSON)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))

    def to_entity(self) -> AuditEvent:
        return AuditEvent(
            seq=self.seq,
            time=aware(self.time),
            actor=self.actor,
            key_id=self.key_id,
            project=self.project,
            action=self.action,
            resource=self.resource,
            outcome=self.outcome,
            status=self.status,
            request_id=self.request_id,
            input_hash=self.input_hash,
            details=dict(self.details),
            prev_hash=self.prev_hash,
            hash=self.hash,
        )


class AuditHeadRow(Base):
    """The chain's newest (seq, hash), so a truncated tail is noticed, and the write lock."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(Integer)
    hash: Mapped[str] = mapped_column(String(64))
