"""The namespace Protocols of the operations contract (see :mod:`aimass.operations`): data,
models, pipelines and jobs; the administrative ones are in :mod:`aimass.operations._admin`."""

from __future__ import annotations

import builtins
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from aimass.schemas import (
        AttachmentOut,
        BaseModelOut,
        BundleVerifyOut,
        DatasetVersionOut,
        JobLogLineOut,
        JobOut,
        ModelVersionOut,
        PackagedBaseOut,
        PipelinePredictResponse,
        PipelineVersionOut,
        RegisteredModelOut,
        SampleOut,
    )

__all__ = ["Bases", "Datasets", "Jobs", "Models", "Pipelines"]


class Datasets(Protocol):
    """``.datasets``: versioned, validated text datasets."""

    def list(self, *, project: str | None = None) -> builtins.list[DatasetVersionOut]:
        """The latest version of every dataset."""
        ...

    def get(self, ref: str, *, project: str | None = None) -> DatasetVersionOut:
        """``NAME`` (latest) or ``NAME@VERSION``."""
        ...

    def versions(
        self, name: str, *, project: str | None = None
    ) -> builtins.list[DatasetVersionOut]:
        """Every version of ``name``, oldest first."""
        ...

    def upload(
        self,
        file: str | Path,
        *,
        name: str,
        fmt: str | None = None,
        project: str | None = None,
        **options: Any,
    ) -> DatasetVersionOut:
        """Import a JSONL/CSV/Parquet/CoNLL file from the caller's machine."""
        ...

    def import_path(
        self,
        server_path: str,
        *,
        name: str,
        fmt: str | None = None,
        project: str | None = None,
        **options: Any,
    ) -> DatasetVersionOut:
        """Import a file on the machine holding the home (inside its import dirs)."""
        ...

    def import_sample(
        self,
        sample: str,
        *,
        name: str | None = None,
        seed: int = 0,
        deidentify: dict[str, Any] | None = None,
        project: str | None = None,
    ) -> DatasetVersionOut:
        """Import a packaged sample dataset."""
        ...

    def delete_version(
        self, name: str, version: int, *, project: str | None = None
    ) -> DatasetVersionOut:
        """Delete a version (its file goes with ``aimass gc``; models keep its lineage)."""
        ...

    def samples(self) -> builtins.list[SampleOut]:
        """The packaged samples."""
        ...


class Bases(Protocol):
    """``.bases``: pretrained encoders and decoders to train on."""

    def list(self, *, project: str | None = None) -> builtins.list[BaseModelOut]:
        """The latest version of every base."""
        ...

    def get(self, name: str, *, project: str | None = None) -> BaseModelOut:
        """``NAME`` (latest) or ``NAME@VERSION`` of a base."""
        ...

    def versions(self, name: str, *, project: str | None = None) -> builtins.list[BaseModelOut]:
        """Every version of ``name``, oldest first."""
        ...

    def packaged(self) -> builtins.list[PackagedBaseOut]:
        """The packaged bases, and whether each one's package is installed."""
        ...

    def import_(
        self,
        source: str | None = None,
        *,
        path: str | None = None,
        name: str | None = None,
        project: str | None = None,
    ) -> BaseModelOut:
        """Import a packaged base (``minilm``) or a Hugging Face model directory."""
        ...

    def from_model(self, ref: str, *, name: str, project: str | None = None) -> BaseModelOut:
        """Register a trained model version as base ``name``, its task head dropped."""
        ...

    def shrink(
        self,
        ref: str,
        *,
        name: str,
        layers: int,
        pick: str = "first",
        intermediate_size: int = 0,
        project: str | None = None,
    ) -> BaseModelOut:
        """Base ``ref`` cut to ``layers`` layers (``first`` or ``spread``) as ``name``."""
        ...

    def train_tokenizer(
        self,
        dataset: str,
        *,
        name: str,
        kind: str = "wordpiece",
        vocab_size: int = 8000,
        min_frequency: int = 2,
        project: str | None = None,
    ) -> BaseModelOut:
        """Train a tokenizer on ``dataset``'s training split; register it as ``name``."""
        ...

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
    ) -> BaseModelOut:
        """A randomly initialised base of ``preset`` size around a registered tokenizer."""
        ...

    def delete_version(
        self, name: str, version: int, *, project: str | None = None
    ) -> BaseModelOut:
        """Delete a version no model version was trained from (Conflict naming them)."""
        ...


class Models(Protocol):
    """``.models``: the registry of trained versions, their aliases and reports."""

    def list(self, *, project: str | None = None) -> builtins.list[RegisteredModelOut]:
        """Registered models."""
        ...

    def versions(self, name: str, *, project: str | None = None) -> builtins.list[ModelVersionOut]:
        """Every version of ``name``."""
        ...

    def get(self, ref: str, *, project: str | None = None) -> ModelVersionOut:
        """``NAME``, ``NAME@VERSION`` or ``NAME@ALIAS``."""
        ...

    def set_alias(
        self, name: str, alias: str, version: int, *, project: str | None = None
    ) -> ModelVersionOut:
        """Point ``alias`` at ``version``."""
        ...

    def delete_alias(self, name: str, alias: str, *, project: str | None = None) -> None:
        """Remove an alias."""
        ...

    def card(self, ref: str, *, project: str | None = None) -> str:
        """The model card (Markdown)."""
        ...

    def verify(self, ref: str, *, project: str | None = None) -> BundleVerifyOut:
        """Check a version's signature and file digests."""
        ...

    def import_(
        self,
        path: str,
        *,
        name: str,
        alias: str | None = None,
        project: str | None = None,
    ) -> ModelVersionOut:
        """Register a Hugging Face classifier directory as a version of ``name``."""
        ...

    def export(
        self, ref: str, destination: str | Path, *, project: str | None = None
    ) -> builtins.list[str]:
        """Write a version's bundle (a Hugging Face model directory) to ``destination``."""
        ...

    def attachments(
        self, ref: str, *, kind: str | None = None, project: str | None = None
    ) -> builtins.list[AttachmentOut]:
        """Reports attached to a version (``kind``: ``evaluation``, ``privacy-audit``)."""
        ...

    def report(
        self, ref: str, report: str, *, fmt: str = "html", project: str | None = None
    ) -> bytes:
        """An evaluation report's ``report.html`` or ``report.json``."""
        ...

    def delete_version(
        self, name: str, version: int, *, project: str | None = None
    ) -> ModelVersionOut:
        """Delete a version no alias points at."""
        ...


class Pipelines(Protocol):
    """``.pipelines``: versioned pipelines of models and built-in steps, their models pinned."""

    def create(
        self,
        spec: Mapping[str, Any],
        *,
        name: str,
        description: str = "",
        project: str | None = None,
    ) -> PipelineVersionOut:
        """Check ``spec``, pin its models (aliases resolved now) and store a new version."""
        ...

    def list(self, *, project: str | None = None) -> builtins.list[PipelineVersionOut]:
        """The latest version of every pipeline."""
        ...

    def get(self, ref: str, *, project: str | None = None) -> PipelineVersionOut:
        """``NAME``, ``NAME@VERSION`` or ``NAME@ALIAS``."""
        ...

    def versions(
        self, name: str, *, project: str | None = None
    ) -> builtins.list[PipelineVersionOut]:
        """Every version of ``name``, oldest first."""
        ...

    def set_alias(
        self, name: str, alias: str, version: int, *, project: str | None = None
    ) -> PipelineVersionOut:
        """Point ``alias`` at ``version``."""
        ...

    def predict(
        self,
        ref: str,
        inputs: Sequence[str],
        *,
        explain: bool | str | None = None,
        project: str | None = None,
    ) -> PipelinePredictResponse:
        """Run the pipeline over ``inputs``: a result with its trace per input."""
        ...

    def delete_alias(self, name: str, alias: str, *, project: str | None = None) -> None:
        """Remove ``alias`` from pipeline ``name``."""
        ...

    def delete_version(
        self, name: str, version: int, *, project: str | None = None
    ) -> PipelineVersionOut:
        """Delete a version no alias points at."""
        ...

    def report(
        self, ref: str, report: str, *, fmt: str = "html", project: str | None = None
    ) -> bytes:
        """Evaluation report ``report`` of pipeline version ``ref``, HTML or JSON."""
        ...


class Jobs(Protocol):
    """``.jobs``: training, evaluation and batch prediction, queued and run by workers."""

    def submit_training(
        self,
        *,
        dataset: str,
        model: str,
        base: str | None = None,
        config: dict[str, Any] | None = None,
        alias: str | None = None,
        reuse: bool = False,
        privacy: dict[str, Any] | None = None,
        project: str | None = None,
    ) -> JobOut:
        """Queue a training job."""
        ...

    def submit_batch_predict(
        self,
        *,
        model: str,
        dataset: str,
        output: str,
        split: str | None = None,
        project: str | None = None,
    ) -> JobOut:
        """Queue a batch prediction writing the result dataset ``output``."""
        ...

    def submit_evaluation(
        self,
        *,
        model: str | None = None,
        dataset: str,
        split: str = "test",
        group_field: str | None = None,
        options: dict[str, Any] | None = None,
        pipeline: str | None = None,
        project: str | None = None,
    ) -> JobOut:
        """Queue an evaluation report of ``model`` (or of ``pipeline``, a pipeline
        version) over a labelled ``dataset``."""
        ...

    def submit_optimization(
        self,
        *,
        model: str,
        dataset: str | None = None,
        split: str = "test",
        threshold: float = 0.5,
        project: str | None = None,
    ) -> JobOut:
        """Queue ONNX graphs (fp32, int8) and a parity run for ``model``; ``dataset``
        defaults to the one it was trained on, ``threshold`` is the int8 gate."""
        ...

    def submit_audit(
        self,
        *,
        model: str,
        dataset: str,
        max_examples: int = 1000,
        calibrated: bool = True,
        project: str | None = None,
    ) -> JobOut:
        """Queue a membership-inference audit of ``model`` against ``dataset``, the data it
        was trained on; the report is the finished job's ``result["report"]``."""
        ...

    def list(
        self,
        *,
        status: str | None = None,
        kind: str | None = None,
        limit: int = 100,
        project: str | None = None,
    ) -> builtins.list[JobOut]:
        """Jobs, newest first."""
        ...

    def get(self, job_id: str, *, project: str | None = None) -> JobOut:
        """A job with its progress and metrics."""
        ...

    def logs(
        self, job_id: str, *, after: int = 0, project: str | None = None
    ) -> builtins.list[JobLogLineOut]:
        """Log lines after sequence number ``after``."""
        ...

    def cancel(self, job_id: str, *, project: str | None = None) -> JobOut:
        """Cancel a job (queued: at once; running: within one step)."""
        ...

    def results(
        self,
        job_id: str,
        destination: str | Path = ".",
        *,
        fmt: str = "parquet",
        project: str | None = None,
    ) -> Path:
        """Write a finished batch prediction's result dataset; the file written."""
        ...

    def wait(
        self,
        job_id: str,
        *,
        progress: Callable[[JobOut], None] | None = None,
        poll: float = 1.0,
        timeout: float | None = None,
        project: str | None = None,
    ) -> JobOut:
        """Until the job finishes; raises ``JobFailed`` if it failed."""
        ...
