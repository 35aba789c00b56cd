"""``ws.jobs``: training, evaluation and batch prediction as queued jobs, the worker
threads that run them, and the recipe chosen when a training names no base."""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from aimass.entities import (
    Attachment,
    BaseModel,
    Job,
    JobLogLine,
    ModelVersion,
)
from aimass.errors import (
    InvalidArgument,
    NotFound,
)
from aimass.jobs.audit import AuditSpec
from aimass.jobs.batch import BatchPredictSpec
from aimass.jobs.evaluate import EvaluateSpec
from aimass.jobs.optimize import OptimizeSpec
from aimass.refs import parse_ref
from aimass.store import DEFAULT_PROJECT

if TYPE_CHECKING:
    from aimass.jobs.pool import WorkerPool
    from aimass.jobs.train import TrainSpec
    from aimass.training.callbacks import Callback
    from aimass.workspace import Workspace
from aimass.workspace._service import Service

__all__ = ["JobService"]


class JobService(Service):
    """``ws.jobs``: submit, follow, cancel and run jobs."""

    def __init__(self, ws: Workspace) -> None:
        super().__init__(ws)
        self._pool: WorkerPool | None = None

    def with_recipe(self, spec: TrainSpec, *, project: str = DEFAULT_PROJECT) -> TrainSpec:
        """``spec`` itself when it names a base; else with the dataset's recommended recipe.

        The recipe (``aimass.training.recipes.recommended_recipe``: m3e-small fine-tuned
        for Chinese text, or Gemma-3 with LoRA under ``commercial_use_only``; MiniLM
        features otherwise) gives the base, imported here if the project lacks it,
        and the settings the caller did not set; a caller who asks for another mode
        keeps only the base.
        """
        if spec.base is not None:
            return spec
        from aimass.training.recipes import recommended_recipe

        task = spec.config.get("task", "classification")
        if task not in ("classification", "regression"):
            raise InvalidArgument(
                f"task {task!r} has no recommended base: give one with --base (the recipes "
                "cover classification and regression)",
                field="base",
            )

        recipe = recommended_recipe(
            self._ws.datasets.get(spec.dataset, project=project).stats,
            commercial_use=self._ws.settings.commercial_use_only,
        )
        try:
            base = self.store.bases.get(project, recipe.base)
        except NotFound:
            base = None
        if base is None or base.provenance.get("source") != "package":
            base, _created = self._ws.bases.import_(recipe.base, project=project)
        config = spec.config
        if config.get("mode") in (None, recipe.config.get("mode")):
            config = {**recipe.config, **config}
        return replace(spec, base=base.ref, config=config)

    def _check_license(self, spec: TrainSpec, base: BaseModel, project: str) -> None:
        """Under ``commercial_use_only``, refuse a base whose weights are not licensed
        for commercial use (its provenance, inherited by bases made from it), and a
        distillation teacher trained from one: its soft labels carry those weights'
        knowledge into the student."""
        if not self._ws.settings.commercial_use_only:
            return
        from aimass.workspace.licenses import restriction

        teacher = spec.config.get("teacher")
        found = restriction(
            self.store, project, base=base, teacher=None if teacher is None else str(teacher)
        )
        if found is None:
            return
        fix = (
            "distil from a teacher trained from one"
            if found.field == "teacher"
            else "train from another base (each one's license: aimass bases show NAME), "
            "without --base for the recommended commercially usable recipe, or from scratch "
            "(aimass recipes chinese-ner --from-scratch)"
        )
        raise InvalidArgument(
            f"{found.reason}, and this deployment trains only from commercially usable "
            f"bases (AIMASS_COMMERCIAL_USE_ONLY=true): {fix}",
            field=found.field,
        )

    def find_trained(
        self, spec: TrainSpec, *, project: str = DEFAULT_PROJECT
    ) -> ModelVersion | None:
        """A registered version trained from exactly these inputs, if one exists."""
        from aimass.jobs.train import config_digest, pin_refs, resolve_inputs

        spec = pin_refs(self.store, project, self.with_recipe(spec, project=project))
        dataset, base, config = resolve_inputs(self.store, project, spec)
        digest = config_digest(dataset, base, config, spec.dp_config(dataset))
        return self.store.registry.find_by_config_digest(project, spec.model, digest)

    def submit_training(
        self, spec: TrainSpec, *, project: str = DEFAULT_PROJECT, reuse: bool = False
    ) -> Job:
        """Validate the spec and queue a training job (run it with :meth:`run_job`).

        With ``reuse``, when a version trained from identical inputs exists, the job
        is recorded as succeeded at once with that version (and the alias moved).
        """
        from aimass.entities import JobStatus
        from aimass.jobs.train import pin_refs, resolve_inputs

        spec = pin_refs(self.store, project, self.with_recipe(spec, project=project))
        _, base, _ = resolve_inputs(self.store, project, spec)
        self._check_license(spec, base, project)
        existing = self.find_trained(spec, project=project) if reuse else None
        job = self.store.jobs.create(project, "train", spec.to_dict())
        if existing is not None:
            claimed = self.store.jobs.claim(job.id)
            if spec.alias:
                existing = self._ws.models.set_alias(
                    spec.model, spec.alias, existing.version, project=project
                )
            self.store.jobs.log(job.id, f"identical inputs: reusing {existing.ref}")
            return self.store.jobs.finish(
                job.id,
                JobStatus.SUCCEEDED,
                attempt=claimed.attempt,
                result={
                    "model": existing.name,
                    "version": existing.version,
                    "digest": existing.digest,
                    "aliases": list(existing.aliases),
                    "reused": True,
                },
            )
        self._wake()
        return job

    def submit_batch_predict(
        self, spec: BatchPredictSpec, *, project: str = DEFAULT_PROJECT
    ) -> Job:
        """Check the model and dataset exist (and, under ``commercial_use_only``, that the
        model may be served), pin the model version, queue the job."""
        model = self._ws.models.get(spec.model, project=project)
        self._ws.serving.check_license(model)
        self._ws.datasets.get(spec.dataset, project=project)
        pinned = BatchPredictSpec(**{**spec.to_dict(), "model": model.ref})
        job = self.store.jobs.create(project, "batch-predict", pinned.to_dict())
        self._wake()
        return job

    def list(
        self,
        *,
        project: str = DEFAULT_PROJECT,
        status: str | None = None,
        kind: str | None = None,
        limit: int = 100,
    ) -> builtins.list[Job]:
        """Newest jobs first."""
        from aimass.entities import JobStatus

        if status is not None and status not in set(JobStatus):
            raise InvalidArgument(
                f"job status {status!r}: use one of {', '.join(JobStatus)}", status=status
            )
        return self.store.jobs.list(
            project, status=JobStatus(status) if status else None, kind=kind, limit=limit
        )

    def get(self, job_id: str, *, project: str = DEFAULT_PROJECT) -> Job:
        """One job, with its live progress and metrics."""
        return self.store.jobs.get(job_id, project=project)

    def logs(
        self, job_id: str, *, project: str = DEFAULT_PROJECT, after: int = 0, limit: int = 1000
    ) -> builtins.list[JobLogLine]:
        """A job's log lines after sequence number ``after``."""
        return self.store.jobs.logs(job_id, project=project, after=after, limit=limit)

    def cancel(self, job_id: str, *, project: str = DEFAULT_PROJECT) -> Job:
        """Cancel a queued job now, or a running one within one step."""
        return self.store.jobs.request_cancel(job_id, project=project)

    def start_workers(self, workers: int, *, on_finished: Any = None) -> WorkerPool:
        """Run queued jobs in ``workers`` background threads (recovering dead ones first)."""
        from aimass.jobs.pool import WorkerPool
        from aimass.workspace.secrets import open_artifact_store

        pool = WorkerPool(
            store=self.store,
            artifacts=self.artifacts,
            settings=self.settings,
            workers=workers,
            on_finished=on_finished,
            # With executor=ray, each job's Ray worker opens the artifact store by this.
            open_artifacts=open_artifact_store,
        )
        pool.start()  # raises (Ray unreachable) before this workspace counts it running
        self._pool = pool
        return pool

    def stop_workers(self) -> None:
        """Stop the worker threads (running jobs get a few seconds to finish)."""
        if self._pool is not None:
            self._pool.stop()
            self._pool = None

    @property
    def workers_running(self) -> bool:
        """Whether this workspace's worker threads are taking queued jobs."""
        return self._pool is not None

    def _wake(self) -> None:
        if self._pool is not None:
            self._pool.wake()

    def run(self, job_id: str, *, callbacks: Sequence[Callback] = ()) -> Job:
        """Run a queued job in this process (blocking) and return its final record."""
        from aimass.jobs.runner import run_job

        return run_job(
            job_id,
            store=self.store,
            artifacts=self.artifacts,
            settings=self.settings,
            callbacks=callbacks,
        )

    def train(
        self,
        spec: TrainSpec,
        *,
        project: str = DEFAULT_PROJECT,
        callbacks: Sequence[Callback] = (),
    ) -> ModelVersion:
        """Train now, in this process, and return the registered version."""
        job = self.run(self.submit_training(spec, project=project).id, callbacks=callbacks)
        return self.store.registry.get_version(
            project, parse_ref(f"{job.result['model']}@{job.result['version']}")
        )

    def submit_evaluation(self, spec: EvaluateSpec, *, project: str = DEFAULT_PROJECT) -> Job:
        """Check the spec and queue an ``evaluate`` job (aliases are pinned to their version)."""
        from aimass.jobs.evaluate import submit_evaluation

        return submit_evaluation(self.store, self.artifacts, project, spec)

    def evaluate(
        self,
        spec: EvaluateSpec,
        *,
        project: str = DEFAULT_PROJECT,
        callbacks: Sequence[Callback] = (),
    ) -> Attachment:
        """Build the evaluation report now, in this process; returns its attachment."""
        if spec.pipeline is not None:
            raise InvalidArgument(
                "a pipeline's report is recorded on the pipeline version, not attached to a "
                "model: use ws.pipelines.evaluate"
            )
        job = self.run(self.submit_evaluation(spec, project=project).id, callbacks=callbacks)
        ref = parse_ref(f"{job.result['model']}@{job.result['version']}")
        found = self.store.registry.attachments(project, ref, kind="evaluation")
        return next(a for a in found if a.name == job.result["attachment"])

    def submit_audit(self, spec: AuditSpec, *, project: str = DEFAULT_PROJECT) -> Job:
        """Check the spec (and, under ``commercial_use_only``, that the model may be served:
        the attack runs it) and queue an ``audit-privacy`` job, the version pinned."""
        from aimass.jobs.audit import submit_audit

        self._ws.serving.check_license(self._ws.models.get(spec.model, project=project))
        job = submit_audit(self.store, project, spec)
        self._wake()
        return job

    def audit_privacy(
        self,
        spec: AuditSpec,
        *,
        project: str = DEFAULT_PROJECT,
        callbacks: Sequence[Callback] = (),
    ) -> dict[str, Any]:
        """Run the membership-inference audit now, in this process; returns its report."""
        job = self.run(self.submit_audit(spec, project=project).id, callbacks=callbacks)
        return dict(job.result["report"])

    def submit_optimization(self, spec: OptimizeSpec, *, project: str = DEFAULT_PROJECT) -> Job:
        """Check the spec and queue an ``optimize`` job (aliases are pinned to their version)."""
        from aimass.jobs.optimize import OPTIMIZE, resolve_optimization

        version, dataset = resolve_optimization(self.store, self.artifacts, project, spec)
        pinned = OptimizeSpec(**{**spec.to_dict(), "model": version.ref, "dataset": dataset.ref})
        job = self.store.jobs.create(project, OPTIMIZE, pinned.to_dict())
        self._wake()
        return job

    def optimize(
        self,
        spec: OptimizeSpec,
        *,
        project: str = DEFAULT_PROJECT,
        callbacks: Sequence[Callback] = (),
    ) -> ModelVersion:
        """Build the version's ONNX graphs and parity record now; returns the updated version."""
        job = self.run(self.submit_optimization(spec, project=project).id, callbacks=callbacks)
        return self.store.registry.get_version(
            project, parse_ref(f"{job.result['model']}@{job.result['version']}")
        )

    def active(self, *, project: str = DEFAULT_PROJECT, most: int = 1000) -> int:
        """Queued and running jobs of ``project``, counted up to ``most`` of each."""
        from aimass.entities import JobStatus

        return sum(
            len(self.store.jobs.list(project, status=status, limit=most))
            for status in (JobStatus.QUEUED, JobStatus.RUNNING)
        )

    def counts(self) -> dict[str, int]:
        """Jobs per status over every project (the metrics' gauge)."""
        return self.store.jobs.counts()
