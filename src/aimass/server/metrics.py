"""Prometheus metrics of one app (its own registry, so apps in one process never clash)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from aimass.entities import Job
from aimass.serving.batching import BatchRecord

__all__ = ["Metrics"]

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

    def render(self) -> bytes:
        """The Prometheus text exposition (job and runner gauges refreshed now)."""
        for status, count in self._job_counts().items():
            self._jobs.labels(status).set(count)
        self._runner_count.clear()
        self._runner_restarts.clear()
        for model, (alive, restarts) in self._runners().items():
            self._runner_count.labels(model).set(alive)
            self._runner_restarts.labels(model).set(restarts)
        return generate_latest(self.registry)
