"""Wire schemas of jobs: queueing training, batch prediction and evaluation, and reading them back.

``JobCreate`` is the request body, discriminated by ``kind``; ``JobOut`` is a job
with its live progress and metrics and ``JobLogLineOut`` one line of its log.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field

from aimass.schemas._common import Name, Ref, _In, _Out

if TYPE_CHECKING:
    # Types only: schemas and entities are sibling layers; converters read attributes.
    from aimass import entities as e


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
    config: dict[str, Any] = Field(
        default_factory=dict,
        description="Hyperparameters (aimass.training.TrainConfig fields: task, mode, epochs, "
        "lr, batch_size, ...; workers: data-parallel Ray Train workers, 1-64, default 1).",
    )
    alias: Name | None = None
    reuse: bool = Field(
        default=False,
        description="Finish at once with an existing version trained from identical inputs.",
    )
    privacy: dict[str, Any] | None = Field(
        default=None,
        description="Train with DP-SGD: target_epsilon, delta, max_grad_norm, accountant "
        "(prv|rdp), grad_sample_mode (hooks|ghost), train_embeddings (fine-tuning; default false), "
        "clipping (flat|per-layer; default flat).",
    )


class BatchPredictJobCreate(_In):
    """Queue a batch prediction over a dataset version, writing a result dataset."""

    kind: Literal["batch-predict"] = "batch-predict"
    model: Ref
    dataset: Ref
    output: Name
    split: Literal["train", "validation", "test"] | None = None


class EvaluateJobCreate(_In):
    """Queue an evaluation report for a model version (or a pipeline version) over a
    labelled dataset: give ``model`` or ``pipeline``."""

    kind: Literal["evaluate"] = "evaluate"
    model: Ref | None = None
    pipeline: Ref | None = Field(
        default=None, description="A pipeline version to evaluate instead of a model."
    )
    dataset: Ref
    split: Literal["train", "validation", "test"] = "test"
    group_field: str | None = Field(default=None, max_length=255)
    options: dict[str, Any] = Field(
        default_factory=dict, description="Report options (see aimass.evaluation.ReportOptions)."
    )


class OptimizeJobCreate(_In):
    """Queue ONNX graphs (fp32 and int8) of a model version and their parity run."""

    kind: Literal["optimize"] = "optimize"
    model: Ref
    dataset: Ref | None = Field(
        default=None, description="Parity rows; default the dataset the model was trained on."
    )
    split: Literal["train", "validation", "test"] = "test"
    threshold: float = Field(
        default=0.5,
        ge=0,
        le=100,
        description="Largest quality drop at which int8 serves: accuracy points, or percent "
        "of the RMSE for regression.",
    )


class AuditJobCreate(_In):
    """Queue a membership-inference audit of a model version, attached to it."""

    kind: Literal["audit-privacy"] = "audit-privacy"
    model: Ref
    dataset: Ref = Field(description="The dataset the model was trained on.")
    max_examples: int = Field(
        default=1000, ge=10, le=100_000, description="Members (and as many non-members)."
    )
    calibrated: bool = Field(
        default=True, description="Also the attack calibrated by a reference model."
    )


JobCreate = Annotated[
    TrainJobCreate | BatchPredictJobCreate | EvaluateJobCreate | OptimizeJobCreate | AuditJobCreate,
    Field(discriminator="kind"),
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
