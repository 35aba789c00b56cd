"""Domain entities: what the store returns and what users are handed.

Frozen dataclasses without I/O. They are separate from the ORM rows (the store
converts) and from the wire schemas (the server converts), because the database,
the domain and the public API evolve at different speeds.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

__all__ = [
    "SCOPES",
    "ApiKey",
    "Attachment",
    "AuditEvent",
    "BaseModel",
    "DatasetSchema",
    "DatasetVersion",
    "Job",
    "JobLogLine",
    "JobStatus",
    "Lineage",
    "ModelVersion",
    "PipelineVersion",
    "Project",
    "RegisteredModel",
    "to_jsonable",
]

SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class Project:
    """A tenant: every dataset, model and job belongs to exactly one project.

    Attributes:
        limits: Per-project limits kept in the store (``max_epochs``, ...), over the
            settings' values; empty when none are set.
    """

    name: str
    description: str
    created_at: datetime
    limits: dict[str, int | str] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class DatasetSchema:
    """What the columns of a dataset version mean.

    The *kind* says what a row is (see ``aimass.data.kinds``):

    ============  ==========================  ===============================
    kind          text_field → column         label_field → column
    ============  ==========================  ===============================
    ``text``      input text → ``text``       class or value → ``label``
    ``tokens``    token list → ``tokens``     BIO tag list → ``tags``
    ``pairs``     prompt/source → ``text``    response/target → ``target``
    ============  ==========================  ===============================

    Attributes:
        text_field: Source field that held the input (text, tokens or prompt).
        label_field: Source field that held the supervision, if any.
        label_type: ``string``, ``integer`` or ``float`` (text), ``tags``
            (tokens), ``text`` (pairs); ``None`` when unlabelled.
        extra_fields: Other source fields, kept as nullable strings.
        split_source: ``field`` when splits came from the data, ``seeded`` when made.
        kind: ``text``, ``tokens`` or ``pairs``.
    """

    text_field: str
    label_field: str | None
    label_type: str | None
    extra_fields: tuple[str, ...] = ()
    split_source: str = "seeded"
    kind: str = "text"


@dataclass(frozen=True)
class DatasetVersion:
    """One immutable, content-addressed version of a dataset (stored as Parquet)."""

    project: str
    name: str
    version: int
    digest: str
    uri: str
    format: str
    schema: DatasetSchema
    num_rows: int
    splits: dict[str, int]
    stats: dict[str, Any]
    provenance: dict[str, Any]
    created_at: datetime

    @property
    def ref(self) -> str:
        """``name@version``."""
        return f"{self.name}@{self.version}"

    @property
    def labels(self) -> list[str]:
        """Sorted class names for categorical labels, else an empty list."""
        return list(self.stats.get("classes", []))


@dataclass(frozen=True)
class BaseModel:
    """A registered pretrained (or from-scratch) base model bundle."""

    project: str
    name: str
    version: int
    digest: str
    uri: str
    architecture: str
    family: str
    num_parameters: int
    provenance: dict[str, Any]
    created_at: datetime

    @property
    def ref(self) -> str:
        """``name@version``."""
        return f"{self.name}@{self.version}"


@dataclass(frozen=True)
class Lineage:
    """Where a model version came from: enough to reproduce it.

    Attributes:
        dataset: ``name@version`` of the training dataset.
        dataset_digest: Content digest of that dataset version.
        base: ``name@version`` of the base model.
        base_digest: Bundle digest of the base model.
        job_id: The job that trained it.
        task: Task name (``classification``, ``regression``, ...).
        config: The full training configuration, defaults included.
        code_version: aimass version (plus git commit when known).
    """

    dataset: str
    dataset_digest: str
    base: str
    base_digest: str
    job_id: str
    task: str
    config: dict[str, Any]
    code_version: str


@dataclass(frozen=True)
class RegisteredModel:
    """A named model with numbered versions and aliases pointing at them."""

    project: str
    name: str
    description: str
    created_at: datetime
    latest_version: int
    aliases: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelVersion:
    """One immutable trained model: a verified bundle plus its record."""

    project: str
    name: str
    version: int
    task: str
    digest: str
    uri: str
    metrics: dict[str, Any]
    lineage: Lineage
    privacy: dict[str, Any] | None
    aliases: tuple[str, ...]
    created_at: datetime

    @property
    def ref(self) -> str:
        """``name@version``."""
        return f"{self.name}@{self.version}"


@dataclass(frozen=True)
class PipelineVersion:
    """One immutable version of a pipeline: a validated spec whose model steps are pinned
    to ``NAME@VERSION`` (and the bundle digest) when it was created.

    Attributes:
        spec: The pinned spec (JSON), as :mod:`aimass.serving.pipelines` runs it.
        digest: SHA-256 of the canonical pinned spec; creating the same spec again
            returns this version.
        aliases: The pipeline's aliases pointing at this version.
        evaluations: Its evaluation reports by name: the headline numbers, the dataset
            and split, and ``report`` (the URI of ``report.html`` and ``report.json``).
    """

    project: str
    name: str
    version: int
    digest: str
    spec: dict[str, Any]
    description: str
    created_by: str | None
    created_at: datetime
    aliases: tuple[str, ...] = ()
    evaluations: dict[str, Any] = field(default_factory=dict)

    @property
    def ref(self) -> str:
        """``name@version``."""
        return f"{self.name}@{self.version}"

    @property
    def models(self) -> tuple[str, ...]:
        """The names of the registered models its steps run, sorted, once each."""
        found: set[str] = set()
        for step in self.spec.get("steps", ()):
            for ref in step.get("models", [step.get("model")]) or ():
                if isinstance(ref, str):
                    found.add(ref.partition("@")[0])
        return tuple(sorted(found))


@dataclass(frozen=True)
class Attachment:
    """A report or file attached to a model version (evaluation, privacy audit, ...)."""

    project: str
    model: str
    version: int
    kind: str
    name: str
    uri: str
    summary: dict[str, Any]
    created_at: datetime


class JobStatus(StrEnum):
    """Lifecycle of a job: ``queued → running → succeeded | failed | cancelled``."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        """True for the three terminal states."""
        return self in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)


@dataclass(frozen=True)
class Job:
    """A unit of offline work (training, evaluation, batch prediction)."""

    id: str
    project: str
    kind: str
    status: JobStatus
    spec: dict[str, Any]
    progress: float
    metrics: dict[str, Any]
    result: dict[str, Any]
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    attempt: int = 0
    cancel_requested: bool = False
    heartbeat_at: datetime | None = None


@dataclass(frozen=True)
class JobLogLine:
    """One line of a job's log (kept in the store, shown by ``aimass jobs logs``)."""

    job_id: str
    seq: int
    time: datetime
    level: str
    message: str


# What an API key may do. ``admin`` implies every other scope in the key's project
# (and, for a key of no project, in every project). ``models:write`` and
# ``predict`` may be narrowed to one model as ``models:write:NAME``. ``metrics`` lets
# a scraper read ``/metrics`` on a server that listens beyond loopback.
SCOPES = ("admin", "data:write", "train", "models:write", "predict", "read", "metrics")


@dataclass(frozen=True)
class ApiKey:
    """An API key's record. The secret itself is never stored, only a keyed hash.

    Attributes:
        id: Public identifier (the ``aimass_<id>_`` part of the key).
        name: A label chosen by whoever created it.
        project: The project it works in; ``None`` for an all-projects admin key.
        scopes: What it may do (see :data:`SCOPES`).
        expires_at: After this the key is refused; ``None`` never expires.
        revoked: Revoked keys are refused.
        last_used_at: Last successful use (updated at most once a minute).
        created_by: Who created it (a key id or ``local:USER``).
        predict_budget: Inputs it may send to predict/explain/batch/generate per UTC
            day; ``None`` is unlimited.
        output_policy: What its predictions show (``labels``, ``top_k=N``,
            ``round=D``, comma-combined); ``None`` shows everything.
        limits: Per-key limits kept in the store (``requests_per_key``, ...), over
            the settings' values; empty when none are set.
    """

    id: str
    name: str
    project: str | None
    scopes: tuple[str, ...]
    created_at: datetime
    expires_at: datetime | None
    revoked: bool
    last_used_at: datetime | None
    created_by: str | None
    predict_budget: int | None = None
    output_policy: str | None = None
    limits: dict[str, int | str] = field(default_factory=dict, compare=False)

    def usable(self, now: datetime) -> bool:
        """Not revoked and not expired at ``now``."""
        return not self.revoked and (self.expires_at is None or self.expires_at > now)


@dataclass(frozen=True)
class AuditEvent:
    """One row of the hash-chained audit log.

    ``input_hash`` is a SHA-256 of the request body: the log proves what was sent
    without keeping the (possibly sensitive) text. ``hash`` covers every other
    field and ``prev_hash``, keyed with the server secret.
    """

    seq: int
    time: datetime
    actor: str
    key_id: str | None
    project: str | None
    action: str
    resource: str
    outcome: str
    status: int | None
    request_id: str | None
    input_hash: str | None
    details: dict[str, Any]
    prev_hash: str
    hash: str


def to_jsonable(value: Any) -> Any:
    """Turn entities (and containers of them) into JSON-ready plain data."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    return value
