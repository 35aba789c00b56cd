"""Model versions served by Ray Serve replicas that scale on queue depth (``serve_with=ray``).

Each served model version becomes one Ray Serve *application* with one
deployment, ``model``, whose replicas each load the version's bundle and run the
same predictor and :class:`~aimass.serving.batching.MicroBatcher` as a server
that serves in process: the micro-batching rule holds inside every replica. The
server reaches the replicas through a ``DeploymentHandle``; no Ray Serve HTTP
proxy is started (``proxy_location="Disabled"``), so Ray opens no HTTP port.

Ray Serve's autoscaler keeps between ``ray_min_replicas`` and
``ray_max_replicas`` replicas: it adds replicas while the requests in flight per
replica (queued at the handle plus running in the replica, reported every 10 s
and averaged over 30 s) stay above
``ray_target_ongoing_requests`` for ``upscale_delay_s``, and removes them once
they stay below it for ``downscale_delay_s``. A watcher thread polls
``serve.status()`` and reports every change of the running replica count (and the
deployment and its removal) to a callback, which the server turns into the
``aimass_serve_replicas`` gauge and a ``serving.scale`` audit record.

An application is named after the version and its bundle digest
(:func:`app_name`), so servers that share a cluster and serve the same version
share its replicas. The server that unloads it (model cache eviction, shutdown)
deletes it; another server still serving it deploys it again on its next call.

Only strings cross into Ray (see :mod:`.ray_replica`): the settings as JSON
without secret values, the bundle's ``artifacts:`` URI, the name of the function
that opens the artifact store; then texts, results and generation events as
JSON, errors as their wire form. The bundle is resolved and verified inside each
replica.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from aimass.cluster import connect, opener_name, settings_to_json
from aimass.errors import Internal, InvalidArgument, Unavailable, error_from_dict
from aimass.models.onnx import VARIANTS
from aimass.serving.ray_replica import ModelReplica, OpenStore
from aimass.settings import Settings

__all__ = [
    "AUTOSCALING",
    "DEPLOYMENT",
    "POLL_SECONDS",
    "ModelReplica",
    "RayServeBackend",
    "ScaleEvent",
    "app_name",
    "replica_actor_options",
]

log = logging.getLogger("aimass.serving")

DEPLOYMENT = "model"
"""The one deployment in each model version's application."""

AUTOSCALING: dict[str, float] = {
    # Ray Serve's defaults (30 s up, 600 s down) suit web traffic that swells over
    # minutes; a model server under a burst of predict calls should add a replica within
    # seconds, and keep it a minute after the burst in case it returns. The queue lengths
    # behind the decisions are reported every 10 s and averaged over 30 s (Ray's
    # ``metrics_interval_s`` and ``look_back_period_s``, left at their defaults).
    "upscale_delay_s": 5.0,
    "downscale_delay_s": 60.0,
}
"""Ray Serve autoscaling timings, besides the replica range and target from the settings."""

POLL_SECONDS = 2.0
"""How often the watcher reads the replica count from ``serve.status()``."""


def replica_actor_options(settings: Settings) -> dict[str, Any]:
    """The Ray resources each replica of a served version reserves: ``ray_replica_cpus``
    CPUs (default ``serve_runner_threads``, or 1), and one GPU with ``device=cuda``.

    A replica the cluster has no room for stays ``STARTING`` until one that holds
    resources stops, so the CPUs reserved bound how many replicas fit.
    """
    cpus = settings.ray_replica_cpus or settings.serve_runner_threads or 1
    options: dict[str, Any] = {"num_cpus": cpus}
    if settings.device == "cuda":
        options["num_gpus"] = 1
    return options


# A project or model name as the registry validates it; checked again here because the
# names become Ray application names, which other tools show and parse.
_SLUG = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")
_DIGEST = re.compile(r"[0-9a-f]{12,64}")


def app_name(project: str, model: str, version: int, digest: str, backend: str = "torch") -> str:
    """The Ray Serve application of one model version: ``aimass:PROJECT:MODEL:vN:DIGEST12``,
    with ``:BACKEND`` after it when the version is served on an ONNX graph.

    ``:`` is not allowed in project or model names, so the parts cannot run into
    each other; the digest keeps two homes that reuse a name on one cluster apart, and
    the backend two servers that serve one version on different backends.
    """
    for what, value in (("project", project), ("model", model)):
        if not _SLUG.fullmatch(value):
            raise InvalidArgument(
                f"{what} name {value[:80]!r} cannot name a Ray Serve application; "
                "use lowercase letters, digits, '.', '_' and '-'"
            )
    if not _DIGEST.fullmatch(digest[:12]) or version < 1:
        raise InvalidArgument(f"model version {version} with digest {digest[:20]!r} is malformed")
    if backend not in ("torch", *VARIANTS):
        raise InvalidArgument(f"unknown serving backend {backend!r} for a Ray Serve application")
    suffix = "" if backend == "torch" else f":{backend}"
    return f"aimass:{project}:{model}:v{version}:{digest[:12]}{suffix}"


@dataclass(frozen=True)
class ScaleEvent:
    """The running replicas of one served version changed.

    Attributes:
        app: The Ray Serve application (:func:`app_name`).
        before: Running replicas before (0 before the deployment).
        after: Running replicas now (0 once it is deleted).
        reason: ``deployed``, ``autoscaled`` (also a replica that died, and its
            replacement) or ``deleted``.
    """

    app: str
    before: int
    after: int
    reason: str


class _Deleted(Exception):
    """The version's Ray Serve application is gone (deleted by another server)."""


class RayServeBackend:
    """The micro-batcher's back end for one model version served by Ray Serve replicas.

    The server's batcher hands calls on at once (``concurrency`` covers every slot
    of every replica), so requests queue where Ray Serve's autoscaler sees them and
    are batched by each replica's own batcher.

    Args:
        settings: Replica range, target, timeouts, batching and the artifact store.
        project: The version's project.
        model: The model's name.
        version: The version number.
        digest: The bundle digest.
        uri: The bundle's ``artifacts:`` URI.
        open_store: Opens the artifact store in a replica (a module-level function).
        backend: ``torch``, ``onnx`` or ``onnx-int8`` (what runs the forward pass in
            each replica).
        graphs: The ``artifacts:`` URI of the version's ONNX graphs, for the ONNX
            backends.
        on_scale: Called with every :class:`ScaleEvent` (from the watcher thread).
        poll_seconds: How often the watcher reads the replica count (default
            :data:`POLL_SECONDS`).
    """

    restarts = 0

    def __init__(
        self,
        settings: Settings,
        *,
        project: str,
        model: str,
        version: int,
        digest: str,
        uri: str,
        open_store: OpenStore,
        backend: str = "torch",
        graphs: str | None = None,
        on_scale: Callable[[ScaleEvent], None] | None = None,
        poll_seconds: float | None = None,
    ) -> None:
        if (backend == "torch") != (graphs is None):
            raise InvalidArgument(f"backend {backend!r} with graphs {graphs!r}: ONNX needs both")
        self.settings = settings
        self.project, self.model, self.version = project, model, version
        self.app = app_name(project, model, version, digest, backend)
        self.name = f"{project}/{model}@{version}"
        self.backend = backend
        self._uri = uri
        self._graphs = graphs
        self._opener = opener_name(open_store)  # checked here, where a mistake is plain
        self._on_scale = on_scale
        self._poll = POLL_SECONDS if poll_seconds is None else poll_seconds
        self.max_ongoing = max(
            settings.batch_max_size, math.ceil(2 * settings.ray_target_ongoing_requests)
        )
        self.concurrency = settings.ray_max_replicas * self.max_ongoing
        self.replicas = 0
        self.served_by: Counter[str] = Counter()
        self._handle: Any = None
        self._submitted = False
        self._busy = 0
        self._lock = threading.Lock()
        self._deploying = threading.Lock()
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None

    def open(self) -> None:
        """Deploy the version (or find it deployed) and wait for its first replicas."""
        connect(self.settings)  # first: it sets Ray's authentication before Ray is imported
        from ray import serve

        # Without a proxy Serve opens no HTTP port: the server is the only way in.
        serve.start(proxy_location="Disabled")
        self._submitted = True  # from here on, close() deletes the application
        self._deploy()
        self._watcher = threading.Thread(
            target=self._watch, name=f"aimass-replicas-{self.name}", daemon=True
        )
        self._watcher.start()

    def _deploy(self) -> None:
        """Run the application (blocking until its first replicas are up)."""
        from ray import serve
        from ray.serve.exceptions import RayServeException

        try:
            self._handle = serve.run(self._application(), name=self.app, route_prefix=None)
        except (RayServeException, RuntimeError) as exc:
            # serve.run raises a RuntimeError that only says the deployment failed; the
            # replica's own error (a missing key, an unreadable bucket) is in its status.
            why = self._failure(serve) or str(exc)
            raise Unavailable(
                f"Ray Serve could not start {self.name}: {why}; see the replica logs "
                "under the Ray session directory",
                model=self.name,
            ) from exc
        self._set_replicas(self._running(), "deployed")

    def _failure(self, serve: Any) -> str | None:
        """The message Ray Serve keeps for this application's failed deployment."""
        try:
            app = serve.status().applications.get(self.app)
        except Exception:  # the status is only a better message; never mask the failure
            return None
        if app is None:
            return None
        messages = [d.message for d in app.deployments.values() if d.message]
        return " ".join(messages)[-1500:] or app.message or None

    def _redeploy(self) -> None:
        """Deploy again an application someone deleted (another server that unloaded the
        same version); concurrent callers wait for one deployment."""
        from ray import serve

        with self._deploying:
            if self._handle is None or self.app in serve.status().applications:
                return  # closed meanwhile, or another thread deployed it again
            log.warning(
                "Ray Serve application was deleted; deploying it again", extra={"app": self.app}
            )
            self._deploy()

    def _application(self) -> Any:
        from ray import serve

        settings = self.settings
        deployment = serve.deployment(
            name=DEPLOYMENT,
            max_ongoing_requests=self.max_ongoing,
            autoscaling_config={
                "min_replicas": settings.ray_min_replicas,
                "initial_replicas": settings.ray_min_replicas,
                "max_replicas": settings.ray_max_replicas,
                "target_ongoing_requests": settings.ray_target_ongoing_requests,
                **AUTOSCALING,
            },
            ray_actor_options=replica_actor_options(settings),
            # A bundle that does not load will not load on the tenth try either.
            max_constructor_retry_count=2,
        )(ModelReplica)
        return deployment.bind(
            self.name,
            settings_to_json(settings),
            self._uri,
            self._opener,
            self.backend,
            self._graphs or "",
        )

    def lengths(self, texts: list[str]) -> list[int]:
        """Word counts: enough to group the calls handed on together (each replica's
        batcher buckets them by their exact token counts)."""
        return [len(text.split()) + 2 for text in texts]

    def run(self, texts: list[str]) -> list[dict[str, Any]]:
        """Results of one call, from whichever replica Ray Serve routes it to."""
        results: list[dict[str, Any]] = self._call("predict", json.dumps(texts))["results"]
        return results

    def explain(
        self, texts: list[str], results: list[dict[str, Any]], method: str | bool | None
    ) -> list[dict[str, Any]]:
        """Explanations of one call's results, computed by a replica."""
        call = json.dumps({"texts": texts, "results": results, "method": method})
        with self._busy_slot():
            explained: list[dict[str, Any]] = self._call("explain", call)["results"]
        return explained

    def generate_stream(self, prompt: str, options: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """Generation events streamed from a replica; closing the iterator cancels it there."""
        handle = self._require().options(stream=True)
        with self._busy_slot():
            stream = handle.generate.remote(prompt, json.dumps(options))
            finished = False
            try:
                with self._translated():
                    for piece in stream:
                        event: dict[str, Any] = self._decode(piece)["event"]
                        finished = bool(event.get("done"))
                        yield event
            except _Deleted as exc:
                self._redeploy()  # for the caller's retry: a stream is not replayed
                raise self._deleted() from exc
            finally:
                if not finished:
                    stream.cancel()

    @property
    def busy(self) -> int:
        """Explanations and generations in flight (a busy back end is not closed)."""
        return self._busy

    def pids(self) -> list[int]:
        """None here: the replicas are Ray actors, perhaps on other machines."""
        return []

    def close(self) -> None:
        """Stop watching and delete the application (its replicas stop)."""
        from ray import serve

        self._stop.set()
        if self._watcher is not None:
            self._watcher.join(timeout=self._poll + 5)
        self._handle = None
        submitted, self._submitted = self._submitted, False
        if not submitted:
            return
        try:
            # The handle is left alone: Ray Serve keeps one router per deployment in this
            # process, and shutting it down would leave a later deployment of the same
            # version (loaded again after eviction) without queue-length reports.
            serve.delete(self.app)  # also one whose replicas never started
        except Exception:
            log.exception("could not delete Ray Serve application", extra={"app": self.app})
            return
        self._set_replicas(0, "deleted")

    # -- helpers ---------------------------------------------------------------------------

    def _require(self) -> Any:
        if self._handle is None:
            raise Unavailable(f"model {self.name} is not deployed on Ray Serve; retry")
        return self._handle

    def _call(self, method: str, argument: str) -> dict[str, Any]:
        """``method(argument)`` on a replica; once more after deploying again an
        application that was deleted under this server."""
        try:
            return self._call_once(method, argument)
        except _Deleted:
            self._redeploy()
        try:
            return self._call_once(method, argument)
        except _Deleted as exc:
            raise self._deleted() from exc

    def _deleted(self) -> Unavailable:
        return Unavailable(
            f"the Ray Serve application of {self.name} was deleted (another server sharing "
            "the cluster unloaded it) and is being deployed again; retry",
            model=self.name,
        )

    def _call_once(self, method: str, argument: str) -> dict[str, Any]:
        with self._translated():
            response = getattr(self._require(), method).remote(argument)
            piece = response.result(timeout_s=self.settings.serve_runner_timeout_seconds)
        return self._decode(piece)

    @contextlib.contextmanager
    def _translated(self) -> Iterator[None]:
        """Ray's failures (a replica died, none answered in time, the application is
        gone) as :class:`Unavailable`."""
        from ray.exceptions import RayError
        from ray.serve.exceptions import DeploymentUnavailableError

        try:
            yield
        except DeploymentUnavailableError as exc:
            raise _Deleted(self.app) from exc
        except TimeoutError as exc:
            raise Unavailable(
                f"no Ray Serve replica of {self.name} answered within "
                f"{self.settings.serve_runner_timeout_seconds:g} s "
                "(AIMASS_SERVE_RUNNER_TIMEOUT_SECONDS); retry",
                model=self.name,
            ) from exc
        except RayError as exc:
            raise Unavailable(
                f"the Ray Serve replica of {self.name} failed: {type(exc).__name__}; retry, "
                "and see the replica logs under the Ray session directory",
                model=self.name,
            ) from exc

    def _decode(self, piece: str) -> dict[str, Any]:
        reply = json.loads(piece)
        if not isinstance(reply, dict):
            raise Internal(f"a Ray Serve replica of {self.name} sent an unexpected reply")
        if "error" in reply:
            raise error_from_dict(reply["error"])
        if "replica" in reply:
            with self._lock:
                self.served_by[str(reply["replica"])] += 1
        return reply

    @contextlib.contextmanager
    def _busy_slot(self) -> Iterator[None]:
        with self._lock:
            self._busy += 1
        try:
            yield
        finally:
            with self._lock:
                self._busy -= 1

    def _running(self) -> int:
        """Replicas in the RUNNING state now (0 when the application is gone)."""
        from ray import serve

        app = serve.status().applications.get(self.app)
        deployment = app.deployments.get(DEPLOYMENT) if app is not None else None
        if deployment is None:
            return 0
        states: dict[Any, int] = dict(deployment.replica_states)  # ReplicaState is a str enum
        return int(states.get("RUNNING", 0))

    def _watch(self) -> None:
        while not self._stop.wait(self._poll):
            try:
                running = self._running()
            except Exception:
                # The controller may be restarting; the next poll tries again.
                log.warning("could not read Ray Serve status", extra={"app": self.app})
                continue
            if running != self.replicas and not self._stop.is_set():
                self._set_replicas(running, "autoscaled")

    def _set_replicas(self, count: int, reason: str) -> None:
        with self._lock:
            before, self.replicas = self.replicas, count
        if before == count and reason != "deployed":
            return
        log.info(
            "Ray Serve replicas changed",
            extra={"app": self.app, "from": before, "to": count, "reason": reason},
        )
        if self._on_scale is not None:
            try:
                self._on_scale(ScaleEvent(self.app, before, count, reason))
            except Exception:
                log.exception("scale callback failed", extra={"app": self.app})
