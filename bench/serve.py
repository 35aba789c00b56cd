"""Serving throughput and latency: aimass vs a naive FastAPI server vs the raw batched forward.

All three serve the *same* model: a MiniLM (packaged all-MiniLM-L6-v2) features-mode
sentiment classifier trained here on a Rotten Tomatoes subset. N concurrent
clients (N = 1, 8, 32, 64) each send one-text predict requests back to back for a
bounded time over loopback:

* **aimass**: ``aimass serve`` (auth, audit, metrics, micro-batching, the
  default runner processes) in its own process;
* **naive**: a FastAPI app doing one forward pass per request (sync endpoint, so
  requests run concurrently in its thread pool), in its own process;
* **ceiling**: the raw batched forward pass (batch 32) in this process, no HTTP;
  also with batches of similar length (the stricter bound, see :func:`ceiling`).

Prints throughput, p50/p99 latency and the ratios, and writes
``bench/results/serve.json``. The machine is shared and noisy; the load
generator shares the CPU with the server under test, equally for both, so it is
a minimal asyncio HTTP/1.1 client (``--client httpx`` for httpx, which costs
several ms of CPU per request and at 64 connections measures itself more than
the servers).

    python bench/serve.py [--seconds 10] [--train-rows 1500] [--client raw|httpx]

With ``--backends`` it compares the serving backends instead (issue 17): the
model is optimised (``aimass models optimize``: ONNX fp32 and int8 with the
parity run on the test split), then aimass on torch, aimass on onnx-int8 and the
naive server run side by side at N = 1 and 32, twice each; writes
``bench/results/serve-onnx.json``.

With ``--at-rest`` it compares instead what encryption and signatures at rest cost:
the same model served by two ``aimass serve`` processes, one on the home as
aimass writes it (AES-256-GCM artifacts, signed bundles) and one on a copy with
every artifact decrypted and signatures off; N = 1 and 32 clients, alternating
which server goes first, plus the time to resolve (check the signature, decrypt)
and load the model in-process, median of 5. Writes
``bench/results/serve-at-rest.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastapi import FastAPI

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

RESULTS = Path(__file__).parent / "results"
CLIENTS = (1, 8, 32, 64)


def _handed_over(ws: Any, version: Any, texts: list[str]) -> tuple[list[str], str, str]:
    """What a ``prepare`` returns for the trained ``version``: (texts, bundle dir,
    admin key); closes ``ws``."""
    bundle = str(ws.artifacts.resolve(version.uri))
    path, _ = ws.keys.ensure_admin()
    ws.close()
    return texts, bundle, path.read_text().strip()


def prepare(
    home: Path, train_rows: int, *, device: str = "cpu", base: str = "minilm"
) -> tuple[list[str], str, str]:
    """Train the bench model on ``device``; returns (texts to send, bundle dir, admin key).

    ``base`` is the packaged MiniLM or a directory holding the same model (the GPU
    machine gets the weights as a copy, not as the package).
    """
    from aimass.data.tables import read_split
    from aimass.jobs.train import TrainSpec
    from aimass.settings import Settings
    from aimass.workspace import Workspace

    ws = Workspace(Settings(home=home, device=device))
    dataset, _ = ws.datasets.import_sample("rotten-tomatoes")
    rows = read_split(ws.artifacts.resolve(dataset.uri), None)
    subset = home / "subset.jsonl"
    with open(subset, "w") as handle:
        for text, label in list(zip(rows.texts, rows.labels or [], strict=True))[:train_rows]:
            handle.write(json.dumps({"text": text, "label": label}) + "\n")
    ws.datasets.import_file(subset, name="rt-small")
    ws.bases.import_(base, name="minilm")
    spec = TrainSpec(
        dataset="rt-small",
        base="minilm",
        model="bench",
        config={"mode": "features", "epochs": 10},
        alias="production",
    )
    version = ws.jobs.train(spec)
    texts = read_split(ws.artifacts.resolve(dataset.uri), "test").texts[:500]
    return _handed_over(ws, version, texts)


def prepare_ner(home: Path, train_rows: int) -> tuple[list[str], str, str]:
    """A Chinese NER tagger as ``bench@production`` (m3e-small fine-tuned on
    ``train_rows`` People's Daily sentences, one epoch: its speed, not its F1, is
    what the serving benches measure); returns (texts, bundle dir, admin key) as
    :func:`prepare`. The texts are test sentences as people write them: the
    characters joined without spaces, 1 to several hundred characters long."""
    from aimass.data.tables import read_split
    from aimass.jobs.train import TrainSpec
    from aimass.settings import Settings
    from aimass.workspace import Workspace

    ws = Workspace(Settings(home=home, device="cpu"))
    dataset, _ = ws.datasets.import_sample("peoples-daily-ner")
    ws.bases.import_("m3e-small")
    spec = TrainSpec(
        dataset=dataset.ref,
        base="m3e-small",
        model="bench",
        config={
            "task": "token-classification",
            "mode": "finetune",
            "epochs": 1,
            "max_train_rows": train_rows,
        },
        alias="production",
    )
    version = ws.jobs.train(spec)
    rows = read_split(ws.artifacts.resolve(dataset.uri), "test")
    texts = ["".join(tokens) for tokens in (rows.tokens or [])[:500]]
    return _handed_over(ws, version, texts)


def naive_app(bundle: str, device: str = "cpu") -> FastAPI:  # pragma: no cover - baseline process
    """One forward pass per request: what a hand-written FastAPI model server does."""
    from fastapi import Body, FastAPI

    from aimass.serving.predictor import load_predictor

    predictor = load_predictor(Path(bundle), device=device)
    app = FastAPI()

    # The body is declared with Body(embed=True), not a local pydantic class: under
    # postponed annotations FastAPI cannot see a class local to this function and
    # would read `inputs` from the query string (every request a 422).
    @app.post("/predict")
    def predict(inputs: list[str] = Body(..., embed=True)) -> dict[str, Any]:  # noqa: B008
        return {"predictions": predictor.predict(inputs)}

    return app


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(cmd: list[str], env: dict[str, str], ready: str) -> subprocess.Popen[bytes]:
    import httpx

    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(ready, timeout=1).status_code in (200, 404, 405):
                return proc
        except httpx.TransportError:
            time.sleep(0.3)
    proc.kill()
    raise RuntimeError(f"{cmd} did not start")


def start_naive(port: int, env: dict[str, str], bundle: str) -> subprocess.Popen[bytes]:
    """The naive baseline server (:func:`factory` under uvicorn) on ``port``, ready."""
    return start(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "serve:factory",
            "--app-dir",
            str(Path(__file__).parent),
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        {**env, "AIMASS_BENCH_BUNDLE": bundle},
        f"http://127.0.0.1:{port}/predict",
    )


class RawConnection:
    """A minimal HTTP/1.1 keep-alive client on asyncio streams: the load generator.

    It shares the two cores with the server under test, so it must cost little:
    httpx spent ~3 ms of CPU per request at 32 connections and ~10 ms at 64 here,
    more than the aimass server's own per-request work. Requests are JSON POSTs;
    responses must carry Content-Length (both servers send it).
    """

    def __init__(self, host: str, port: int | None, headers: dict[str, str]) -> None:
        self.host, self.port = host, port
        self.extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes) -> int:
        """Send one request and read the whole response; returns the status code."""
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n{self.extra}"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        self.writer.write(head.encode() + body)
        assert self.reader is not None
        header = await self.reader.readuntil(b"\r\n\r\n")
        status = int(header.split(b" ", 2)[1])
        length = 0
        for line in header.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        await self.reader.readexactly(length)
        return status

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            await self.writer.wait_closed()


async def drive(
    url: str,
    headers: dict[str, str],
    texts: list[str],
    clients: int,
    seconds: float,
    kind: str = "raw",
) -> dict[str, Any]:
    """``clients`` loops sending one-text requests for ``seconds``; latency per request."""
    import httpx

    latencies: list[float] = []
    errors = 0
    stop = time.perf_counter() + seconds
    parsed = httpx.URL(url)
    bodies = [json.dumps({"inputs": [t]}).encode() for t in texts]

    async def one(i: int, send: Callable[[bytes], Awaitable[int]]) -> None:
        nonlocal errors
        n = i
        while time.perf_counter() < stop:
            started = time.perf_counter()
            status = await send(bodies[n % len(bodies)])
            if status != 200:
                errors += 1
                continue  # an error is not a served request: count it, do not time it
            latencies.append(time.perf_counter() - started)
            n += clients

    def raw_sender(c: RawConnection) -> Callable[[bytes], Awaitable[int]]:
        return lambda body: c.post(parsed.raw_path.decode(), body)

    began = time.perf_counter()
    if kind == "httpx":
        limits = httpx.Limits(max_connections=clients + 4)
        async with httpx.AsyncClient(headers=headers, timeout=120, limits=limits) as client:

            async def send_httpx(body: bytes) -> int:
                response = await client.post(
                    url, content=body, headers={"Content-Type": "application/json"}
                )
                return response.status_code

            await asyncio.gather(*(one(i, send_httpx) for i in range(clients)))
    else:
        connections = [RawConnection(parsed.host, parsed.port, headers) for _ in range(clients)]
        await asyncio.gather(*(one(i, raw_sender(c)) for i, c in enumerate(connections)))
        for connection in connections:
            await connection.close()
    elapsed = time.perf_counter() - began
    ordered = sorted(latencies) or [float("nan")]
    return {
        "clients": clients,
        "requests": len(latencies),
        "errors": errors,
        "throughput": len(latencies) / elapsed,
        "p50_ms": 1000 * ordered[len(ordered) // 2],
        "p99_ms": 1000 * ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))],
    }


def bound_drive(
    url: str, headers: dict[str, str], texts: list[str], clients: int, seconds: float, kind: str
) -> Callable[[], dict[str, Any]]:
    """A :func:`drive` run with these arguments, bound now and run when called (what
    :func:`measured` times)."""
    return lambda: asyncio.run(drive(url, headers, texts, clients, seconds, kind))


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` and its live children (the runners)."""
    import psutil  # type: ignore[import-untyped]  # no stubs installed (types-psutil)

    process = psutil.Process(pid)
    total = sum(process.cpu_times()[:2])
    for child in process.children(recursive=True):
        try:
            total += sum(child.cpu_times()[:2])
        except psutil.NoSuchProcess:
            continue
    return total


def measured(pid: int, run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """``run()``'s result plus the server's own CPU-seconds per 1,000 predictions: a
    measure that holds when the load generator shares the cores (issue 17)."""
    before = cpu_seconds(pid)
    result = run()
    used = cpu_seconds(pid) - before
    result["server_cpu_seconds"] = used
    result["cpu_seconds_per_1000"] = 1000 * used / max(1, result["requests"])
    return result


def ceiling(
    bundle: str,
    texts: list[str],
    seconds: float,
    *,
    by_length: bool = False,
    backend: str = "torch",
    graph: Path | None = None,
    device: str = "cpu",
) -> float:
    """Sentences/s of the raw forward pass at batch 32 (no HTTP, no queue), torch's
    default threads.

    ``by_length=False`` is the issue's ceiling: batches of 32 texts as they come,
    padded to the longest. ``by_length=True`` feeds batches of 32 texts of similar
    length (the texts sorted by token count): what a perfect length-bucketing
    batcher could reach, the stricter bound.
    """
    from aimass.serving.predictor import load_predictor

    predictor = load_predictor(Path(bundle), device=device, backend=backend, graph=graph)
    if by_length:
        lengths = predictor.token_lengths(texts)
        texts = [t for _, t in sorted(zip(lengths, texts, strict=True), key=lambda p: p[0])]
    predictor.predict(texts[:32], batch_size=32)
    done, began, i = 0, time.perf_counter(), 0
    while time.perf_counter() - began < seconds:
        batch = [texts[(i + k) % len(texts)] for k in range(32)]
        predictor.predict(batch, batch_size=32)
        done += 32
        i += 32
    return done / (time.perf_counter() - began)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--train-rows", type=int, default=1500)
    parser.add_argument(
        "--client",
        choices=["raw", "httpx"],
        default="raw",
        help="load generator: a minimal asyncio HTTP/1.1 client (default) or httpx",
    )
    parser.add_argument(
        "--at-rest",
        action="store_true",
        help="compare encrypted and signed artifacts against plaintext ones instead",
    )
    parser.add_argument(
        "--backends",
        action="store_true",
        help="compare the serving backends instead: aimass on torch and on onnx-int8 "
        "(after 'aimass models optimize') against the naive server",
    )
    parser.add_argument(
        "--device",
        choices=["cpu", "cuda"],
        default="cpu",
        help="where the model runs, for training, both servers and the ceiling (cuda: "
        "mixed precision, as 'aimass serve' does on a GPU)",
    )
    parser.add_argument(
        "--base",
        default="minilm",
        help="the packaged MiniLM (default) or a directory holding the same model",
    )
    parser.add_argument(
        "--out",
        default=None,
        help="file name under bench/results/ (default: serve.json, serve-onnx.json with "
        "--backends, serve-at-rest.json with --at-rest)",
    )
    args = parser.parse_args()
    if args.device == "cuda" and (args.at_rest or args.backends):
        parser.error(
            "--device cuda measures the default comparison only: --backends compares "
            "the CPU backends (ONNX Runtime int8) and --at-rest runs on the CPU"
        )
    home = Path(tempfile.mkdtemp(prefix="aimass-bench-"))
    print("training the bench model (features mode) ...", flush=True)
    texts, bundle, key = prepare(home / "home", args.train_rows, device=args.device, base=args.base)
    if args.at_rest:
        at_rest(home, texts, key, args)
        return
    if args.backends:
        backends(home, texts, bundle, key, args)
        return
    env = _serve_env(home / "home", args.device)
    aim_port, naive_port = free_port(), free_port()
    aimass_proc = start(
        [sys.executable, "-m", "aimass.cli", "serve", "--port", str(aim_port)],
        env,
        f"http://127.0.0.1:{aim_port}/readyz",
    )
    naive_proc = start_naive(naive_port, env, bundle)
    rows: list[dict[str, Any]] = []
    try:
        aim_url = f"http://127.0.0.1:{aim_port}/v1/projects/default/models/bench@production:predict"
        naive_url = f"http://127.0.0.1:{naive_port}/predict"
        auth = {"Authorization": f"Bearer {key}"}
        for clients in CLIENTS:
            # Alternate which server goes first, so drift on a shared machine hits both.
            order = [
                ("aimass", aim_url, auth, aimass_proc.pid),
                ("naive", naive_url, {}, naive_proc.pid),
            ]
            if clients in (8, 64):
                order.reverse()
            row: dict[str, Any] = {"clients": clients}
            for name, url, headers, pid in order:
                asyncio.run(drive(url, headers, texts, clients, 1.0, args.client))  # warm up
                row[name] = measured(
                    pid, bound_drive(url, headers, texts, clients, args.seconds, args.client)
                )
            rows.append(row)
            a, n = row["aimass"], row["naive"]
            print(
                f"N={clients:3d}  aimass {a['throughput']:6.1f}/s p50 {a['p50_ms']:7.1f} ms "
                f"p99 {a['p99_ms']:7.1f} ms | naive {n['throughput']:6.1f}/s p50 "
                f"{n['p50_ms']:7.1f} ms p99 {n['p99_ms']:7.1f} ms | "
                f"ratio {a['throughput'] / n['throughput']:.2f}x | server CPU-s per 1,000: "
                f"{a['cpu_seconds_per_1000']:.2f} vs {n['cpu_seconds_per_1000']:.2f} "
                f"({a['cpu_seconds_per_1000'] / n['cpu_seconds_per_1000']:.2f}x)"
                + (
                    f"  ERRORS aimass {a['errors']} naive {n['errors']}"
                    if a["errors"] or n["errors"]
                    else ""
                ),
                flush=True,
            )
    finally:
        aimass_proc.terminate()
        naive_proc.terminate()
        aimass_proc.wait(30)
        naive_proc.wait(30)
    raw = ceiling(bundle, texts, args.seconds, device=args.device)
    sorted_raw = ceiling(bundle, texts, args.seconds, by_length=True, device=args.device)
    single = rows[0]["aimass"]["p50_ms"]
    at32 = next(r for r in rows if r["clients"] == 32)
    summary: dict[str, Any] = {
        "ceiling_per_second": raw,
        "length_sorted_ceiling_per_second": sorted_raw,
        "at_32": {
            "vs_naive": at32["aimass"]["throughput"] / at32["naive"]["throughput"],
            "vs_ceiling": at32["aimass"]["throughput"] / raw,
            "vs_length_sorted_ceiling": at32["aimass"]["throughput"] / sorted_raw,
            "p99_over_single_p50": at32["aimass"]["p99_ms"] / single,
            "cpu_per_prediction_vs_naive": at32["aimass"]["cpu_seconds_per_1000"]
            / at32["naive"]["cpu_seconds_per_1000"],
        },
        "goals": {"vs_naive": 2.5, "vs_ceiling": 0.8, "p99_over_single_p50": 4.0},
    }
    print(f"raw batched forward ceiling: {raw:.1f} sentences/s")
    print(
        f"same, batches of similar length: {sorted_raw:.1f} sentences/s "
        f"(aimass at 32 clients: {summary['at_32']['vs_length_sorted_ceiling']:.0%} of it)"
    )
    print(
        f"at 32 clients: {summary['at_32']['vs_naive']:.2f}x naive (goal 2.5x), "
        f"{summary['at_32']['vs_ceiling']:.0%} of ceiling (goal 80%), p99 "
        f"{summary['at_32']['p99_over_single_p50']:.1f}x single-request p50 (goal < 4x)"
    )
    RESULTS.mkdir(exist_ok=True)
    out = {
        "machine": machine(args.device),
        "device": args.device,
        # The runner's torch threads: the suspect on a GPU (docs/measured.md#on-a-gpu).
        "runner_threads": os.environ.get("AIMASS_SERVE_RUNNER_THREADS", "default"),
        "seconds": args.seconds,
        "client": args.client,
        "rows": rows,
        "summary": summary,
    }
    (RESULTS / (args.out or "serve.json")).write_text(json.dumps(out, indent=2))
    failed = sum(r[name]["errors"] for r in rows for name in ("aimass", "naive"))
    if failed:
        # Error responses are fast: a run with errors compares nothing.
        raise SystemExit(f"{failed} requests failed: these numbers are not a valid comparison")


def machine(device: str) -> str:
    """The machine a result was measured on, in words: CPUs, and the GPU when used."""
    words = f"{os.cpu_count()} CPUs"
    if device == "cuda":
        import torch

        words += f", {torch.cuda.get_device_name()} (torch {torch.__version__})"
    return words


def _serve_env(home: Path, device: str = "cpu") -> dict[str, str]:
    """The environment of a bench server on ``home``, its model warm.

    One key drives every client: the per-key rate and concurrency limits are lifted
    (docs/operations.md) so the bench measures serving, not the throttle.
    """
    return {
        **os.environ,
        "AIMASS_HOME": str(home),
        "AIMASS_DEVICE": device,
        "AIMASS_JOB_WORKERS": "0",
        "AIMASS_WARM_MODELS": '["bench@production"]',
        "AIMASS_REQUESTS_PER_KEY": "1000000/minute",
        "AIMASS_MAX_PREDICTS_PER_KEY": "1024",
        "AIMASS_MAX_PREDICTS": "1024",
    }


def plaintext_copy(home: Path, target: Path) -> None:
    """A copy of ``home`` with every artifact decrypted (as aimass wrote them before)."""
    import shutil

    from aimass.artifacts.envelope import decrypt_file, is_encrypted
    from aimass.settings import Settings
    from aimass.workspace.secrets import load_master_keys

    shutil.copytree(home, target)
    keys = load_master_keys(Settings(home=target))
    for path in (target / "artifacts").rglob("*"):
        if path.is_file() and is_encrypted(path):
            assert keys is not None  # an encrypted artifact: the home has its keys
            plain = path.with_name(path.name + ".plain")
            decrypt_file(path, plain, keys)
            os.replace(plain, path)


def load_seconds(home: Path, *, encrypted: bool, repeats: int = 5) -> float:
    """Median seconds to resolve (signature check, decryption) and load the model."""
    import statistics

    from aimass.artifacts.plaintext import PlaintextCache
    from aimass.serving.predictor import load_predictor
    from aimass.settings import Settings
    from aimass.workspace import Workspace

    flags: dict[str, Any] = (
        {} if encrypted else {"encrypt_at_rest": False, "require_signatures": False}
    )
    times: list[float] = []
    for _ in range(repeats):
        ws = Workspace(Settings(home=home, device="cpu", **flags))
        cache = PlaintextCache(home.parent / "plain-bench")
        ws.artifacts._plaintext = cache  # a cold cache each time: decrypt again
        began = time.perf_counter()
        version = ws.models.get("bench@production")
        load_predictor(ws.artifacts.resolve(version.uri), device="cpu")
        times.append(time.perf_counter() - began)
        cache.clear()
        ws.close()
    return statistics.median(times)


def at_rest(home: Path, texts: list[str], key: str, args: argparse.Namespace) -> None:
    """Encrypted and signed vs plaintext artifacts, same model, same clients."""
    plaintext_copy(home / "home", home / "plain")
    enc_env = _serve_env(home / "home")
    plain_env = {
        **_serve_env(home / "plain"),
        "AIMASS_ENCRYPT_AT_REST": "false",
        "AIMASS_REQUIRE_SIGNATURES": "false",
    }
    loads = {
        "encrypted": load_seconds(home / "home", encrypted=True),
        "plaintext": load_seconds(home / "plain", encrypted=False),
    }
    print(
        f"resolve + load, median of 5: encrypted {loads['encrypted']:.2f} s, plaintext "
        f"{loads['plaintext']:.2f} s ({loads['encrypted'] / loads['plaintext']:.2f}x)",
        flush=True,
    )
    ports = {"encrypted": free_port(), "plaintext": free_port()}
    procs = {
        name: start(
            [sys.executable, "-m", "aimass.cli", "serve", "--port", str(port)],
            enc_env if name == "encrypted" else plain_env,
            f"http://127.0.0.1:{port}/readyz",
        )
        for name, port in ports.items()
    }
    rows: list[dict[str, Any]] = []
    try:
        auth = {"Authorization": f"Bearer {key}"}
        for clients in (1, 32, 1, 32):
            order = ["encrypted", "plaintext"]
            if len(rows) % 2:
                order.reverse()
            row: dict[str, Any] = {"clients": clients}
            for name in order:
                url = (
                    f"http://127.0.0.1:{ports[name]}/v1/projects/default/models/"
                    "bench@production:predict"
                )
                asyncio.run(drive(url, auth, texts, clients, 1.0, args.client))
                row[name] = asyncio.run(drive(url, auth, texts, clients, args.seconds, args.client))
            row["ratio"] = row["encrypted"]["throughput"] / row["plaintext"]["throughput"]
            rows.append(row)
            print(
                f"N={clients:3d}  encrypted {row['encrypted']['throughput']:6.1f}/s | "
                f"plaintext {row['plaintext']['throughput']:6.1f}/s | ratio {row['ratio']:.3f}",
                flush=True,
            )
    finally:
        for proc in procs.values():
            proc.terminate()
            proc.wait(30)
    ratios = sorted(r["ratio"] for r in rows)
    median = (ratios[1] + ratios[2]) / 2
    print(f"throughput, encrypted ÷ plaintext: median {median:.3f} (goal: cost < 5 %, > 0.95)")
    RESULTS.mkdir(exist_ok=True)
    out = {
        "machine": f"{os.cpu_count()} CPUs",
        "seconds": args.seconds,
        "client": args.client,
        "load_seconds": loads,
        "rows": rows,
        "median_throughput_ratio": median,
        "goal": "> 0.95",
    }
    (RESULTS / (args.out or "serve-at-rest.json")).write_text(json.dumps(out, indent=2))
    failed = sum(r[name]["errors"] for r in rows for name in ("encrypted", "plaintext"))
    if failed:
        raise SystemExit(f"{failed} requests failed: these numbers are not a valid comparison")


def backends(home: Path, texts: list[str], bundle: str, key: str, args: argparse.Namespace) -> None:
    """aimass on torch and on onnx-int8 against the naive torch server, same model and clients.

    The model is optimised first (``ws.jobs.optimize``: the parity run on the test
    split gives each backend's accuracy); then three servers run side by side and
    N = 1 and 32 clients drive each in turn, the order rotating per round. The
    ceilings are the raw batched forward pass of each backend, batches of similar
    length (no HTTP, no queue).
    """
    from aimass.jobs.optimize import OptimizeSpec
    from aimass.settings import Settings
    from aimass.workspace import Workspace

    ws = Workspace(Settings(home=home / "home", device="cpu"))
    print("optimising: ONNX export, int8, parity on the test split ...", flush=True)
    version = ws.jobs.optimize(OptimizeSpec(model="bench@production"))
    parity = version.metrics["serving"]
    graph = ws.artifacts.resolve(parity["graphs"])
    ws.close()
    for name, entry in parity["backends"].items():
        print(
            f"  {name:10s} accuracy {entry['accuracy']:.4f}  drop {entry['drop']:+.2f} points  "
            f"{entry['predictions_per_second']:.0f} predictions/s (in process)",
            flush=True,
        )
    env = _serve_env(home / "home")
    ports = {"torch": free_port(), "onnx-int8": free_port(), "naive": free_port()}
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for name in ("torch", "onnx-int8"):
            procs[name] = start(
                [sys.executable, "-m", "aimass.cli", "serve", "--port", str(ports[name])],
                {**env, "AIMASS_SERVE_BACKEND": name},
                f"http://127.0.0.1:{ports[name]}/readyz",
            )
        procs["naive"] = start_naive(ports["naive"], env, bundle)
    except BaseException:
        for proc in procs.values():  # a server that did start must not outlive the bench
            proc.terminate()
        raise
    auth = {"Authorization": f"Bearer {key}"}
    urls = {
        name: f"http://127.0.0.1:{ports[name]}/v1/projects/default/models/bench@production:predict"
        for name in ("torch", "onnx-int8")
    }
    urls["naive"] = f"http://127.0.0.1:{ports['naive']}/predict"
    rows: list[dict[str, Any]] = []
    try:
        for clients in (1, 32, 1, 32):
            names = ["torch", "onnx-int8", "naive"]
            shift = len(rows) % 3
            row: dict[str, Any] = {"clients": clients}
            for name in names[shift:] + names[:shift]:
                headers = {} if name == "naive" else auth
                asyncio.run(drive(urls[name], headers, texts, clients, 1.0, args.client))
                row[name] = measured(
                    procs[name].pid,
                    bound_drive(urls[name], headers, texts, clients, args.seconds, args.client),
                )
            row["int8_vs_naive"] = row["onnx-int8"]["throughput"] / row["naive"]["throughput"]
            row["torch_vs_naive"] = row["torch"]["throughput"] / row["naive"]["throughput"]
            rows.append(row)
            print(
                f"N={clients:3d}  "
                + " | ".join(
                    f"{name} {row[name]['throughput']:6.1f}/s p50 {row[name]['p50_ms']:6.1f} ms "
                    f"p99 {row[name]['p99_ms']:6.1f} ms"
                    for name in names
                )
                + f" | int8 ÷ naive {row['int8_vs_naive']:.2f}x, torch ÷ naive "
                f"{row['torch_vs_naive']:.2f}x",
                flush=True,
            )
    finally:
        for proc in procs.values():
            proc.terminate()
            proc.wait(30)
    ceilings = {
        "torch": ceiling(bundle, texts, args.seconds, by_length=True),
        "onnx-int8": ceiling(
            bundle, texts, args.seconds, by_length=True, backend="onnx-int8", graph=graph
        ),
    }
    print(
        f"raw batched ceilings (similar lengths): torch {ceilings['torch']:.1f}/s, onnx-int8 "
        f"{ceilings['onnx-int8']:.1f}/s",
        flush=True,
    )

    def median(key: str, clients: int) -> float:
        values = sorted(r[key] for r in rows if r["clients"] == clients)
        return sum(values) / len(values)

    at32 = [r for r in rows if r["clients"] == 32]
    int8_at32 = sum(r["onnx-int8"]["throughput"] for r in at32) / len(at32)
    summary = {
        "int8_vs_naive_at_32": median("int8_vs_naive", 32),
        "torch_vs_naive_at_32": median("torch_vs_naive", 32),
        "int8_vs_naive_at_1": median("int8_vs_naive", 1),
        "int8_at_32_vs_torch_ceiling": int8_at32 / ceilings["torch"],
        "int8_at_32_vs_int8_ceiling": int8_at32 / ceilings["onnx-int8"],
        # Little's law: 32 clients waiting for their replies see a mean latency of
        # 32 / throughput; the goal bounds p99 at 1.5x that.
        "int8_p99_over_little_at_32": sum(
            r["onnx-int8"]["p99_ms"] / (32_000 / r["onnx-int8"]["throughput"]) for r in at32
        )
        / len(at32),
        "int8_accuracy_drop_points": parity["backends"]["onnx-int8"]["drop"],
        "goals": {
            "int8_vs_naive_at_32": 3.5,
            "int8_vs_naive_at_1": 1.0,
            "int8_at_32_vs_int8_ceiling": 0.8,
            "int8_p99_over_little_at_32": 1.5,
            "int8_accuracy_drop_points": 0.5,
        },
    }
    print(
        f"at 32 clients: onnx-int8 {summary['int8_vs_naive_at_32']:.2f}x naive (goal 3.5x), "
        f"torch {summary['torch_vs_naive_at_32']:.2f}x; onnx-int8 at "
        f"{summary['int8_at_32_vs_torch_ceiling']:.0%} of the torch ceiling and "
        f"{summary['int8_at_32_vs_int8_ceiling']:.0%} of its own (goal 80%), p99 "
        f"{summary['int8_p99_over_little_at_32']:.2f}x Little's law (goal 1.5x); at 1 client "
        f"{summary['int8_vs_naive_at_1']:.2f}x naive (goal 1.0x); accuracy drop "
        f"{summary['int8_accuracy_drop_points']:+.2f} points (gate 0.5)"
    )
    RESULTS.mkdir(exist_ok=True)
    out = {
        "machine": f"{os.cpu_count()} CPUs",
        "seconds": args.seconds,
        "client": args.client,
        "parity": parity,
        "rows": rows,
        "ceilings": ceilings,
        "summary": summary,
    }
    (RESULTS / (args.out or "serve-onnx.json")).write_text(json.dumps(out, indent=2))
    failed = sum(r[name]["errors"] for r in rows for name in ("torch", "onnx-int8", "naive"))
    if failed:
        raise SystemExit(f"{failed} requests failed: these numbers are not a valid comparison")


def factory() -> FastAPI:  # pragma: no cover - the naive baseline's app factory (uvicorn --factory)
    # The naive server runs where aimass does: _serve_env's AIMASS_DEVICE.
    return naive_app(os.environ["AIMASS_BENCH_BUNDLE"], os.environ.get("AIMASS_DEVICE", "cpu"))


if __name__ == "__main__":
    main()
