"""The Ray executor: job bodies run on a Ray cluster, the store stays the queue.

With ``AIMASS_EXECUTOR=ray`` the pool's threads still take queued jobs from the
store and claim them (so no two servers dispatch one job), then run each job's
body in its own Ray actor instead of in the thread. The actor rebuilds the
settings from JSON, opens the store and the artifact store itself and runs the
same :func:`~aimass.jobs.runner.run_claimed_job` as the thread would: heartbeats,
progress, logs and cancellation go through the store exactly as they do today.

The actor is *detached*: it outlives the server that started it, so a server
restart does not stop a running job; the job keeps its heartbeat and finishes on
its own, and a later sweep removes the idle actor (:meth:`RayExecutor.reap`).
Ray does not retry anything (``max_restarts=0``): recovery is ours. When the
actor dies (its node went away, the kernel's OOM killer), the waiting thread
requeues the job if it has a checkpoint, or fails it with Ray's error.

Only strings cross into Ray: the job id, its attempt, the settings as JSON and
the dotted name of the function that opens the artifact store. Secrets are not
among them (Ray keeps task arguments in its control store and shows actor specs
in its state API): the settings' secrets are left out of the JSON, and a Ray node
must hold the ones the server holds in its own environment (``AIMASS_MASTER_KEY``
…) or under a shared home, or the job fails saying which.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from aimass.artifacts.database_key import database_key
from aimass.artifacts.storage import ArtifactStore
from aimass.cluster import connect, import_opener, opener_name, settings_from_json, settings_to_json
from aimass.entities import Job, JobStatus
from aimass.errors import Conflict, NotFound
from aimass.settings import Settings
from aimass.store import Store

__all__ = ["ACTOR_PREFIX", "RayExecutor", "actor_name"]

log = logging.getLogger("aimass.jobs.ray")

ACTOR_PREFIX = "aimass-job-"
"""Named actors of this executor: ``aimass-job-<job id>-<attempt>``."""

WAIT_SLICE_SECONDS = 0.5
"""How long a waiting thread blocks on Ray before it looks at the pool and the job again."""

ArtifactOpener = Callable[[Settings], ArtifactStore]


def actor_name(job_id: str, attempt: int) -> str:
    """The Ray actor name of ``job_id``'s attempt ``attempt``."""
    return f"{ACTOR_PREFIX}{job_id}-{attempt}"


def _parse_actor_name(name: str) -> tuple[str, int] | None:
    """``(job id, attempt)`` from an actor name of ours, else ``None``."""
    if not name.startswith(ACTOR_PREFIX):
        return None
    job_id, _, attempt = name[len(ACTOR_PREFIX) :].rpartition("-")
    return (job_id, int(attempt)) if job_id and attempt.isdigit() else None


class JobActor:
    """Runs one claimed job attempt on a Ray worker (wrapped by ``ray.remote`` lazily).

    Not for use outside Ray: :class:`RayExecutor` creates it.
    """

    def run(self, job_id: str, attempt: int, settings_json: str, opener: str) -> str:
        """Run the job; a JSON outcome (``status``, ``error``, ``node``, ``pid``).

        Status ``crashed`` (with the error) when it could not even start here, e.g.
        this node lacks a secret or cannot reach the store; the server records it,
        so no exception of ours has to cross back through Ray.
        """
        node = _ray_module().get_runtime_context().get_node_id()
        where = {"node": node, "pid": os.getpid()}
        try:
            return self._run(job_id, attempt, settings_json, opener, where)
        except Exception as exc:
            error = f"{type(exc).__name__}: {getattr(exc, 'message', None) or exc}"
            return json.dumps({"status": "crashed", "error": error, **where})

    def _run(
        self, job_id: str, attempt: int, settings_json: str, opener: str, where: dict[str, Any]
    ) -> str:
        from aimass.jobs.runner import run_claimed_job

        node = where["node"]
        settings = settings_from_json(settings_json)
        store = Store.open(settings.resolved_store_uri, key=database_key(settings))
        try:
            job = store.jobs.get(job_id)
            # Waiting for a free CPU can take long; the job may have been recovered,
            # re-claimed or cancelled meanwhile. Only the current attempt may run.
            if (
                job.status != JobStatus.RUNNING
                or job.attempt != attempt
                or not store.jobs.heartbeat(job_id, attempt=attempt)
            ):
                return json.dumps({"status": "superseded", "error": None, **where})
            store.jobs.log(
                job_id,
                f"running on Ray node {node} (pid {os.getpid()}, actor "
                f"{actor_name(job_id, attempt)})",
            )
            try:
                artifacts = import_opener(opener)(settings)
            except Exception as exc:
                reason = f"[{type(exc).__name__}] could not open the artifact store on Ray: {exc}"
                store.jobs.log(job_id, reason, level="error")
                with contextlib.suppress(Conflict):  # another attempt owns it now
                    store.jobs.finish(job_id, JobStatus.FAILED, error=reason, attempt=attempt)
                return json.dumps({"status": "failed", "error": reason, **where})
            try:
                finished = run_claimed_job(job, store=store, artifacts=artifacts, settings=settings)
            except Exception:
                finished = store.jobs.get(job_id)
            return json.dumps({"status": str(finished.status), "error": finished.error, **where})
        finally:
            store.close()


def _ray_module() -> Any:
    from aimass.cluster import import_ray

    return import_ray()


_actor_class: Any = None
_actor_lock = threading.Lock()


def _remote_actor() -> Any:
    """``ray.remote(JobActor)``, made once (importing Ray only when asked)."""
    global _actor_class
    with _actor_lock:
        if _actor_class is None:
            _actor_class = _ray_module().remote(JobActor)
        return _actor_class


class RayExecutor:
    """Dispatches claimed jobs to Ray actors and waits for them (one thread per job).

    Args:
        store: The metadata store (the queue, and where the actor reports).
        artifacts: This server's artifact store (checkpoints, for recovery).
        settings: ``ray_address``, ``ray_namespace``, ``device``, heartbeat intervals.
        open_artifacts: A module-level function that opens the artifact store from
            settings; the actor imports it by name (the jobs layer cannot name the
            workspace's opener itself).
        stopping: Set when the pool stops: waiting threads return, jobs keep running.
    """

    def __init__(
        self,
        *,
        store: Store,
        artifacts: ArtifactStore,
        settings: Settings,
        open_artifacts: ArtifactOpener,
        stopping: threading.Event,
    ) -> None:
        self.store = store
        self.artifacts = artifacts
        self.settings = settings
        self.opener = opener_name(open_artifacts)
        self.stopping = stopping
        self.ray = connect(settings)
        self._watching: set[str] = set()
        self._lock = threading.Lock()

    def _options(self, name: str) -> dict[str, Any]:
        return {
            "name": name,
            "namespace": self.settings.ray_namespace,
            # Detached: a server restart must not take its running jobs with it.
            "lifetime": "detached",
            "num_cpus": 1,
            "num_gpus": 1 if self.settings.device == "cuda" else 0,
            "max_restarts": 0,
            "max_task_retries": 0,
        }

    def run(self, claimed: Job) -> Job:
        """Run ``claimed`` (claimed by this server already, so no other server dispatches
        it) on Ray and wait for its outcome; the job record after."""
        from aimass.jobs.pool import recover_job

        name = actor_name(claimed.id, claimed.attempt)
        with self._lock:
            self._watching.add(name)
        try:
            try:
                actor = _remote_actor().options(**self._options(name)).remote()
                ref = actor.run.remote(
                    claimed.id, claimed.attempt, settings_to_json(self.settings), self.opener
                )
            except Exception as exc:  # the cluster went away between claim and dispatch
                why = f"it could not be started on Ray ({type(exc).__name__}: {_first_line(exc)})"
                recover_job(self.store, self.artifacts, claimed, why)
                return self.store.jobs.get(claimed.id)
            self.store.jobs.log(claimed.id, f"dispatched to Ray as actor {name}")
            ended = self._wait(claimed, actor, ref)
            if ended == "stopped":
                return self.store.jobs.get(claimed.id)
            if ended == "cancelled":
                self._kill(actor)
                return self.store.jobs.get(claimed.id)
            try:
                outcome = json.loads(self.ray.get(ref))
            except self.ray.exceptions.RayError as exc:
                reason = f"its Ray worker died ({type(exc).__name__}: {_first_line(exc)})"
                recover_job(self.store, self.artifacts, claimed, reason)
                log.warning("ray job died", extra={"job_id": claimed.id, "error": str(exc)})
            else:
                log.info("ray job ended", extra={"job_id": claimed.id, **outcome})
                if outcome["status"] == "crashed":
                    self._crashed(claimed, outcome)
            self._kill(actor)
        finally:
            with self._lock:
                self._watching.discard(name)
        return self.store.jobs.get(claimed.id)

    def _crashed(self, job: Job, outcome: dict[str, Any]) -> None:
        """Fail ``job``, which its actor could not start (``outcome`` says why)."""
        reason = f"[UNAVAILABLE] it could not run on Ray node {outcome['node']}: {outcome['error']}"
        with contextlib.suppress(Conflict):  # another attempt owns it now
            self.store.jobs.finish(job.id, JobStatus.FAILED, error=reason, attempt=job.attempt)
            self.store.jobs.log(job.id, reason, level="error")

    def _wait(self, job: Job, actor: Any, ref: Any) -> str:
        """Wait for ``ref``: ``done``; ``stopped`` when the pool stopped first (the job
        runs on); ``cancelled`` when cancelled before the actor was placed.

        Until the actor is placed (a CPU may not be free), nothing on Ray beats for
        the job, so this thread does; a cancel in that time kills the actor.
        """
        ready = actor.__ray_ready__.remote()
        placed = False
        interval = self.settings.job_heartbeat_seconds
        next_beat = time.monotonic()
        while True:
            # Short waits, so a stopping pool is not held up by a long heartbeat interval.
            done, _ = self.ray.wait([ref], timeout=min(interval, WAIT_SLICE_SECONDS))
            if done:
                return "done"
            if self.stopping.is_set():
                return "stopped"
            if placed or time.monotonic() < next_beat:
                continue
            placed = bool(self.ray.wait([ready], timeout=0)[0])
            if placed:
                continue
            next_beat = time.monotonic() + interval
            self.store.jobs.heartbeat(job.id, attempt=job.attempt)
            if self.store.jobs.get(job.id).cancel_requested:
                with contextlib.suppress(Conflict):  # another attempt owns it now
                    self.store.jobs.finish(
                        job.id,
                        JobStatus.CANCELLED,
                        error="cancelled while waiting for a Ray worker",
                        attempt=job.attempt,
                    )
                return "cancelled"

    def _kill(self, actor: Any) -> None:
        try:
            self.ray.kill(actor, no_restart=True)
        except Exception as exc:
            log.debug("ray actor already gone", extra={"error": str(exc)})

    def reap(self) -> list[str]:
        """Kill this namespace's job actors whose attempt is over; their names.

        An actor whose server stopped waiting (a restart) finishes its job on its own
        and then idles, holding its CPU: this frees it. Actors of running attempts
        and those a thread here waits on are left alone.
        """
        reaped = []
        for name in self.ray.util.list_named_actors():
            parsed = _parse_actor_name(name)
            with self._lock:
                watched = name in self._watching
            if parsed is None or watched:
                continue
            job_id, attempt = parsed
            try:
                job: Job | None = self.store.jobs.get(job_id)
            except NotFound:  # a job gone from the store needs no actor
                job = None
            if job is not None and job.status == JobStatus.RUNNING and job.attempt == attempt:
                continue
            try:
                actor = self.ray.get_actor(name, namespace=self.settings.ray_namespace)
            except ValueError:
                continue  # it went meanwhile
            self._kill(actor)
            reaped.append(name)
        return reaped


def _first_line(exc: BaseException) -> str:
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else repr(exc)
