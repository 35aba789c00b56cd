"""Wire schemas of the REST API: what the server accepts and returns, and what the SDK parses.

Pydantic models, separate from the domain entities (which they convert from
with explicit ``from_entity`` functions) so the public API can stay stable while
the domain evolves. Request bodies forbid unknown fields and bound every size,
so a typo or an oversized value is a 400 naming the field, never silently
ignored. Output models keep the entities' field names, so code that prints an
entity prints its wire form unchanged (the CLI relies on this in remote mode).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    # Types only: schemas and entities are sibling layers; converters read attributes.
    from aimass import entities as e

__all__ = [
    "AliasSet",
    "ApiKeyOut",
    "AttachmentOut",
    "AuditEventOut",
    "AuditVerifyOut",
    "BaseImport",
    "BaseModelOut",
    "BatchPredictJobCreate",
    "BundleVerifyOut",
    "DatasetImport",
    "DatasetSchemaOut",
    "DatasetUpload",
    "DatasetVersionOut",
    "ErrorBody",
    "GenerateRequest",
    "GenerateResponse",
    "JobCreate",
    "JobLogLineOut",
    "JobOut",
    "KeyCreate",
    "KeyCreated",
    "KeyUpdate",
    "LineageOut",
    "ModelImport",
    "ModelVersionOut",
    "PredictRequest",
    "PredictResponse",
    "ProjectCreate",
    "ProjectLimits",
    "ProjectOut",
    "RegisteredModelOut",
    "SampleImport",
    "SampleOut",
    "TrainJobCreate",
    "WhoAmI",
]

Name = Annotated[str, Field(min_length=1, max_length=63, pattern=r"^[a-z0-9][a-z0-9._-]*$")]
Ref = Annotated[str, Field(min_length=1, max_length=127)]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Out(BaseModel):
    model_config = ConfigDict(populate_by_name=True)


# -- errors ---------------------------------------------------------------------


class ErrorDetail(_Out):
    """``code`` is stable; ``type`` is the exception class the SDK raises again."""

    code: str
    type: str
    message: str
    details: dict[str, Any] = {}
    request_id: str | None = None


class ErrorBody(_Out):
    """Every error response: ``{"error": {...}}``."""

    error: ErrorDetail


# -- projects and keys ------------------------------------------------------------


class ProjectCreate(_In):
    """Create a project (all-projects admin keys only)."""

    name: Name
    description: str = Field(default="", max_length=2000)


class ProjectOut(_Out):
    """A project; ``limits`` are the per-project limits stored with it."""

    name: str
    description: str
    created_at: datetime
    limits: dict[str, int | str] = {}

    @classmethod
    def from_entity(cls, p: e.Project) -> ProjectOut:
        """Convert a :class:`~aimass.entities.Project`."""
        return cls(name=p.name, description=p.description, created_at=p.created_at, limits=p.limits)


LimitName = Annotated[str, Field(max_length=63)]
LimitValue = int | Annotated[str, Field(max_length=63)]


class ProjectLimits(_In):
    """Change the limits stored with a project: a value sets it, ``null`` removes it."""

    limits: dict[LimitName, LimitValue | None] = Field(max_length=32)


class KeyCreate(_In):
    """Create an API key in the path's project.

    ``predict_budget``: inputs per UTC day (unlimited when absent); ``output_policy``:
    ``labels``, ``top_k=N``, ``round=D`` or a comma-joined mix; ``limits``: per-key
    limits (``requests_per_key``, ``max_predicts_per_key``, ``max_streams_per_key``).
    """

    name: Name
    scopes: list[Annotated[str, Field(max_length=127)]] = Field(min_length=1, max_length=32)
    expires_in_days: float | None = Field(default=None, gt=0, le=3650)
    predict_budget: int | None = Field(default=None, ge=1, le=10**12)
    output_policy: str | None = Field(default=None, max_length=63)
    limits: dict[LimitName, LimitValue] = Field(default_factory=dict, max_length=32)


class KeyUpdate(_In):
    """Change a key: only the fields sent change. ``predict_budget: null`` removes the
    budget, ``output_policy: null`` (or ``"full"``) the policy, a limit's ``null`` that limit."""

    predict_budget: int | None = Field(default=None, ge=1, le=10**12)
    output_policy: str | None = Field(default=None, max_length=63)
    limits: dict[LimitName, LimitValue | None] = Field(default_factory=dict, max_length=32)

    def changes(self) -> dict[str, Any]:
        """The fields that were sent, by name."""
        return {name: getattr(self, name) for name in sorted(self.model_fields_set)}


class ApiKeyOut(_Out):
    """A key's record (never its secret)."""

    id: str
    name: str
    project: str | None
    scopes: list[str]
    created_at: datetime
    expires_at: datetime | None
    revoked: bool
    last_used_at: datetime | None
    created_by: str | None
    predict_budget: int | None = None
    output_policy: str | None = None
    limits: dict[str, int | str] = {}

    @classmethod
    def from_entity(cls, k: e.ApiKey) -> ApiKeyOut:
        """Convert an :class:`~aimass.entities.ApiKey`."""
        return cls(
            id=k.id,
            name=k.name,
            project=k.project,
            scopes=list(k.scopes),
            created_at=k.created_at,
            expires_at=k.expires_at,
            revoked=k.revoked,
            last_used_at=k.last_used_at,
            created_by=k.created_by,
            predict_budget=k.predict_budget,
            output_policy=k.output_policy,
            limits=dict(k.limits),
        )


class KeyCreated(_Out):
    """A new key: ``key`` is shown this once and cannot be recovered."""

    key: str
    record: ApiKeyOut


class WhoAmI(_Out):
    """The caller as the server sees it."""

    actor: str
    key_id: str | None
    project: str | None
    scopes: list[str]


# -- datasets -----------------------------------------------------------------------


class DeidentifyIn(_In):
    """De-identify PII before the dataset is stored (the raw values are never kept)."""

    mode: Literal["mask", "redact", "pseudonymize"]
    fields: list[str] = Field(default_factory=list, max_length=64)
    recognizers: list[str] | None = Field(default=None, max_length=64)
    ner_model: Ref | None = None


class _ImportFields(_In):
    kind: Literal["text", "tokens", "pairs"] = Field(
        default="text",
        description="text (text + optional label), tokens (tokens + BIO tags) or pairs "
        "(prompt/response or source/target).",
    )
    text_field: str | None = Field(
        default=None,
        max_length=255,
        description="Field with the input (default per kind: text, tokens, prompt or source).",
    )
    label_field: str | None = Field(
        default=None,
        max_length=255,
        description="Field with the label (default per kind: label when present, tags, "
        "response or target).",
    )
    split_field: str | None = Field(default=None, max_length=255)
    label_type: Literal["auto", "string", "integer", "float"] = "auto"
    seed: int = 0
    splits: tuple[float, float, float] = (0.8, 0.1, 0.1)
    deidentify: DeidentifyIn | None = None


class DatasetUpload(_ImportFields):
    """Upload a dataset in the request: JSONL/CSV as text, Parquet as base64."""

    name: Name
    format: Literal["jsonl", "csv", "parquet", "conll"]
    content: str | None = None
    content_base64: str | None = None


class DatasetImport(_ImportFields):
    """Import a file the server may read (inside ``AIMASS_IMPORT_DIRS``)."""

    name: Name
    path: str = Field(min_length=1, max_length=4096)
    format: Literal["jsonl", "csv", "parquet", "conll"] | None = None


class SampleImport(_In):
    """Import one of the packaged sample datasets."""

    sample: Name
    name: Name | None = None
    seed: int = 0
    deidentify: DeidentifyIn | None = None


class SampleOut(_Out):
    """A packaged sample dataset."""

    name: str
    package: str
    task: str
    description: str
    source: str
    license: str
    installed: bool


class DatasetSchemaOut(_Out):
    """What a dataset's columns mean."""

    text_field: str
    label_field: str | None
    label_type: str | None
    extra_fields: list[str]
    split_source: str
    kind: str = "text"


class DatasetVersionOut(_Out):
    """One immutable dataset version."""

    project: str
    name: str
    version: int
    digest: str
    format: str
    data_schema: DatasetSchemaOut = Field(alias="schema")
    num_rows: int
    splits: dict[str, int]
    stats: dict[str, Any]
    provenance: dict[str, Any]
    created_at: datetime

    @property
    def ref(self) -> str:
        """``name@version``."""
        return f"{self.name}@{self.version}"

    @classmethod
    def from_entity(cls, d: e.DatasetVersion) -> DatasetVersionOut:
        """Convert a :class:`~aimass.entities.DatasetVersion` (the storage URI stays inside)."""
        s = d.schema
        return cls(
            project=d.project,
            name=d.name,
            version=d.version,
            digest=d.digest,
            format=d.format,
            data_schema=DatasetSchemaOut(
                text_field=s.text_field,
                label_field=s.label_field,
                label_type=s.label_type,
                extra_fields=list(s.extra_fields),
                split_source=s.split_source,
                kind=s.kind,
            ),
            num_rows=d.num_rows,
            splits=d.splits,
            stats=d.stats,
            provenance=d.provenance,
            created_at=d.created_at,
        )


# -- base models ------------------------------------------------------------------------


class BaseImport(_In):
    """Import a packaged base by name, or a Hugging Face directory inside the import dirs."""

    source: str | None = Field(default=None, max_length=63)
    path: str | None = Field(default=None, max_length=4096)
    name: Name | None = None


class ModelImport(_In):
    """Register a Hugging Face classifier directory (inside the import dirs) as a model."""

    path: str = Field(max_length=4096)
    name: Name
    alias: Name | None = None


class BaseModelOut(_Out):
    """A registered base model version."""

    project: str
    name: str
    version: int
    digest: str
    architecture: str
    family: str
    num_parameters: int
    provenance: dict[str, Any]
    created_at: datetime

    @property
    def ref(self) -> str:
        """``name@version``."""
        return f"{self.name}@{self.version}"

    @classmethod
    def from_entity(cls, b: e.BaseModel) -> BaseModelOut:
        """Convert a :class:`~aimass.entities.BaseModel`."""
        return cls(
            project=b.project,
            name=b.name,
            version=b.version,
            digest=b.digest,
            architecture=b.architecture,
            family=b.family,
            num_parameters=b.num_parameters,
            provenance=b.provenance,
            created_at=b.created_at,
        )


# -- registry -------------------------------------------------------------------------


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


# -- jobs -------------------------------------------------------------------------------


class TrainJobCreate(_In):
    """Queue a training job."""

    kind: Literal["train"] = "train"
    dataset: Ref
    base: Ref | None = Field(
        default=None,
        description="Base to train from; omitted: the dataset's recommended recipe (m3e-small "
        "fine-tuned for Chinese text, MiniLM features otherwise).",
    )
    model: Name
    config: dict[str, Any] = Field(default_factory=dict)
    alias: Name | None = None
    reuse: bool = Field(
        default=False,
        description="Finish at once with an existing version trained from identical inputs.",
    )
    privacy: dict[str, Any] | None = Field(
        default=None,
        description="Train with DP-SGD: target_epsilon, delta, max_grad_norm, accountant "
        "(prv|rdp), grad_sample_mode (hooks|ghost), train_embeddings (fine-tuning; default false).",
    )


class BatchPredictJobCreate(_In):
    """Queue a batch prediction over a dataset version, writing a result dataset."""

    kind: Literal["batch-predict"] = "batch-predict"
    model: Ref
    dataset: Ref
    output: Name
    split: Literal["train", "validation", "test"] | None = None


class EvaluateJobCreate(_In):
    """Queue an evaluation report for a model version over a labelled dataset."""

    kind: Literal["evaluate"] = "evaluate"
    model: Ref
    dataset: Ref
    split: Literal["train", "validation", "test"] = "test"
    group_field: str | None = Field(default=None, max_length=255)
    options: dict[str, Any] = Field(
        default_factory=dict, description="Report options (see aimass.evaluation.ReportOptions)."
    )


JobCreate = Annotated[
    TrainJobCreate | BatchPredictJobCreate | EvaluateJobCreate, Field(discriminator="kind")
]


class JobOut(_Out):
    """A job with its live progress and metrics."""

    id: str
    project: str
    kind: str
    status: str
    spec: dict[str, Any]
    progress: float
    metrics: dict[str, Any]
    result: dict[str, Any]
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    attempt: int
    cancel_requested: bool

    @property
    def finished(self) -> bool:
        """Succeeded, failed or cancelled."""
        return self.status in ("succeeded", "failed", "cancelled")

    @classmethod
    def from_entity(cls, j: e.Job) -> JobOut:
        """Convert a :class:`~aimass.entities.Job`."""
        return cls(
            id=j.id,
            project=j.project,
            kind=j.kind,
            status=str(j.status),
            spec=j.spec,
            progress=j.progress,
            metrics=j.metrics,
            result=j.result,
            error=j.error,
            created_at=j.created_at,
            started_at=j.started_at,
            finished_at=j.finished_at,
            attempt=j.attempt,
            cancel_requested=j.cancel_requested,
        )


class JobLogLineOut(_Out):
    """One job log line."""

    seq: int
    time: datetime
    level: str
    message: str

    @classmethod
    def from_entity(cls, line: e.JobLogLine) -> JobLogLineOut:
        """Convert a :class:`~aimass.entities.JobLogLine`."""
        return cls(seq=line.seq, time=line.time, level=line.level, message=line.message)


# -- predict --------------------------------------------------------------------------


class PredictRequest(_In):
    """Inputs to predict (the server bounds how many: ``AIMASS_MAX_PREDICT_BATCH``)."""

    inputs: list[str] = Field(min_length=1, max_length=100_000)
    explain: bool | Literal["integrated-gradients", "attention", "occlusion"] | None = Field(
        default=None,
        description="Add a per-word explanation to each prediction: true (integrated "
        "gradients) or a method name; at most AIMASS_MAX_EXPLAIN_BATCH inputs.",
    )


class GenerateRequest(_In):
    """A prompt and how to sample; the server bounds ``max_new_tokens`` (AIMASS_MAX_NEW_TOKENS)
    and the prompt's length (AIMASS_MAX_TEXT_CHARS and the model's context)."""

    prompt: str = Field(min_length=1)
    max_new_tokens: int | None = Field(
        default=None, ge=1, description="Default: 128, or AIMASS_MAX_NEW_TOKENS when lower."
    )
    temperature: float = Field(default=0.0, ge=0, le=100, description="0 = greedy.")
    top_p: float = Field(default=1.0, gt=0, le=1)
    top_k: int = Field(default=0, ge=0, le=1_000_000, description="0 = off.")
    stop: list[Annotated[str, Field(min_length=1, max_length=256)]] = Field(
        default_factory=list, max_length=16, description="Strings that end the text (excluded)."
    )
    seed: int | None = Field(default=None, ge=0, le=2**63 - 1)
    stream: bool = Field(
        default=False,
        description="Answer with server-sent events (also when Accept: text/event-stream).",
    )

    def options(self) -> dict[str, Any]:
        """The sampling options given, as ``Workspace.generate`` takes them."""
        return self.model_dump(exclude={"prompt", "stream"}, exclude_none=True)


class GenerateResponse(_Out):
    """The generated text, why it ended (``stop`` or ``length``), token counts and timing."""

    text: str
    finish_reason: Literal["stop", "length"]
    usage: dict[str, int]
    timing: dict[str, float]


class PredictResponse(_Out):
    """One prediction per input, in order, and the version that made them."""

    model: str
    version: int
    predictions: list[dict[str, Any]]


# -- audit ----------------------------------------------------------------------------


class AuditEventOut(_Out):
    """One audit log row."""

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

    @classmethod
    def from_entity(cls, a: e.AuditEvent) -> AuditEventOut:
        """Convert an :class:`~aimass.entities.AuditEvent`."""
        return cls(**{f: getattr(a, f) for f in cls.model_fields})


class BundleVerifyOut(_Out):
    """A registered version whose signature and files checked out."""

    ref: str
    digest: str
    files: int
    signed_by: str
    trusted: bool
    encrypted: bool


class AuditVerifyOut(_Out):
    """The result of verifying the chain."""

    ok: bool
    rows: int
    head_seq: int
    problems: list[str]
