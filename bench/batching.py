"""The micro-batcher's token budget: throughput against tail latency, side by side.

Issue 17 asks for p99 latency at 32 clients within 1.5x of what Little's law allows at
the measured throughput (32 clients each waiting for their reply see a mean latency
of 32 / throughput, so the goal is p99 <= 1.5 x 32 / throughput). This bench measures
what the batch token budget (``AIMASS_BATCH_MAX_TOKENS``) does to that ratio and to
throughput, on the bench model of ``bench/serve.py`` (MiniLM features, 1,500 Rotten
Tomatoes rows):

1. **Forward cost per padded token** of the serving backend, in process, one thread
   (as each runner has): batches of 1-32 inputs of 16, 32 and 64 tokens, median of 7
   passes each. Past about 128 padded tokens a batch costs the same per token: a larger
   batch buys no throughput on a CPU.
2. **Servers**: ``aimass serve`` on the same home once per budget (``--budgets``),
   rounds rotating the order so drift on a shared machine falls on each; per server
   N=32 then N=1 clients sending one-text requests (bench/serve.py's load generator):
   throughput, p50, p99 and p99 / (32 / throughput). Medians over the rounds.

    python bench/batching.py [--budgets 8192,256,192,128] [--rounds 4] [--seconds 12]
                             [--backend onnx-int8|torch] [--out batching.json]

Writes ``bench/results/batching.json`` (or ``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from serve import RESULTS, _serve_env, prepare  # bench/serve.py
from serve_ab import one_server  # bench/serve_ab.py

SHAPES = ((16, (1, 2, 4, 8, 16, 32)), (32, (1, 2, 4, 8, 16, 32)), (64, (1, 2, 4, 8, 16, 32)))


def forward_costs(bundle: Path, backend: str, graph: Path | None) -> list[dict[str, Any]]:
    """Median milliseconds of one forward pass per batch shape, one thread."""
    import torch

    from aimass.models.text import collate, encode_texts
    from aimass.serving.predictor import load_predictor
    from aimass.serving.sequence import SequencePredictor

    torch.set_num_threads(1)
    predictor = load_predictor(bundle, device="cpu", backend=backend, graph=graph, threads=1)
    assert isinstance(predictor, SequencePredictor), "the bench model is a classifier"
    rows = []
    for length, sizes in SHAPES:
        for size in sizes:
            texts = [" ".join(["word"] * (length - 2))] * size  # [CLS] + words + [SEP]
            encoded = encode_texts(predictor.tokenizer, texts, max_length=length)
            batch = collate(encoded, list(range(size)), predictor.device)
            assert batch["input_ids"].shape == (size, length), batch["input_ids"].shape
            predictor.forward(batch)
            times = []
            for _ in range(7):
                began = time.perf_counter()
                predictor.forward(batch)
                times.append(time.perf_counter() - began)
            ms = 1000 * statistics.median(times)
            rows.append(
                {
                    "length": length,
                    "size": size,
                    "padded_tokens": length * size,
                    "ms": ms,
                    "ms_per_input": ms / size,
                    "tokens_per_s": 1000 * length * size / ms,
                }
            )
            print(
                f"  {length:3d} tokens x {size:2d}: {ms:7.2f} ms, {ms / size:6.2f} ms per input, "
                f"{rows[-1]['tokens_per_s']:6.0f} tokens/s",
                flush=True,
            )
    return rows


def main() -> None:
    """Measure the forward costs, then the servers per budget; print and write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budgets", default="8192,256,192,128")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--backend", choices=["onnx-int8", "torch"], default="onnx-int8")
    parser.add_argument("--train-rows", type=int, default=1500)
    parser.add_argument("--out", default="batching.json", help="file name under bench/results/")
    args = parser.parse_args()
    budgets = [int(b) for b in args.budgets.split(",") if b]

    from aimass.jobs.optimize import OptimizeSpec
    from aimass.settings import Settings
    from aimass.workspace import Workspace

    home = Path(tempfile.mkdtemp(prefix="aimass-bench-"))
    print("training the bench model (features mode) ...", flush=True)
    texts, bundle, key = prepare(home / "home", args.train_rows)
    graph = None
    if args.backend != "torch":
        ws = Workspace(Settings(home=home / "home", device="cpu"))
        version = ws.jobs.optimize(OptimizeSpec(model="bench@production"))
        graph = ws.artifacts.resolve(version.metrics["serving"]["graphs"])
        ws.close()
    print(f"forward pass cost by batch shape ({args.backend}, one thread):", flush=True)
    costs = forward_costs(Path(bundle), args.backend, graph)

    env = {**_serve_env(home / "home"), "AIMASS_SERVE_BACKEND": args.backend}
    rows: dict[int, list[dict[str, Any]]] = {b: [] for b in budgets}
    for round_ in range(args.rounds):
        shift = round_ % len(budgets)
        for budget in budgets[shift:] + budgets[:shift]:
            measured = one_server(
                {**env, "AIMASS_BATCH_MAX_TOKENS": str(budget)},
                key,
                texts,
                args.seconds,
                single_seconds=args.seconds / 3,
            )
            rows[budget].append(measured)
            at32, at1 = measured["n32"], measured["n1"]
            print(
                f"budget {budget:5d}: N=32 {at32['throughput']:6.1f}/s p50 {at32['p50_ms']:6.1f} "
                f"p99 {at32['p99_ms']:6.1f} ms, p99 / Little {at32['p99_over_little']:.2f} | "
                f"N=1 {at1['throughput']:5.1f}/s p50 {at1['p50_ms']:5.1f} ms",
                flush=True,
            )
    summary = {}
    for budget, found in rows.items():

        def median(n: str, key: str, found: list[dict[str, Any]] = found) -> float:
            return statistics.median(r[n][key] for r in found)

        summary[budget] = {
            "n32_throughput": median("n32", "throughput"),
            "n32_p99_ms": median("n32", "p99_ms"),
            "n32_p99_over_little": median("n32", "p99_over_little"),
            "n1_throughput": median("n1", "throughput"),
            "n1_p50_ms": median("n1", "p50_ms"),
        }
    base = summary[budgets[0]]
    print(f"medians over {args.rounds} rounds (ratios against budget {budgets[0]}):")
    for budget, s in summary.items():
        print(
            f"  budget {budget:5d}: N=32 {s['n32_throughput']:6.1f}/s "
            f"(x{s['n32_throughput'] / base['n32_throughput']:.2f}), p99 / Little "
            f"{s['n32_p99_over_little']:.2f} (goal <= 1.5) | N=1 {s['n1_throughput']:5.1f}/s "
            f"(x{s['n1_throughput'] / base['n1_throughput']:.2f})"
        )
    RESULTS.mkdir(exist_ok=True)
    out = {
        "bench": "batching",
        "args": vars(args),
        "machine": f"{os.cpu_count()} CPUs",
        "load_average": os.getloadavg(),
        "forward_costs": costs,
        "rows": {str(b): r for b, r in rows.items()},
        "summary": {str(b): s for b, s in summary.items()},
    }
    (RESULTS / args.out).write_text(json.dumps(out, indent=2))
    failed = sum(r[n]["errors"] for found in rows.values() for r in found for n in ("n32", "n1"))
    if failed:
        raise SystemExit(f"{failed} requests failed: these numbers are not a valid comparison")


if __name__ == "__main__":
    main()
