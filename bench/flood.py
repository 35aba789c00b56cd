"""Anonymous flood: memory and ``/healthz`` latency of ``aimass serve`` while callers
without a key send large bodies (issue 13: "a load test shows an anonymous flood of
large bodies keeps the server under a stated memory bound and keeps /healthz under
100 ms p99").

``aimass serve`` runs in its own process on a fresh home, on a loopback port. This
process measures ``/healthz`` (one keep-alive connection, requests back to back,
p50/p99) and the server's resident memory (the server and its children, sampled every
0.1 s), first with no load (the baseline) and then while a flood process drives N
concurrent anonymous connections for ``--seconds``. Each connection loops over:

* ``upload-30mb``: ``POST .../datasets``, no key, ``Content-Length`` 30 MB, body streamed;
* ``predict-30mb-chunked``: ``POST ...:predict``, no key, 30 MB sent chunked;
* ``wrong-key-30mb``: a well-formed key that does not exist, 30 MB body;
* ``healthz-30mb``: ``POST /healthz`` (a public path) with a 30 MB body;
* ``malformed-json``: ``{not json`` with no key;
* ``wrong-keys``: a small JSON body of the wrong shape with no key.

A refused request ends its connection as soon as the answer arrives; the bytes the
client managed to send before that are reported (the kernel's socket buffers take a
few MB whatever the server does). The before/after comparison printed is the flood
against the baseline, as ratios; the goals are peak memory under baseline + 200 MB
and ``/healthz`` p99 under 100 ms during the flood. Before issue 13's fix, twenty
anonymous 30 MB uploads took the server from 1.45 GB to 3.25 GB.

Each run measures two servers one after the other, side by side in its output: uvicorn on
httptools + uvloop (what ``aimass serve`` uses) and on h11 + asyncio (the pure-Python
stack it used before), so the ratio between them is measured on the same machine state.

    python bench/flood.py [--seconds 25] [--clients 16] [--body-mb 30] [--stacks ...]
                          [--out flood.json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from serve import free_port, start  # bench/serve.py's helpers

RESULTS = Path(__file__).parent / "results"
MEMORY_BOUND_MB = 200.0  # the goal: peak RSS under the baseline + this
HEALTHZ_P99_GOAL_MS = 100.0
WRONG_KEY = "aimass_000000000000_" + "A" * 43
PREDICT = "/v1/projects/default/models/sentiment@production:predict"
Kind = tuple[str, str, dict[str, str], int, bool]  # one kind of request: see _kinds


# -- the flood (runs in its own process, so it never delays this one's measurements) --------


def _kinds(body_mb: int) -> list[Kind]:
    """``(name, path, extra headers, body bytes, chunked)`` of each kind of request."""
    big = body_mb * 1024 * 1024
    return [
        ("upload-30mb", "/v1/projects/default/datasets", {}, big, False),
        ("predict-30mb-chunked", PREDICT, {}, big, True),
        ("wrong-key-30mb", PREDICT, {"Authorization": f"Bearer {WRONG_KEY}"}, big, False),
        ("healthz-30mb", "/healthz", {}, big, False),
        ("malformed-json", PREDICT, {}, -1, False),
        ("wrong-keys", "/v1/projects/default/datasets", {}, -2, False),
    ]


async def _one(port: int, kind: Kind, chunk: bytes) -> tuple[str, int]:
    """Send one request of ``kind``; ``(status or error name, body bytes sent)``."""
    _name, path, extra, size, chunked = kind
    if size == -1:
        body, size = b'{"inputs": [', 12
    elif size == -2:
        body, size = b'{"wrong": "keys", "inputs": 7}', 30
    else:
        body = b""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in extra.items())
    head += "Transfer-Encoding: chunked\r\n" if chunked else f"Content-Length: {size}\r\n"
    writer.write((head + "\r\n").encode() + body)
    sent = len(body)

    async def send_body() -> None:
        nonlocal sent
        while sent < size:
            piece = chunk[: size - sent]
            writer.write(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
            await writer.drain()
            sent += len(piece)
        if chunked:
            writer.write(b"0\r\n\r\n")
            await writer.drain()

    sender = asyncio.ensure_future(send_body())
    try:
        status_line = await asyncio.wait_for(reader.readline(), timeout=30)
        outcome = status_line.split(b" ", 2)[1].decode() if status_line else "closed"
    except (ConnectionError, TimeoutError) as exc:
        outcome = type(exc).__name__
    finally:
        sender.cancel()
        writer.transport.abort()
    return outcome, sent


async def _flood(port: int, clients: int, seconds: float, body_mb: int) -> dict[str, Any]:
    kinds = _kinds(body_mb)
    chunk = b"a" * (1024 * 1024)
    outcomes: Counter[str] = Counter()
    sent_big: dict[str, list[int]] = {}
    stop = time.monotonic() + seconds

    async def loop(i: int) -> None:
        n = i
        while time.monotonic() < stop:
            kind = kinds[n % len(kinds)]
            try:
                outcome, sent = await _one(port, kind, chunk)
            except OSError as exc:
                outcome, sent = type(exc).__name__, 0
            outcomes[f"{kind[0]} {outcome}"] += 1
            if kind[3] > 0:
                sent_big.setdefault(kind[0], []).append(sent)
            n += 1

    await asyncio.gather(*(loop(i) for i in range(clients)))
    every = sorted(n for sent in sent_big.values() for n in sent) or [0]
    return {
        "requests": sum(outcomes.values()),
        "outcomes": dict(sorted(outcomes.items())),
        "large_bodies": len(every),
        "large_body_mb_sent_before_answer_p50": every[len(every) // 2] / 2**20,
        "large_body_mb_sent_before_answer_max": every[-1] / 2**20,
        "mb_sent_before_answer_by_kind": {
            name: {"p50": sorted(sent)[len(sent) // 2] / 2**20, "max": max(sent) / 2**20}
            for name, sent in sorted(sent_big.items())
        },
    }


# -- the measurements (this process) -----------------------------------------------------------


def rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and its children, in MB."""
    try:
        import psutil  # type: ignore[import-untyped]  # no stubs installed (types-psutil)
    except ImportError:  # /proc fallback: the server alone
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")
    process = psutil.Process(pid)
    total = process.memory_info().rss
    for child in process.children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):
            total += child.memory_info().rss
    return total / 2**20


class Sampler(threading.Thread):
    """Samples the server's memory every 0.1 s until stopped."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.done = pid, threading.Event()
        self.samples: list[float] = []

    def run(self) -> None:
        while not self.done.is_set():
            self.samples.append(rss_mb(self.pid))
            self.done.wait(0.1)


def probe_healthz(
    port: int, *, count: int | None = None, until: float | None = None
) -> dict[str, Any]:
    """``GET /healthz`` back to back on one keep-alive connection: latency percentiles."""
    latencies: list[float] = []
    errors = 0
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    while (count is None or len(latencies) + errors < count) and (
        until is None or time.monotonic() < until
    ):
        started = time.perf_counter()
        try:
            connection.request("GET", "/healthz")
            response = connection.getresponse()
            response.read()
            ok = response.status == 200
        except (OSError, http.client.HTTPException):
            connection.close()
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            ok = False
        if ok:
            latencies.append(1000 * (time.perf_counter() - started))
        else:
            errors += 1
        time.sleep(0.01)  # a monitor polls; it does not flood
    connection.close()
    ordered = sorted(latencies) or [float("nan")]
    return {
        "requests": len(latencies),
        "errors": errors,
        "p50_ms": ordered[len(ordered) // 2],
        "p99_ms": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))],
        "max_ms": ordered[-1],
    }


def phase(pid: int, port: int, **probe: Any) -> tuple[dict[str, Any], dict[str, float]]:
    """``(healthz latency, memory)`` over one probe run."""
    sampler = Sampler(pid)
    sampler.start()
    latency = probe_healthz(port, **probe)
    sampler.done.set()
    sampler.join()
    samples = sampler.samples or [float("nan")]
    memory = {"start_mb": samples[0], "peak_mb": max(samples), "end_mb": samples[-1]}
    return latency, memory


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


STACKS = {
    # name: (uvicorn --http, --loop)
    "httptools+uvloop": ("httptools", "uvloop"),
    "h11+asyncio": ("h11", "asyncio"),
}


def measure(args: argparse.Namespace, stack: str) -> dict[str, Any]:
    """One server on ``stack``: ``/healthz`` and memory at rest, then under the flood."""
    http, loop = STACKS[stack]
    home = Path(tempfile.mkdtemp(prefix="aimass-flood-")) / "home"
    env = {**os.environ, "AIMASS_HOME": str(home), "AIMASS_DEVICE": "cpu"}
    port = free_port()
    command = [sys.executable, "-m", "aimass.cli", "serve", "--port", str(port)]
    command += ["--job-threads", "0", "--http", http, "--loop", loop]
    server = start(command, env, f"http://127.0.0.1:{port}/readyz")
    try:
        probe_healthz(port, count=50)  # warm up
        load_before = load_average()
        base_latency, base_memory = phase(server.pid, port, count=args.baseline_requests)
        flood = subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--flood-worker",
                str(port),
                "--clients",
                str(args.clients),
                "--seconds",
                str(args.seconds),
                "--body-mb",
                str(args.body_mb),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        time.sleep(1.0)  # let the flood ramp up before measuring
        flood_latency, flood_memory = phase(
            server.pid, port, until=time.monotonic() + args.seconds - 2
        )
        load_during = load_average()
        out, _ = flood.communicate(timeout=args.seconds + 120)
        flood_stats = json.loads(out.strip().splitlines()[-1])
        after_memory = rss_mb(server.pid)
        alive = server.poll() is None
    finally:
        server.terminate()
        server.wait(30)
    bound = base_memory["peak_mb"] + MEMORY_BOUND_MB
    return {
        "uvicorn": {"http": http, "loop": loop},
        "load_average_before_during": [load_before, load_during],
        "baseline": {"healthz": base_latency, "memory": base_memory},
        "flood": {
            "healthz": flood_latency,
            "memory": flood_memory,
            "requests": flood_stats,
            "rss_after_mb": after_memory,
        },
        "summary": {
            "memory_bound_mb": bound,
            "peak_mb_during_flood": flood_memory["peak_mb"],
            "peak_over_baseline_mb": flood_memory["peak_mb"] - base_memory["peak_mb"],
            "memory_ratio": flood_memory["peak_mb"] / base_memory["peak_mb"],
            "healthz_p99_ratio": flood_latency["p99_ms"] / base_latency["p99_ms"],
            "memory_goal_met": flood_memory["peak_mb"] <= bound,
            "healthz_p99_goal_met": flood_latency["p99_ms"] < HEALTHZ_P99_GOAL_MS,
            "server_alive_after": alive,
        },
    }


def report(stack: str, run: dict[str, Any], seconds: float, clients: int, body_mb: int) -> None:
    """Print one stack's flood against its own baseline, as ratios."""
    base, flood, summary = run["baseline"], run["flood"], run["summary"]
    stats = flood["requests"]
    print(f"\n== {stack} ==")
    print(f"{'':22}{'baseline':>12}{'flood':>12}{'ratio':>9}")
    for label, key, before, during in (
        ("/healthz p50 (ms)", "p50_ms", base["healthz"], flood["healthz"]),
        ("/healthz p99 (ms)", "p99_ms", base["healthz"], flood["healthz"]),
        ("/healthz max (ms)", "max_ms", base["healthz"], flood["healthz"]),
        ("server RSS peak (MB)", "peak_mb", base["memory"], flood["memory"]),
    ):
        print(f"{label:22}{before[key]:12.1f}{during[key]:12.1f}{during[key] / before[key]:8.2f}x")
    print(
        f"flood: {stats['requests']:,} requests from {clients} connections in {seconds:.0f} s, "
        f"{stats['large_bodies']:,} with {body_mb} MB bodies (MB sent before the answer: p50 "
        f"{stats['large_body_mb_sent_before_answer_p50']:.1f}, max "
        f"{stats['large_body_mb_sent_before_answer_max']:.1f})"
    )
    for outcome, n in stats["outcomes"].items():
        print(f"  {outcome:40} {n:7,}")
    print(
        f"memory: peak {summary['peak_mb_during_flood']:.0f} MB vs bound "
        f"{summary['memory_bound_mb']:.0f} MB: "
        f"{'met' if summary['memory_goal_met'] else 'NOT met'}; /healthz p99 "
        f"{flood['healthz']['p99_ms']:.1f} ms (goal < {HEALTHZ_P99_GOAL_MS:.0f}): "
        f"{'met' if summary['healthz_p99_goal_met'] else 'NOT met'}; load average before/"
        f"during {run['load_average_before_during']}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=25.0)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--body-mb", type=int, default=30)
    parser.add_argument("--baseline-requests", type=int, default=300)
    parser.add_argument(
        "--stacks", default=",".join(STACKS), help=f"comma-separated, of {', '.join(STACKS)}"
    )
    parser.add_argument("--out", default="flood.json", help="file name under bench/results/")
    parser.add_argument("--flood-worker", type=int, help=argparse.SUPPRESS)  # internal
    args = parser.parse_args()
    if args.flood_worker:
        result = asyncio.run(_flood(args.flood_worker, args.clients, args.seconds, args.body_mb))
        print(json.dumps(result))
        return
    stacks = [name.strip() for name in args.stacks.split(",") if name.strip()]
    unknown = sorted(set(stacks) - set(STACKS))
    if unknown:
        parser.error(f"--stacks: unknown {unknown}; choose from {list(STACKS)}")
    runs = {stack: measure(args, stack) for stack in stacks}
    for stack, run in runs.items():
        report(stack, run, args.seconds, args.clients, args.body_mb)
    if len(runs) > 1:
        first, *others = stacks
        print(f"\nunder the flood, {first} against the others (ratio = other / {first}):")
        for other in others:
            mine, theirs = runs[first]["flood"], runs[other]["flood"]
            p99 = theirs["healthz"]["p99_ms"] / mine["healthz"]["p99_ms"]
            served = theirs["requests"]["requests"] / mine["requests"]["requests"]
            print(f"  {other}: /healthz p99 {p99:.2f}x, flood requests answered {served:.2f}x")
    RESULTS.mkdir(exist_ok=True)
    result = {
        "machine": f"{os.cpu_count()} CPUs, shared",
        "seconds": args.seconds,
        "clients": args.clients,
        "body_mb": args.body_mb,
        "goals": {
            "peak_rss_mb": f"baseline + {MEMORY_BOUND_MB:.0f}",
            "healthz_p99_ms": HEALTHZ_P99_GOAL_MS,
        },
        "stacks": runs,
    }
    (RESULTS / args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
