"""Resources: size, memory, speed and energy of serving the model here, and its training cost.

Latency is measured end to end through the public ``predict`` path
(tokenisation included) on evaluation texts: single-item calls and batched
calls, after warm-up, reported as medians. Memory is the peak resident set of
a *fresh* process that loads the bundle and predicts one batch (so it is not
inflated by this process's other work). Energy is estimated, not measured —
this machine exposes no power counters: busy time × (threads × an assumed
power per core). The assumption and its range are stated in the report.
"""

from __future__ import annotations

import functools
import os
import platform
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from aimass.errors import AimassError
from aimass.evaluation.base import (
    NOT_APPLICABLE,
    ReportContext,
    Section,
    SectionResult,
    register_section,
)
from aimass.evaluation.html import esc, fmt, kv_table

__all__ = ["PrivacySection", "Resources", "energy_estimate", "measure_latency"]

WARMUP = 2
ENERGY_LOW, ENERGY_HIGH = 0.5, 2.0


def _timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure_latency(
    predict: Callable[[Sequence[str]], Any],
    singles: Sequence[str],
    batch: Sequence[str],
    *,
    runs: int,
    batch_runs: int,
    on_run: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Median single-item and batched latency of ``predict`` (after warm-up calls).

    Args:
        predict: The call to time (texts → predictions).
        singles: Texts for single-item calls, used in turn.
        batch: The batch for batched calls.
        runs: Single-item calls timed.
        batch_runs: Batched calls timed.
        on_run: Called after every timed call (progress).
    """
    tick = on_run or (lambda: None)
    for text in list(singles)[:WARMUP]:
        predict([text])
    predict(list(batch))
    single = []
    for i in range(runs):
        single.append(_timed(functools.partial(predict, [singles[i % len(singles)]])))
        tick()
    batched = []
    for _ in range(batch_runs):
        batched.append(_timed(lambda: predict(list(batch))))
        tick()
    s, b = np.array(single), np.array(batched)
    return {
        "single": {
            "runs": runs,
            "median_ms": float(np.median(s) * 1000),
            "p90_ms": float(np.quantile(s, 0.9) * 1000),
            "min_ms": float(s.min() * 1000),
            "throughput_per_s": float(1.0 / np.median(s)),
            "mean_chars": float(np.mean([len(t) for t in singles])),
        },
        "batched": {
            "runs": batch_runs,
            "batch_size": len(batch),
            "median_ms": float(np.median(b) * 1000),
            "per_item_ms": float(np.median(b) * 1000 / len(batch)),
            "throughput_per_s": float(len(batch) / np.median(b)),
            "mean_chars": float(np.mean([len(t) for t in batch])),
        },
    }


def energy_estimate(
    *, threads: int, watts_per_core: float, per_item_s: float, training_s: float | None
) -> dict[str, Any]:
    """Energy = busy seconds × threads × watts per core, with a ×0.5–×2 range."""
    power = threads * watts_per_core

    def joules(seconds: float) -> dict[str, float]:
        j = seconds * power
        return {
            "joules": j,
            "wh": j / 3600,
            "low_wh": j * ENERGY_LOW / 3600,
            "high_wh": j * ENERGY_HIGH / 3600,
        }

    return {
        "method": (
            f"estimate: busy time × {threads} thread(s) × {watts_per_core:g} W per busy core "
            f"(assumed; server CPUs draw roughly 5–20 W per busy core under load, so the range "
            f"is ×{ENERGY_LOW:g} to ×{ENERGY_HIGH:g}). No power counter (RAPL, NVML) was read; "
            "memory, disks, cooling and idle power are not included. Training time is assumed "
            "to have run with the same threads on comparable hardware."
        ),
        "assumed_watts": power,
        "inference_per_1000": joules(per_item_s * 1000),
        "training": joules(training_s) if training_s is not None else None,
    }


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory(ctx: ReportContext, batch: list[str]) -> dict[str, Any]:
    if not ctx.options.measure_memory:
        return {"status": "skipped", "reason": "memory measurement was turned off"}
    if ctx.model.memory is None:  # a pipeline: several models, each with its own runners
        reason = f"serving memory is not measured for a {ctx.model.architecture}: see its models'"
        return {"status": "skipped", "reason": reason}
    try:
        return {"status": "ok", **ctx.model.memory(batch)}
    except AimassError as exc:
        return {"status": "failed", "reason": exc.message}


class Resources(Section):
    """Parameters, size, memory, latency, throughput, training time, energy."""

    key = "resources"
    name = "resources"
    title = "Resources"

    def compute(self, ctx: ReportContext) -> SectionResult:
        opts = ctx.options
        rng = ctx.rng("latency")
        n = len(ctx.data)
        singles = [
            ctx.data.texts[i] for i in rng.choice(n, size=min(n, opts.latency_runs), replace=False)
        ]
        batch = [
            ctx.data.texts[i]
            for i in rng.choice(n, size=opts.batch_size, replace=n < opts.batch_size)
        ]
        ctx.phase("timing predictions", opts.latency_runs + opts.batch_runs)
        latency = measure_latency(
            ctx.model.predict,
            singles,
            batch,
            runs=opts.latency_runs,
            batch_runs=opts.batch_runs,
            on_run=ctx.advance,
        )
        ctx.phase("measuring memory in a fresh process", 1)
        memory = _memory(ctx, batch)
        ctx.advance(1)
        training = dict(ctx.model.metrics.get("training") or {})
        seconds = training.get("seconds")
        energy = energy_estimate(
            threads=ctx.model.threads,
            watts_per_core=opts.watts_per_core,
            per_item_s=latency["batched"]["per_item_ms"] / 1000,
            training_s=float(seconds) if seconds is not None else None,
        )
        data = {
            "unit": ctx.model.predict_unit,
            "parameters": ctx.model.parameters,
            "bundle_bytes": ctx.model.bundle_bytes,
            "bundle_mib": ctx.model.bundle_bytes / 2**20,
            "memory": memory,
            "latency": latency,
            "training": training or None,
            "energy": energy,
            "machine": {
                "cpu": _cpu_name(),
                "logical_cpus": os.cpu_count() or 1,
                "threads": ctx.model.threads,
                "device": ctx.model.device,
                "platform": platform.platform(),
            },
        }
        return SectionResult(
            data=data,
            summary={
                "latency_ms": latency["single"]["median_ms"],
                "throughput_per_s": latency["batched"]["throughput_per_s"],
                "parameters": ctx.model.parameters,
            },
            notes=[
                "Timings depend on this machine and its load; compare them only with reports "
                "made on the same machine."
            ],
        )

    def render(self, data: dict[str, Any], figures: dict[str, str]) -> str:
        lat, mem, energy, machine = data["latency"], data["memory"], data["energy"], data["machine"]
        unit = data.get("unit", "predictions")
        memory_rows: list[tuple[str, Any]]
        if mem["status"] == "ok":
            memory_rows = [
                ("peak resident memory serving one batch", f"{mem['peak_mib']:.0f} MiB"),
                (
                    "resident after importing the runtime (Python, torch, transformers)",
                    f"{mem['runtime_mib']:.0f} MiB",
                ),
                (
                    "resident after loading the model",
                    f"{mem['loaded_mib']:.0f} MiB "
                    f"(+{mem['loaded_mib'] - mem['runtime_mib']:.0f} MiB for the model)",
                ),
            ]
            if mem.get("gpu_peak_mib") is not None:
                memory_rows.append(("peak GPU memory allocated", f"{mem['gpu_peak_mib']:.0f} MiB"))
        else:
            memory_rows = [("memory", f"not measured: {mem['reason']}")]
        training = data["training"] or {}
        inference = energy["inference_per_1000"]
        train_energy = energy["training"]
        rows: list[tuple[str, Any]] = [
            ("parameters", data["parameters"]),
            (
                "size on disk (bundle)",
                f"{data['bundle_mib']:.1f} MiB ({data['bundle_bytes']:,} bytes)",
            ),
            *memory_rows,
            (
                "single-item latency (median / p90)",
                f"{lat['single']['median_ms']:.1f} / {lat['single']['p90_ms']:.1f} ms "
                f"over {lat['single']['runs']} calls",
            ),
            ("single-item throughput", f"{lat['single']['throughput_per_s']:.1f} {unit}/s"),
            (
                f"batched latency (batch {lat['batched']['batch_size']}, median)",
                f"{lat['batched']['median_ms']:.1f} ms "
                f"({lat['batched']['per_item_ms']:.2f} ms per item) "
                f"over {lat['batched']['runs']} calls",
            ),
            ("batched throughput", f"{lat['batched']['throughput_per_s']:.1f} {unit}/s"),
            (
                "training time",
                f"{fmt(training.get('seconds'))} s, {fmt(training.get('steps'))} steps"
                if training
                else "not recorded",
            ),
            (
                f"energy per 1,000 {unit} (batched)",
                f"{inference['wh']:.4f} Wh "
                f"(range {inference['low_wh']:.4f}–{inference['high_wh']:.4f})",
            ),
            (
                "training energy",
                f"{train_energy['wh']:.3f} Wh "
                f"(range {train_energy['low_wh']:.3f}–{train_energy['high_wh']:.3f})"
                if train_energy
                else "not recorded",
            ),
            (
                "machine",
                f"{machine['cpu']}; {machine['logical_cpus']} logical CPUs; "
                f"{machine['threads']} torch threads; device {machine['device']}",
            ),
        ]
        return (
            f'<p class="note">Timed: {esc(unit)}.</p>'
            + kv_table(rows)
            + f'<p class="note">Energy method: {esc(energy["method"])}</p>'
        )


class PrivacySection(Section):
    """The version's differential-privacy record, when it was trained with DP."""

    key = "privacy"
    name = "privacy"
    title = "Privacy"

    def compute(self, ctx: ReportContext) -> SectionResult:
        privacy = ctx.model.privacy
        if not privacy:
            return SectionResult.skipped(
                "this version was trained without differential privacy: it may memorise training "
                "examples",
                status=NOT_APPLICABLE,
            )
        summary = {k: privacy[k] for k in ("epsilon", "delta") if k in privacy}
        return SectionResult(
            data={"record": privacy}, summary={f"privacy_{k}": v for k, v in summary.items()}
        )

    def render(self, data: dict[str, Any], figures: dict[str, str]) -> str:
        record = data["record"]
        scalars = [(k, v) for k, v in sorted(record.items()) if not isinstance(v, dict | list)]
        nested = [(k, v) for k, v in sorted(record.items()) if isinstance(v, dict | list)]
        return kv_table(scalars) + "".join(
            f"<h3>{esc(k)}</h3><pre>{esc(v)}</pre>" for k, v in nested
        )


register_section(Resources())
register_section(PrivacySection())
