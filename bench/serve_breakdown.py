"""Where one client's request time goes: aimass's own timers against the bare forward pass.

Issue 17 asks where the single-client gap to the naive server goes. This serves
bench/serve.py's model (MiniLM features, Rotten Tomatoes) with ``aimass serve``
(default runners), drives it with one client for ``--seconds`` and reads the
server's own histograms before and after: the HTTP request (middleware: auth,
audit, the route), the predict call (batcher included), the batch's wait and its
compute (the runner round trip: frame out, tokenise, forward, results back). In
this process it then times the bare forward pass of the same texts, one at a
time, with one torch thread (a runner's share of 2 cores) and with every core
(what the naive server uses), in alternating rounds, back to back and again with
``--pause-ms`` of idle time before each call (as between one client's requests).
Prints means and medians; writes ``bench/results/serve-breakdown.json``.

    python bench/serve_breakdown.py [--seconds 10] [--rounds 3] [--pause-ms 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from serve import RESULTS, _serve_env, drive, free_port, machine, prepare, start  # bench/serve.py

TIMERS = (
    "aimass_http_request_seconds",
    "aimass_predict_seconds",
    "aimass_batch_wait_seconds",
    "aimass_batch_compute_seconds",
)


def sums(metrics: str) -> dict[str, float]:
    """``_sum`` and ``_count`` of every histogram in a Prometheus page, over its labels."""
    found: dict[str, float] = {}
    for line in metrics.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name = line.split("{")[0].split(" ")[0]
        if name.endswith(("_sum", "_count")):
            found[name] = found.get(name, 0.0) + float(line.rsplit(" ", 1)[1])
    return found


def served(home: Path, texts: list[str], key: str, seconds: float) -> dict[str, Any]:
    """One client against ``aimass serve``: its latency and the server's mean timers (ms)."""
    import httpx

    port = free_port()
    proc = start(
        [sys.executable, "-m", "aimass.cli", "serve", "--port", str(port)],
        _serve_env(home),
        f"http://127.0.0.1:{port}/readyz",
    )
    url = f"http://127.0.0.1:{port}/v1/projects/default/models/bench@production:predict"
    auth = {"Authorization": f"Bearer {key}"}
    try:
        asyncio.run(drive(url, auth, texts, 1, 2.0))  # warm up
        before = sums(httpx.get(f"http://127.0.0.1:{port}/metrics").text)
        client = asyncio.run(drive(url, auth, texts, 1, seconds))
        after = sums(httpx.get(f"http://127.0.0.1:{port}/metrics").text)
    finally:
        proc.terminate()
        proc.wait(30)
    means = {}
    for name in TIMERS:
        count = after[f"{name}_count"] - before.get(f"{name}_count", 0.0)
        total = after[f"{name}_sum"] - before.get(f"{name}_sum", 0.0)
        means[name] = 1000 * total / count if count else float("nan")
    return {"client": client, "server_mean_ms": means}


def forward(bundle: str, texts: list[str], rounds: int, pause: float) -> dict[str, Any]:
    """Median ms of the predictor's call on one text, at 1 thread and at every core,
    each call ``pause`` seconds after the last (a served client's turn-around: the
    caches and thread pool go cold as they do between its requests)."""
    import torch

    from aimass.serving.predictor import load_predictor

    predictor = load_predictor(Path(bundle), device="cpu")
    cores = os.cpu_count() or 1
    times: dict[int, list[float]] = {1: [], cores: []}
    for _ in range(rounds):
        for threads in times:
            torch.set_num_threads(threads)
            predictor.predict(texts[:5], batch_size=1)  # warm the thread pool
            for text in texts[:200]:
                time.sleep(pause)
                started = time.perf_counter()
                predictor.predict([text], batch_size=1)
                times[threads].append(1000 * (time.perf_counter() - started))
    return {f"threads_{n}_median_ms": statistics.median(t) for n, t in times.items()}


def main() -> None:
    """Serve, drive one client, read the timers, time the bare forward pass; print and save."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--train-rows", type=int, default=1500)
    parser.add_argument(
        "--pause-ms",
        type=float,
        default=5.0,
        help="idle time before each bare forward pass in its second timing",
    )
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="aimass-breakdown-")) / "home"
    print("training the bench model ...", flush=True)
    texts, bundle, key = prepare(home, args.train_rows)
    result = served(home, texts, key, args.seconds)
    client = result["client"]
    print(
        f"one client: {client['throughput']:.1f} req/s, p50 {client['p50_ms']:.1f} ms, "
        f"p99 {client['p99_ms']:.1f} ms"
    )
    for name, mean in result["server_mean_ms"].items():
        print(f"  {name:32s} mean {mean:7.2f} ms")
    result["forward"] = forward(bundle, texts, args.rounds, 0.0)
    paused = forward(bundle, texts, args.rounds, args.pause_ms / 1000)
    result["forward"].update({f"{k}_after_pause": v for k, v in paused.items()})
    for name, value in result["forward"].items():
        print(f"  bare forward, {name:22s} {value:7.2f} ms")
    out = {"bench": "serve_breakdown", "args": vars(args), "machine": machine("cpu"), **result}
    out["load_average"] = os.getloadavg()
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "serve-breakdown.json").write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
