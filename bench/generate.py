"""Generation speed: aimass's streaming generator vs a plain ``model.generate`` loop.

Both run the *same* model object (SmolLM2-135M-Instruct converted from the
packaged GGUF; ``--base gemma3`` for Gemma-3-270M, ``--model DIR`` for any decoder
directory) on the same
prompts with the same settings: greedy decoding, ``--max-new-tokens`` new
tokens, the key/value cache on, end-of-sequence ignored (``min_new_tokens`` for
the baseline, a stop-free run for aimass), so both produce exactly the same
number of tokens. aimass goes through ``GenerationPredictor.generate_stream``
(chat template, context checks, incremental decoding with stop-string
handling: everything a caller pays for); the baseline calls
``model.generate(input_ids, ...)`` and decodes once.

Tokens per second count generated tokens over wall time. Time to first token
is the time until the first text event for aimass and the time of a
``max_new_tokens=1`` generate call for the baseline. Runs alternate and medians
are reported, because this machine is shared and noisy.

    python bench/generate.py [--max-new-tokens 64] [--repeats 5] [--threads 2]

Writes ``bench/results/generate.json``.

``--concurrency 1,8`` measures continuous batching instead: for each count N,
N threads each stream one generation (different prompts, EOS ignored) from the
*same* predictor at once, through the batched scheduler (``max_batch`` 8) and,
side by side in the same run, through a predictor built with ``batching=False``
(each call its own decode loop, as before batching). Aggregate tokens/s is all
the streams' tokens over the wall time of the round; time to first token is
each stream's own (from its call to its first text event), p50/p99 over every
stream of every round. Writes ``bench/results/generate-batched.json`` (``--out NAME``
for another file under ``bench/results``).

    python bench/generate.py --concurrency 1,8 [--max-new-tokens 64] [--repeats 3]

``--runners N`` runs the same comparison through the server's runner processes
(``RunnerPool``, N runners sharing ``--threads``): "batched" is a multiplexed pool
(the server's default for generative models: many generations per runner, decoded
together), "unbatched" one generation per runner at a time, as before
multiplexing. End of sequence is honoured there (the runner's model is its own),
so both modes generate the same greedy tokens; tokens/s counts what was
generated. Writes ``bench/results/generate-batched-runners.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aimass.serving.generation import GenerationPredictor
    from aimass.serving.runner import RunnerPool

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch

RESULTS = Path(__file__).parent / "results"
PROMPTS = [
    "Write a short note to a colleague about tomorrow's meeting.",
    "Explain what a hospital discharge summary contains.",
    "List three ways to keep customer data private.",
    "Summarise why regular backups matter.",
    "Give two tips for writing a clear email subject line.",
    "What should a new employee read in their first week?",
    "Describe a good way to start a team meeting, in one paragraph.",
    "Name three things to check before sending an invoice to a client.",
]


def packaged_bundle(tmp: Path, name: str = "smollm2") -> Path:
    """A packaged base imported as a bundle (what 'aimass bases import NAME' makes)."""
    from aimass.settings import Settings
    from aimass.workspace import Workspace

    ws = Workspace(Settings(home=tmp / "home", device="cpu"))
    base, _ = ws.bases.import_(name)
    path = ws.artifacts.resolve(base.uri)
    ws.close()
    return path


def run_aimass(
    predictor: GenerationPredictor, prompt: str, args: argparse.Namespace
) -> dict[str, Any]:
    """One streamed generation through the predictor; EOS ignored so lengths match."""
    eos = predictor.eos
    predictor.eos = []  # generate exactly max_new_tokens, like min_new_tokens below
    try:
        started = time.perf_counter()
        first = None
        final: dict[str, Any] = {}
        for event in predictor.generate_stream(prompt, max_new_tokens=args.max_new_tokens):
            if first is None:
                first = time.perf_counter() - started
            final = event
        seconds = time.perf_counter() - started
    finally:
        predictor.eos = eos
    tokens = final["usage"]["completion_tokens"]
    return {
        "tokens": tokens,
        "seconds": seconds,
        "tokens_per_second": tokens / seconds,
        "ttft": first,
    }


def run_baseline(
    predictor: GenerationPredictor, prompt: str, args: argparse.Namespace
) -> dict[str, Any]:
    """The same model and prompt ids through ``model.generate`` (greedy, cache on)."""
    from aimass.models.generation import SamplingParams

    ids = torch.tensor([predictor.encode(prompt, SamplingParams(max_new_tokens=1))])
    common = {"do_sample": False, "use_cache": True, "pad_token_id": predictor.eos[0]}
    with torch.inference_mode():
        started = time.perf_counter()
        predictor.model.generate(ids, max_new_tokens=1, **common)
        ttft = time.perf_counter() - started
        started = time.perf_counter()
        out = predictor.model.generate(
            ids,
            max_new_tokens=args.max_new_tokens,
            min_new_tokens=args.max_new_tokens,
            **common,
        )
        predictor.tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True)
        seconds = time.perf_counter() - started
    tokens = int(out.shape[1] - ids.shape[1])
    return {
        "tokens": tokens,
        "seconds": seconds,
        "tokens_per_second": tokens / seconds,
        "ttft": ttft,
    }


def stream_one(
    predictor: GenerationPredictor | PoolStreams, prompt: str, args: argparse.Namespace
) -> dict[str, Any]:
    """One streamed generation; the caller has emptied ``predictor.eos`` (lengths match)."""
    started = time.perf_counter()
    first = None
    final: dict[str, Any] = {}
    for event in predictor.generate_stream(prompt, max_new_tokens=args.max_new_tokens):
        if first is None:
            first = time.perf_counter() - started
        final = event
    return {"tokens": final["usage"]["completion_tokens"], "ttft": first}


def stream_round(
    predictor: GenerationPredictor | PoolStreams, count: int, args: argparse.Namespace
) -> dict[str, Any]:
    """``count`` streams started together on ``predictor``; their tokens, wall time and TTFTs."""
    results: list[dict[str, Any]] = [{} for _ in range(count)]
    start = threading.Barrier(count + 1)

    def one(i: int) -> None:
        start.wait()
        results[i] = stream_one(predictor, PROMPTS[i % len(PROMPTS)], args)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    start.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    tokens = sum(r["tokens"] for r in results)
    return {
        "streams": count,
        "tokens": tokens,
        "seconds": seconds,
        "tokens_per_second": tokens / seconds,
        "ttft": [r["ttft"] for r in results],
    }


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values``, nearest rank."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


class PoolStreams:
    """A runner pool behind the predictor's ``generate_stream`` signature."""

    def __init__(self, pool: RunnerPool) -> None:
        self.pool = pool

    def generate_stream(self, prompt: str, **options: Any) -> Iterator[dict[str, Any]]:
        return self.pool.generate_stream(prompt, options)


def _predictors(
    bundle: Path, counts: list[int], args: argparse.Namespace
) -> dict[str, GenerationPredictor] | dict[str, PoolStreams]:
    """The two modes compared: in this process, or in runner processes (``--runners``)."""
    from aimass.artifacts.bundle import verify_bundle
    from aimass.serving.generation import GenerationPredictor

    if args.runners:
        from aimass.serving.runner import RunnerPool

        pools = {
            name: RunnerPool(
                bundle,
                count=args.runners,
                threads=max(1, args.threads // args.runners),
                device="cpu",
                name=f"bench/{name}",
                multiplex=name == "batched",
            )
            for name in ("batched", "unbatched")
        }
        for pool in pools.values():
            pool.open()
        return {name: PoolStreams(pool) for name, pool in pools.items()}
    manifest = verify_bundle(bundle)
    predictors = {
        "batched": GenerationPredictor(bundle, manifest, "cpu", max_batch=max(counts)),
        "unbatched": GenerationPredictor(bundle, manifest, "cpu", batching=False),
    }
    if predictors["batched"].scheduler is None:
        sys.exit(f"{bundle}: this model's cache cannot be batched; nothing to compare")
    for predictor in predictors.values():
        predictor.eos = []  # generate exactly max_new_tokens, as in the default mode
    return predictors


def main_concurrent(args: argparse.Namespace) -> None:
    """Batched vs one-loop-per-call at each concurrency; print and write the summary."""
    counts = [int(c) for c in args.concurrency.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        bundle = args.model or packaged_bundle(Path(tmp), args.base)
        predictors = _predictors(bundle, counts, args)
        for predictor in predictors.values():
            # Untimed: first calls pay one-off costs.
            stream_round(predictor, 2, argparse.Namespace(max_new_tokens=4))
        rounds: dict[str, dict[int, list[dict[str, Any]]]] = {
            n: {c: [] for c in counts} for n in predictors
        }
        for repeat in range(args.repeats):
            for count in counts:
                for name, predictor in predictors.items():
                    result = stream_round(predictor, count, args)
                    rounds[name][count].append(result)
                    print(
                        f"[{repeat + 1}/{args.repeats}] {name:9s} {count} streams "
                        f"{result['tokens_per_second']:7.2f} tokens/s  ttft max "
                        f"{max(result['ttft']) * 1000:7.1f} ms  ({result['tokens']} tokens)",
                        flush=True,
                    )
        first = predictors["batched"]
        if isinstance(first, PoolStreams):
            from aimass.artifacts.bundle import verify_bundle

            manifest = verify_bundle(bundle)
            model_info = {"architecture": manifest.architecture, "family": manifest.family}
            for predictor in predictors.values():
                assert isinstance(predictor, PoolStreams)  # all are, with --runners
                predictor.pool.close()
        else:
            model_info = {
                "type": str(first.model.config.model_type),
                "parameters": sum(p.numel() for p in first.model.parameters()),
            }
    summary = {
        name: {
            str(count): {
                "tokens_per_second": statistics.median(r["tokens_per_second"] for r in results),
                "ttft_p50": percentile([t for r in results for t in r["ttft"]], 0.5),
                "ttft_p99": percentile([t for r in results for t in r["ttft"]], 0.99),
            }
            for count, results in by_count.items()
        }
        for name, by_count in rounds.items()
    }
    low, high = str(min(counts)), str(max(counts))
    ratios = {
        name: rows[high]["tokens_per_second"] / rows[low]["tokens_per_second"]
        for name, rows in summary.items()
    }
    print(f"\n{'':22s} {'tokens/s':>9s} {'TTFT p50':>9s} {'TTFT p99':>9s}  (ms)")
    for name, rows in summary.items():
        for streams, row in rows.items():
            print(
                f"{name:9s} {streams:>2s} streams  {row['tokens_per_second']:9.2f} "
                f"{row['ttft_p50'] * 1000:9.1f} {row['ttft_p99'] * 1000:9.1f}"
            )
    for name, ratio in ratios.items():
        print(f"{name}: aggregate tokens/s {high} streams / {low} stream: {ratio:.2f}x")
    print("(goal for batched: >= 3x)")
    RESULTS.mkdir(exist_ok=True)
    out = {
        "benchmark": "generate-batched" + ("-runners" if args.runners else ""),
        "model": model_info,
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "max_batch": max(counts),
        "rounds": {n: {str(c): r for c, r in by.items()} for n, by in rounds.items()},
        "median": summary,
        "ratio_streams": ratios,
        "torch": torch.__version__,
        "cpu_count": os.cpu_count(),
    }
    name = "generate-batched-runners.json" if args.runners else "generate-batched.json"
    (RESULTS / (args.out or name)).write_text(json.dumps(out, indent=2))


def main() -> None:
    """Alternate aimass and the baseline over the prompts; print medians and the ratio."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, help="a decoder bundle directory (default: --base)")
    parser.add_argument(
        "--base", default="smollm2", help="packaged base to import when --model is not given"
    )
    parser.add_argument("--out", help="result file name under bench/results (default per mode)")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--concurrency",
        help="comma-separated stream counts (e.g. 1,8): measure continuous batching instead",
    )
    parser.add_argument(
        "--runners",
        type=int,
        default=0,
        help="with --concurrency: through N runner processes (0: in this process)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.concurrency:
        main_concurrent(args)
        return

    from aimass.serving.generation import GenerationPredictor
    from aimass.serving.predictor import load_predictor

    with tempfile.TemporaryDirectory() as tmp:
        bundle = args.model or packaged_bundle(Path(tmp), args.base)
        predictor = load_predictor(bundle, device="cpu")
        assert isinstance(predictor, GenerationPredictor)  # a decoder's bundle
        # Untimed warm-up of both paths (first calls pay one-off allocation costs).
        warm = argparse.Namespace(max_new_tokens=4)
        run_aimass(predictor, PROMPTS[0], warm)
        run_baseline(predictor, PROMPTS[0], warm)
        runs: dict[str, list[dict[str, Any]]] = {"aimass": [], "model_generate": []}
        for repeat in range(args.repeats):
            for prompt in PROMPTS:
                for name, fn in (("aimass", run_aimass), ("model_generate", run_baseline)):
                    result = fn(predictor, prompt, args)
                    runs[name].append(result)
                    print(
                        f"[{repeat + 1}/{args.repeats}] {name:14s} "
                        f"{result['tokens_per_second']:7.2f} tokens/s  ttft "
                        f"{result['ttft'] * 1000:7.1f} ms  ({result['tokens']} tokens)",
                        flush=True,
                    )
        model_name = str(predictor.model.config.model_type)
        params = sum(p.numel() for p in predictor.model.parameters())

    summary = {
        name: {k: statistics.median(r[k] for r in results) for k in ("tokens_per_second", "ttft")}
        for name, results in runs.items()
    }
    ratio = summary["aimass"]["tokens_per_second"] / summary["model_generate"]["tokens_per_second"]
    print(f"\n{'':16s} {'tokens/s':>9s} {'TTFT ms':>9s}   (medians of {len(runs['aimass'])})")
    for name, row in summary.items():
        print(f"{name:16s} {row['tokens_per_second']:9.2f} {row['ttft'] * 1000:9.1f}")
    print(f"\ntokens/s ratio aimass / model.generate: {ratio:.2f}x (goal >= 1.0)")
    RESULTS.mkdir(exist_ok=True)
    out = {
        "benchmark": "generate",
        "model": {"type": model_name, "parameters": params},
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "runs": runs,
        "median": summary,
        "ratio": ratio,
        "torch": torch.__version__,
        "cpu_count": os.cpu_count(),
    }
    (RESULTS / (args.out or "generate.json")).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
