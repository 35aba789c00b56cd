"""Prometheus metrics of one app (its own registry, so apps in one process never clash).

Per-model series carry the tenant's names (``project``, ``model``). Anyone may
scrape ``/metrics``, so that view sums those series over tenants and drops the
labels (:meth:`Metrics.render` with ``tenants=False``); the per-model series are
rendered only for a scrape with an all-projects admin key, which Prometheus
sends with ``authorization: {credentials_file: ...}`` in its scrape config.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.metrics_core import Metric

from aimass.entities import Job
from aimass.serving.batching import BatchRecord

__all__ = ["TENANT_LABELS", "Metrics"]

# Labels whose values name a tenant's project or model.
TENANT_LABELS = frozenset({"project", "model"})

_LATENCY = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


class Metrics:
    """Request, prediction, batching and job metrics.

    Args:
        queue_depth: Inputs waiting in the micro-batchers (read at scrape time).
        job_counts: Jobs per status (read at scrape time).
        runners: Per loaded model, its live runner processes and restarts (read at
            scrape time).
    """

    def __init__(
        self,
        *,
        queue_depth: Callable[[], int],
        job_counts: Callable[[], dict[str, int]],
        runners: Callable[[], dict[str, tuple[int, int]]] = dict,
    ) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "aimass_http_requests", "HTTP requests", ["method", "route", "status"], registry=r
        )
        self.latency = Histogram(
            "aimass_http_request_seconds",
            "HTTP request latency",
            ["method", "route"],
            buckets=_LATENCY,
            registry=r,
        )
        self.predictions = Counter(
            "aimass_predictions", "Inputs predicted", ["project", "model"], registry=r
        )
        self.predict_latency = Histogram(
            "aimass_predict_seconds",
            "Predict request latency per model",
            ["project", "model"],
            buckets=_LATENCY,
            registry=r,
        )
        self.generated_tokens = Counter(
            "aimass_generated_tokens", "Tokens generated", ["project", "model"], registry=r
        )
        self.generate_latency = Histogram(
            "aimass_generate_seconds",
            "Generate request duration per model (to the last token)",
            ["project", "model"],
            buckets=_LATENCY,
            registry=r,
        )
        self.time_to_first_token = Histogram(
            "aimass_generate_first_token_seconds",
            "Time to the first generated token per model",
            ["project", "model"],
            buckets=_LATENCY,
            registry=r,
        )
        self.batch_size = Histogram(
            "aimass_batch_size", "Inputs per batch", ["model"], buckets=_SIZES, registry=r
        )
        self.batch_wait = Histogram(
            "aimass_batch_wait_seconds",
            "Wait of a batch's oldest input",
            ["model"],
            buckets=_LATENCY,
            registry=r,
        )
        self.batch_compute = Histogram(
            "aimass_batch_compute_seconds",
            "Forward pass time per batch",
            ["model"],
            buckets=_LATENCY,
            registry=r,
        )
        self.batch_tokens = Histogram(
            "aimass_batch_padded_tokens",
            "Padded tokens per batch",
            ["model"],
            buckets=(64, 256, 1024, 2048, 4096, 8192, 16384, 65536),
            registry=r,
        )
        self.batches = Counter(
            "aimass_batches", "Batches run, by release reason", ["model", "reason"], registry=r
        )
        queue = Gauge("aimass_batch_queue_depth", "Inputs waiting for a batch", registry=r)
        queue.set_function(queue_depth)
        self._runners = runners
        self._runner_count = Gauge(
            "aimass_model_runners", "Live runner processes per loaded model", ["model"], registry=r
        )
        self._runner_restarts = Gauge(
            "aimass_model_runner_restarts",
            "Runner processes restarted after dying, per loaded model",
            ["model"],
            registry=r,
        )
        self.serve_replicas = Gauge(
            "aimass_serve_replicas",
            "Running Ray Serve replicas per served model version (model: NAME@VERSION; "
            "serve_with=ray)",
            ["project", "model"],
            registry=r,
        )
        self.serve_backend = Gauge(
            "aimass_serve_backend",
            "1 for each model version this server has loaded, labelled with what runs its "
            "forward pass (torch, onnx, onnx-int8; AIMASS_SERVE_BACKEND)",
            ["project", "model", "backend"],
            registry=r,
        )
        self._jobs = Gauge("aimass_jobs", "Jobs by status", ["status"], registry=r)
        self._job_counts = job_counts
        self.jobs_finished = Counter(
            "aimass_jobs_finished", "Jobs finished", ["kind", "status"], registry=r
        )

    def on_batch(self, record: BatchRecord) -> None:
        """Record one batch (the micro-batchers call this)."""
        self.batch_size.labels(record.model).observe(record.size)
        self.batch_wait.labels(record.model).observe(record.wait)
        self.batch_compute.labels(record.model).observe(record.compute)
        self.batch_tokens.labels(record.model).observe(record.tokens)
        self.batches.labels(record.model, record.reason).inc()

    def on_generated(self, project: str, model: str, final: dict[str, Any]) -> None:
        """Record one finished generation from its final event (usage and timing)."""
        self.generated_tokens.labels(project, model).inc(final["usage"]["completion_tokens"])
        self.generate_latency.labels(project, model).observe(final["timing"]["seconds"])
        self.time_to_first_token.labels(project, model).observe(
            final["timing"]["time_to_first_token"]
        )

    def on_job_finished(self, job: Job) -> None:
        """Count a finished job."""
        self.jobs_finished.labels(job.kind, str(job.status)).inc()

    def render(self, *, tenants: bool = True) -> bytes:
        """The Prometheus text exposition (job and runner gauges refreshed now).

        Args:
            tenants: Keep the ``project`` and ``model`` labels; ``False`` sums every
                series over them (counts, histogram buckets and sums add up exactly).
        """
        for status, count in self._job_counts().items():
            self._jobs.labels(status).set(count)
        self._runner_count.clear()
        self._runner_restarts.clear()
        for model, (alive, restarts) in self._runners().items():
            self._runner_count.labels(model).set(alive)
            self._runner_restarts.labels(model).set(restarts)
        if tenants:
            return generate_latest(self.registry)
        return generate_latest(_WithoutTenants(self.registry))


class _WithoutTenants:
    """A collector view of a registry with the tenant labels summed away."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self) -> list[Metric]:
        """Every family of the registry, its series merged over the tenant labels."""
        return [_merge(family) for family in self._registry.collect()]


def _merge(family: Metric) -> Metric:
    merged: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for sample in family.samples:
        labels = tuple(sorted((k, v) for k, v in sample.labels.items() if k not in TENANT_LABELS))
        key = (sample.name, labels)
        if sample.name.endswith("_created"):  # a timestamp: the earliest, not a sum
            merged[key] = min(merged.get(key, sample.value), sample.value)
        else:
            merged[key] = merged.get(key, 0.0) + sample.value
    out = Metric(family.name, family.documentation, family.type, family.unit)
    for (name, labels), value in merged.items():
        out.add_sample(name, dict(labels), value)
    return out
