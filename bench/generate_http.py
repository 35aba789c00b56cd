"""Generation over HTTP: streamed server-sent events vs the same generation in process.

Three sides run the same model version of one home: in process through
``ws.serving.generate_stream``; over HTTP through ``Client.generate_stream``
against ``aimass serve``'s app in uvicorn (a thread of this process, real
sockets, every token a threadpool hop, an SSE frame and a parse) serving in its
own process (``AIMASS_SERVE_RUNNERS=0``); and the same over HTTP with the
generation in a runner process (the default: every token also crosses the
runner's pipe as a frame). Greedy decoding, so all produce the same tokens. Runs
alternate; medians of tokens per second and time to first text are reported with
their ratios (HTTP / in process; the goal is ≈ 1.0, i.e. the transport costs
nothing a user would see).

The model is SmolLM2-135M-Instruct (packaged GGUF, converted offline, then one
fine-tuning step so it is a registered model version), or with ``--tiny`` a
tiny random Llama, where decoding is so cheap that the ratio exposes the
per-token cost of the HTTP path itself.

    python bench/generate_http.py [--tiny] [--max-new-tokens 64] [--repeats 5] [--threads 2]

Writes ``bench/results/generate_http[-tiny].json``.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

RESULTS = Path(__file__).parent / "results"
SIDES = ("in_process", "http_sse", "http_sse_runner")
PROMPT = "Explain what a hospital discharge summary contains."
PAIRS = [{"prompt": f"Say {w}.", "response": f"{w}."} for w in ("yes", "no", "maybe", "hello")]


def build_home(home: Path, *, tiny: bool) -> str:
    """A home with one causal-LM version; returns its ref."""
    from aimass.jobs.train import TrainSpec
    from aimass.settings import Settings
    from aimass.workspace import Workspace

    ws = Workspace(Settings(home=home, device="cpu"))
    data = home.parent / "pairs.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in PAIRS * 6) + "\n")
    from aimass.data.importer import ImportOptions

    ws.datasets.import_file(data, name="pairs", options=ImportOptions(kind="pairs"))
    if tiny:
        corpus = home.parent / "corpus.jsonl"
        corpus.write_text(
            "\n".join(json.dumps({"text": f"{r['prompt']} {r['response']}"}) for r in PAIRS * 30)
        )
        ws.datasets.import_file(corpus, name="corpus")
        ws.bases.train_tokenizer("corpus", name="tok", vocab_size=200, min_frequency=1)
        ws.bases.create_scratch("base", architecture="llama", tokenizer="tok", preset="tiny")
    else:
        ws.bases.import_("smollm2", name="base")
    config = {"task": "causal-lm", "epochs": 1, "max_train_rows": 2, "batch_size": 2, "lr": 1e-6}
    version = ws.jobs.train(TrainSpec(dataset="pairs", base="base", model="lm", config=config))
    ws.close()
    return version.ref


@contextmanager
def serve(home: Path, *, runners: int, threads: int) -> Iterator[tuple[str, str]]:
    import uvicorn

    from aimass.server import create_app
    from aimass.settings import Settings

    settings = Settings(
        home=home, device="cpu", serve_runners=runners, serve_runner_threads=threads
    )
    app = create_app(settings, job_workers=0)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", (home / "admin.key").read_text().strip()
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def timed(events: Iterator[dict[str, Any]]) -> dict[str, float]:
    started = time.perf_counter()
    first = None
    final: dict[str, Any] = {}
    for event in events:
        if first is None:
            first = time.perf_counter() - started
        final = event
    seconds = time.perf_counter() - started
    tokens = final["usage"]["completion_tokens"]
    return {"tokens": tokens, "tokens_per_second": tokens / seconds, "ttft": first or seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    from aimass.client import Client
    from aimass.settings import Settings
    from aimass.workspace import Workspace

    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        ref = build_home(home, tiny=args.tiny)
        options = {"max_new_tokens": args.max_new_tokens, "temperature": 0}
        local_ws = Workspace(Settings(home=home, device="cpu"))
        runs: dict[str, list[dict[str, float]]] = {s: [] for s in SIDES}
        with (
            serve(home, runners=0, threads=args.threads) as (url, key),
            serve(home, runners=1, threads=args.threads) as (runner_url, _),
            Client(url, key) as client,
            Client(runner_url, key) as runner_client,
        ):
            sides = {
                "in_process": lambda: local_ws.serving.generate_stream(ref, PROMPT, **options),
                "http_sse": lambda: client.generate_stream(ref, PROMPT, **options),
                "http_sse_runner": lambda: runner_client.generate_stream(ref, PROMPT, **options),
            }
            for start in sides.values():
                timed(start())  # warm every side (the runner loads the model here)
            for _ in range(args.repeats):
                for side, start in sides.items():
                    runs[side].append(timed(start()))
        local_ws.close()

    def median(side: str, key: str) -> float:
        return statistics.median(r[key] for r in runs[side])

    summary = {
        "model": "tiny random llama" if args.tiny else "SmolLM2-135M-Instruct",
        "max_new_tokens": args.max_new_tokens,
        "tokens": runs["http_sse"][0]["tokens"],
        "threads": args.threads,
        "repeats": args.repeats,
        "in_process_tokens_per_second": round(median("in_process", "tokens_per_second"), 2),
        "http_tokens_per_second": round(median("http_sse", "tokens_per_second"), 2),
        "in_process_ttft_ms": round(median("in_process", "ttft") * 1000, 2),
        "http_ttft_ms": round(median("http_sse", "ttft") * 1000, 2),
        "http_runner_tokens_per_second": round(median("http_sse_runner", "tokens_per_second"), 2),
        "http_runner_ttft_ms": round(median("http_sse_runner", "ttft") * 1000, 2),
        "runs": runs,
    }
    summary["ratio_runner_tokens_per_second"] = round(
        summary["http_runner_tokens_per_second"] / summary["in_process_tokens_per_second"], 3
    )
    summary["ratio_tokens_per_second"] = round(
        summary["http_tokens_per_second"] / summary["in_process_tokens_per_second"], 3
    )
    per_token_local = 1000 / summary["in_process_tokens_per_second"]
    per_token_http = 1000 / summary["http_tokens_per_second"]
    summary["http_overhead_ms_per_token"] = round(per_token_http - per_token_local, 3)
    RESULTS.mkdir(exist_ok=True)
    name = "generate_http-tiny" if args.tiny else "generate_http"
    (RESULTS / f"{name}.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(
        f"{summary['model']}, {summary['tokens']} tokens, medians of {args.repeats}: "
        f"in process {summary['in_process_tokens_per_second']} tokens/s, HTTP/SSE "
        f"{summary['http_tokens_per_second']} tokens/s "
        f"(ratio {summary['ratio_tokens_per_second']}x, "
        f"{summary['http_overhead_ms_per_token']} ms/token); HTTP/SSE from a runner process "
        f"{summary['http_runner_tokens_per_second']} tokens/s (ratio "
        f"{summary['ratio_runner_tokens_per_second']}x); time to first text "
        f"{summary['in_process_ttft_ms']} ms vs {summary['http_ttft_ms']} ms vs "
        f"{summary['http_runner_ttft_ms']} ms"
    )


if __name__ == "__main__":
    main()
