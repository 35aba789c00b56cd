"""What one app holds: the workspace, the micro-batchers, metrics, the audit writer."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool

from aimass.entities import Job, ModelVersion, PipelineVersion
from aimass.server.console.session import SessionCodec
from aimass.server.deadlines import JobDeadlines
from aimass.server.throttle import Decision, Throttle
from aimass.serving.batching import (
    Backend,
    BatcherPool,
    BatchPolicy,
    InProcessBackend,
    MicroBatcher,
)
from aimass.settings import Settings
from aimass.store import DEFAULT_PROJECT, AuditRecord
from aimass.workspace import Workspace
from aimass.workspace.ttl import TTLCache

if TYPE_CHECKING:
    from aimass.serving.ray_serve import ScaleEvent

__all__ = ["BUCKET_CHECK_SECONDS", "ServerState"]

log = logging.getLogger("aimass.server")
#: How long a readiness probe trusts the last successful check of the artifacts' bucket
#: (probes come every few seconds; a failure is never remembered).
BUCKET_CHECK_SECONDS = 10.0


class ServerState:
    """Long-lived objects of one server, started and stopped with the app.

    Args:
        settings: The settings ``create_app`` was given.
        workspace: The workspace to serve (created from the settings when None).
    """

    def __init__(self, settings: Settings, workspace: Workspace | None = None) -> None:
        from aimass.server.metrics import Metrics

        self.settings = settings
        self.workspace = workspace or Workspace(settings)
        self._owns_workspace = workspace is None
        self.policy = BatchPolicy.from_settings(settings)
        self._batchers: BatcherPool | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.metrics = Metrics(
            queue_depth=lambda: self._batchers.pending if self._batchers else 0,
            job_counts=self.workspace.jobs.counts,
            runners=self.runner_stats,
        )
        self.ready = False
        self._bucket_checked_until = 0.0
        self.admin_key_file: Any = None
        self._console_sessions: SessionCodec | None = None
        # Hot-path lookups of predict: the version an alias names, and which projects
        # exist (projects are never deleted). Writes through this server invalidate.
        self.versions: TTLCache[tuple[str, str], ModelVersion] = TTLCache(
            settings.resolve_cache_seconds
        )
        self.projects: TTLCache[str, bool] = TTLCache(settings.resolve_cache_seconds)
        self.pipeline_versions: TTLCache[tuple[str, str], PipelineVersion] = TTLCache(
            settings.resolve_cache_seconds
        )
        self.throttle = Throttle(
            settings,
            on_decision=self._limit_decision,
            limit=self.workspace.limits.value,
            rates=self.workspace.limits.shared_rates(),
            slots=self.workspace.limits.shared_slots(),
        )
        self.deadlines = JobDeadlines(
            self.workspace.store, settings, on_stop=self._job_past_deadline
        )

    # -- lifecycle --------------------------------------------------------------------

    def start(self, *, workers: int | None = None) -> None:
        """Bootstrap the admin key and start job workers (blocking).

        Ready at once unless models are to be warmed: :meth:`open` warms them.
        """
        path, created = self.workspace.keys.ensure_admin()
        self.admin_key_file = path
        if created:
            log.warning("created the first admin API key", extra={"file": str(path)})
        from aimass.models.hf import preload_transformers

        # Job threads and model loads (tokenizers) import transformers concurrently, and
        # its lazy module is not safe for that: resolve its names here first, once.
        preload_transformers()
        count = self.settings.job_workers if workers is None else workers
        if count:
            self.workspace.jobs.start_workers(count, on_finished=self._job_finished)
            self.deadlines.start()
        self.throttle.start()
        self.ready = not self.settings.warm_models

    async def open(self, *, workers: int | None = None) -> None:
        """:meth:`start`, then warm ``warm_models``; ready once both are done."""
        await run_in_threadpool(self.start, workers=workers)
        for spec in self.settings.warm_models:
            await self.warm(spec)
        self.ready = True

    async def warm(self, spec: str) -> None:
        """Load ``[PROJECT/]NAME@ALIAS`` as predict serves it (runners started) and run one
        prediction, so the first request is fast."""
        project, _, ref = spec.rpartition("/")
        version = await self.resolve(ref, project or DEFAULT_PROJECT)
        batcher = await self.batcher(version)
        await batcher.predict(["warm-up"])
        log.info("warmed model", extra={"model": f"{version.project}/{version.ref}"})

    async def stop(self) -> None:
        """Close batchers, stop workers, flush the audit log."""
        self.ready = False
        if self._batchers is not None:
            await self._batchers.close()
            self._batchers = None
        self.deadlines.stop()
        self.throttle.stop()
        self.workspace.jobs.stop_workers()
        if self._owns_workspace:
            self.workspace.close()
        else:
            self.workspace.audit.close()

    def forget_versions(self, project: str, name: str | None = None) -> None:
        """Drop cached alias resolutions of ``project`` (of one model when ``name`` is given)."""
        self.versions.invalidate(
            lambda key, version: key[0] == project and name in (None, version.name)
        )

    async def resolve(self, ref: str, project: str) -> ModelVersion:
        """The version ``ref`` names in ``project`` (cached for ``resolve_cache_seconds``;
        concurrent misses share one lookup)."""
        return await self.versions.aget_or_load(
            (project, ref),
            lambda: run_in_threadpool(self.workspace.models.get, ref, project=project),
        )

    def forget_pipelines(self, project: str, name: str) -> None:
        """Drop cached resolutions of pipeline ``name`` in ``project`` (an alias moved)."""
        self.pipeline_versions.invalidate(
            lambda key, version: key[0] == project and version.name == name
        )

    async def resolve_pipeline(self, ref: str, project: str) -> PipelineVersion:
        """The pipeline version ``ref`` names in ``project`` (cached like :meth:`resolve`)."""
        return await self.pipeline_versions.aget_or_load(
            (project, ref),
            lambda: run_in_threadpool(self.workspace.pipelines.get, ref, project=project),
        )

    async def require_project(self, project: str) -> None:
        """NotFound unless ``project`` exists (positive answers cached)."""

        async def exists() -> bool:
            await run_in_threadpool(self.workspace.projects.get, project)
            return True

        await self.projects.aget_or_load(project, exists)

    def _limit_decision(self, decision: Decision) -> None:
        # One audit row when a subject starts being refused, not one per refused request.
        log.warning(
            "limit started refusing",
            extra={"limit": decision.limit, "subject": decision.subject},
        )
        project = decision.subject.removeprefix("project:")
        self.workspace.audit.writer.submit(
            AuditRecord(
                actor="system:limits",
                project=project if decision.subject.startswith("project:") else None,
                action="limit.throttled",
                resource=decision.subject,
                outcome="RESOURCE_EXHAUSTED",
                status=429,
                details={
                    "limit": decision.limit,
                    "value": decision.value,
                    "retry_after": decision.retry_after,
                },
            )
        )

    def _job_past_deadline(self, job: Job, limit: float) -> None:
        self.workspace.audit.writer.submit(
            AuditRecord(
                actor="system:limits",
                project=job.project,
                action="limit.job_stopped",
                resource=f"/v1/projects/{job.project}/jobs/{job.id}",
                outcome="RESOURCE_EXHAUSTED",
                details={"limit": "max_job_seconds", "value": limit, "kind": job.kind},
            )
        )

    def _job_finished(self, job: Job) -> None:
        # A finished training job may have registered a version and moved an alias.
        self.forget_versions(job.project)
        self.metrics.on_job_finished(job)
        self.workspace.audit.writer.submit(
            AuditRecord(
                actor="system:jobs",
                project=job.project,
                action=f"job.{job.status}",
                resource=f"/v1/projects/{job.project}/jobs/{job.id}",
                outcome="ok" if str(job.status) == "succeeded" else str(job.status),
                details={"kind": job.kind, "result": job.result, "error": job.error},
            )
        )

    # -- serving -------------------------------------------------------------------------

    @property
    def runners(self) -> int:
        """Runner processes per served model version (0: batches run in this process)."""
        if self.settings.serve_runners is not None:
            return self.settings.serve_runners
        from aimass.models.device import resolve_device

        return 1 if resolve_device(self.settings.device).type == "cuda" else 2

    def artifacts_reachable(self) -> bool:
        """Whether the artifacts' object store answers (always, without one); the reason
        of a failure goes to the log, never to the keyless caller."""
        now = time.monotonic()
        if now < self._bucket_checked_until:
            return True
        try:
            self.workspace.artifacts.check_remote()
        except Exception as exc:  # whatever failed, the server is not ready
            log.warning("readiness: the artifact object store failed its check: %s", exc)
            return False
        self._bucket_checked_until = now + BUCKET_CHECK_SECONDS
        return True

    def runner_stats(self) -> dict[str, tuple[int, int]]:
        """Per loaded model (``project/model@version``): live runner processes, restarts."""
        return {name: (len(b.pids()), b.restarts) for name, b in self._backends().items()}

    def runner_pids(self) -> dict[str, list[int]]:
        """Per loaded model: the process ids of its runners (empty when it runs in process)."""
        return {name: b.pids() for name, b in self._backends().items()}

    def _backends(self) -> dict[str, Backend]:
        return {} if self._batchers is None else self._batchers.backends()

    def _backend(self, version: ModelVersion) -> Backend:
        # Once per load (refused versions are asked again on their next request).
        self.workspace.serving.check_license(version)
        backend, graphs = self.workspace.serving.plan_uri(version)
        self.metrics.serve_backend.labels(version.project, version.ref, backend).set(1)
        if self.settings.serve_with == "ray":  # each replica resolves the graphs itself
            return self._ray_backend(version, backend, graphs)
        runners = self.runners
        if runners == 0:
            return InProcessBackend(
                lambda: self.workspace.serving.load_version(version), name=version.ref
            )
        from aimass.serving.runner import RunnerPool, default_runner_threads

        return RunnerPool(
            self.workspace.artifacts.resolve(version.uri),
            backend=backend,
            graph=None if graphs is None else self.workspace.artifacts.resolve(graphs),
            count=runners,
            threads=self.settings.serve_runner_threads or default_runner_threads(runners),
            device=self.settings.device,
            name=f"{version.project}/{version.ref}",
            timeout=self.settings.serve_runner_timeout_seconds,
            # Generations share a runner's decode steps (continuous batching).
            multiplex=version.task in ("causal-lm", "seq2seq"),
        )

    def _ray_backend(self, version: ModelVersion, backend: str, graphs: str | None) -> Backend:
        from aimass.serving.ray_serve import RayServeBackend
        from aimass.workspace.secrets import open_artifact_store

        return RayServeBackend(
            self.settings,
            project=version.project,
            model=version.name,
            version=version.version,
            digest=version.digest,
            uri=version.uri,
            backend=backend,
            graphs=graphs,
            open_store=open_artifact_store,
            on_scale=functools.partial(self._replicas_changed, version),
        )

    def _replicas_changed(self, version: ModelVersion, event: ScaleEvent) -> None:
        """A served version's Ray Serve replicas changed (from its watcher thread): the
        ``aimass_serve_replicas`` gauge and a ``serving.scale`` audit record."""
        gauge = self.metrics.serve_replicas
        if event.reason == "deleted":
            with contextlib.suppress(KeyError):  # never set: the deployment failed
                gauge.remove(version.project, version.ref)
        else:
            gauge.labels(version.project, version.ref).set(event.after)
        self.workspace.audit.writer.submit(
            AuditRecord(
                actor="system:serving",
                project=version.project,
                action="serving.scale",
                resource=f"/v1/projects/{version.project}/models/{version.name}"
                f"/versions/{version.version}",
                outcome="ok",
                details={
                    "from": event.before,
                    "to": event.after,
                    "reason": event.reason,
                    "application": event.app,
                },
            )
        )

    @property
    def console_sessions(self) -> SessionCodec:
        """Signs and checks the console's session cookies (a key derived from the home)."""
        if self._console_sessions is None:
            self._console_sessions = SessionCodec(
                self.workspace.derived_key("console-sessions"),
                lifetime=self.settings.console_session_hours * 3600,
            )
        return self._console_sessions

    async def backend(self, version: ModelVersion) -> Backend:
        """Where a resolved version is served (its runners, this process, or its Ray Serve
        replicas with ``serve_with=ray``), loaded: the one path of its predictions,
        explanations and generations."""
        await self.batcher(version)
        assert self._batchers is not None  # made by batcher()
        return self._batchers.backend_of(version.digest)

    async def batcher(self, version: ModelVersion) -> MicroBatcher:
        """The micro-batcher for a resolved model version, its model loaded."""
        loop = asyncio.get_running_loop()
        if self._batchers is None or self._loop is not loop:
            # Batchers belong to one event loop (tests may run several in turn).
            self._batchers = BatcherPool(
                self.policy,
                capacity=self.settings.model_cache_size,
                on_batch=self.metrics.on_batch,
            )
            self._loop = loop
        return await self._batchers.get(
            version.digest,
            name=f"{version.project}/{version.ref}",
            backend=lambda: self._backend(version),
        )
