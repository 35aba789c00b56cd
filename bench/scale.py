"""Scale-out on one machine: 1 vs 2 server processes, 1 vs 2 Ray Serve replicas, and
the overhead of distributed training, each pair side by side in one run.

Everything runs on the engines a cluster uses, started by ``scripts/dev-cluster``
on loopback: PostgreSQL for the metadata, an S3-compatible server (moto) for the
artifacts, a Ray head and worker. The model is the MiniLM features-mode sentiment
classifier of ``bench/serve.py``, trained here through that stack.

* **servers**: N clients send one-text predict requests to one ``aimass serve``, then
  the same N split evenly over two ``aimass serve`` processes that share the database
  and the bucket (each with its own home and cache, as on two machines);
* **replicas**: the same against one server whose model is served by Ray Serve with
  exactly 1 replica, then exactly 2, then 1 again (``AIMASS_SERVE_WITH=ray``);
* **training**: ``bench/distributed.py``'s 1-worker and 2-worker trainings, when that
  script is present (it writes its own result file; its ratio is printed here).

This machine has two cores shared by the load generator, both servers, their runners
and Ray, so a second process cannot add cores: the ratios measure what a second
process costs or gains here, not what a second machine would give. Prints the
ratios and writes ``bench/results/scale.json``.

    python bench/scale.py [--seconds 10] [--clients 8 32] [--skip-replicas]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import httpx

from serve import RESULTS, drive, free_port, prepare, start

ROOT = Path(__file__).resolve().parents[1]


def cluster_env(state: Path, base_port: int) -> dict[str, str]:
    """Start ``scripts/dev-cluster`` and return the environment it wrote."""
    env = {**os.environ, "AIMASS_DEV_CLUSTER": str(state), "AIMASS_DEV_PORT": str(base_port)}
    subprocess.run([str(ROOT / "scripts/dev-cluster"), "start"], env=env, check=True)
    found = dict(env)
    for line in (state / "env").read_text().splitlines():
        for item in line.removeprefix("export ").split(" "):
            name, _, value = item.partition("=")
            found[name] = value.strip("'")
    return found


def server_env(env: dict[str, str], name: str, state: Path, **extra: str) -> dict[str, str]:
    """One bench server's environment: its own home and cache, limits lifted."""
    return {
        **env,
        "AIMASS_HOME": str(state / f"bench-{name}"),
        "AIMASS_ARTIFACT_ROOT": str(state / f"bench-{name}-cache"),
        "AIMASS_DEVICE": "cpu",
        "AIMASS_JOB_WORKERS": "0",
        "AIMASS_REQUESTS_PER_KEY": "1000000/minute",
        "AIMASS_MAX_PREDICTS_PER_KEY": "1024",
        "AIMASS_MAX_PREDICTS": "1024",
        **extra,
    }


def serve(env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    """An ``aimass serve`` on a free port; returns it and its predict URL."""
    port = free_port()
    proc = start(
        [sys.executable, "-m", "aimass.cli", "serve", "--port", str(port)],
        env,
        f"http://127.0.0.1:{port}/readyz",
    )
    return proc, f"http://127.0.0.1:{port}/v1/projects/default/models/bench@production:predict"


async def drive_split(
    urls: list[str], headers: dict[str, str], texts: list[str], clients: int, seconds: float
) -> dict[str, Any]:
    """``clients`` split evenly over ``urls`` at once; throughput and latency of all."""
    share = [clients // len(urls) + (i < clients % len(urls)) for i in range(len(urls))]
    parts = await asyncio.gather(
        *(drive(url, headers, texts, n, seconds) for url, n in zip(urls, share, strict=True))
    )
    requests = sum(p["requests"] for p in parts)
    return {
        "clients": clients,
        "requests": requests,
        "errors": sum(p["errors"] for p in parts),
        "throughput": sum(p["throughput"] for p in parts),
        # The slower side's percentiles: the bound a client of the pair sees.
        "p50_ms": max(p["p50_ms"] for p in parts),
        "p99_ms": max(p["p99_ms"] for p in parts),
        "parts": parts,
    }


def probe(urls: list[str], headers: dict[str, str], texts: list[str]) -> None:
    """One request to each server first: a server that answers errors measures nothing."""
    for url in urls:
        answer = httpx.post(url, json={"inputs": [texts[0]]}, headers=headers, timeout=300)
        if answer.status_code != 200:
            raise SystemExit(f"{url} answers {answer.status_code}: {answer.text[:500]}")


def compare(
    label: str,
    one: list[str],
    two: list[str],
    headers: dict[str, str],
    texts: list[str],
    clients: list[int],
    seconds: float,
) -> list[dict[str, Any]]:
    """The same load against ``one`` and against ``two``, alternating which goes first."""
    rows = []
    for i, n in enumerate(clients):
        order = [("one", one), ("two", two)]
        if i % 2:
            order.reverse()
        probe([*one, *two], headers, texts)
        row: dict[str, Any] = {"clients": n}
        for name, urls in order:
            asyncio.run(drive_split(urls, headers, texts, n, 1.0))  # warm up
            row[name] = asyncio.run(drive_split(urls, headers, texts, n, seconds))
        row["ratio"] = row["two"]["throughput"] / row["one"]["throughput"]
        rows.append(row)
        print(
            f"{label} N={n:3d}  one {row['one']['throughput']:6.1f}/s "
            f"p99 {row['one']['p99_ms']:7.1f} ms | two {row['two']['throughput']:6.1f}/s "
            f"p99 {row['two']['p99_ms']:7.1f} ms | ratio {row['ratio']:.2f}x"
            + (
                f"  ERRORS {row['one']['errors']} / {row['two']['errors']}"
                if row["one"]["errors"] or row["two"]["errors"]
                else ""
            ),
            flush=True,
        )
    return rows


def stop(*procs: subprocess.Popen[bytes]) -> None:
    """Terminate bench servers and wait for them."""
    for proc in procs:
        proc.terminate()
    for proc in procs:
        proc.wait(60)


def replicas(
    env: dict[str, str], state: Path, headers: dict[str, str], texts: list[str], args: Any
) -> list[dict[str, Any]]:
    """One server whose model Ray Serve runs with exactly 1 replica, then 2, then 1 again.

    Servers on one cluster share a version's Serve application, so the two settings are
    measured one after the other (the second 1-replica run catches drift on the shared
    machine; the ratio is against the mean of both).
    """
    runs: dict[int, list[dict[str, Any]]] = {1: [], 2: []}
    for i, count in enumerate((1, 2, 1)):
        proc, url = serve(
            server_env(
                env,
                f"ray{i}",
                state,
                AIMASS_SERVE_WITH="ray",
                AIMASS_RAY_MIN_REPLICAS=str(count),
                AIMASS_RAY_MAX_REPLICAS=str(count),
            )
        )
        try:
            probe([url], headers, texts)
            rows = []
            for n in args.clients:
                asyncio.run(drive_split([url], headers, texts, n, 3.0))  # deploy and warm up
                rows.append(asyncio.run(drive_split([url], headers, texts, n, args.seconds)))
            runs[count].append({"clients": args.clients, "rows": rows})
        finally:
            stop(proc)
    out = []
    for j, n in enumerate(args.clients):
        ones = [run["rows"][j] for run in runs[1]]
        two = runs[2][0]["rows"][j]
        one_mean = sum(r["throughput"] for r in ones) / len(ones)
        row = {"clients": n, "one": ones[0], "one_again": ones[1], "two": two}
        row["ratio"] = two["throughput"] / one_mean
        out.append(row)
        print(
            f"replicas N={n:3d}  1 replica {ones[0]['throughput']:6.1f} and "
            f"{ones[1]['throughput']:6.1f}/s | 2 replicas {two['throughput']:6.1f}/s "
            f"p99 {two['p99_ms']:7.1f} ms | ratio {row['ratio']:.2f}x",
            flush=True,
        )
    return out


def training(env: dict[str, str]) -> dict[str, Any] | None:
    """Run ``bench/distributed.py`` (in ``env``, the one this bench started with) when
    it exists; its result file's summary."""
    script = Path(__file__).parent / "distributed.py"
    if not script.exists():
        return None
    subprocess.run([sys.executable, str(script)], check=True, env=env)
    found: dict[str, Any] = json.loads((RESULTS / "distributed.json").read_text())
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--train-rows", type=int, default=1500)
    parser.add_argument("--base-port", type=int, default=8300)
    parser.add_argument("--skip-servers", action="store_true")
    parser.add_argument("--skip-replicas", action="store_true")
    parser.add_argument("--skip-training", action="store_true")
    args = parser.parse_args()
    # The cluster's own directory straight under /tmp: PostgreSQL runs as the postgres
    # user, who must pass through every parent.
    cluster = Path(tempfile.mkdtemp(prefix="aimass-scale-", dir="/tmp"))
    outside = dict(os.environ)
    env = cluster_env(cluster, args.base_port)
    out: dict[str, Any] = {"machine": f"{os.cpu_count()} CPUs", "seconds": args.seconds}
    try:
        print("training the bench model through PostgreSQL + S3 ...", flush=True)
        os.environ.update({k: v for k, v in env.items() if k.startswith(("AIMASS_", "AWS_"))})
        os.environ["AIMASS_EXECUTOR"] = "threads"  # the bench model trains in this process
        started = time.perf_counter()
        # The first dev-cluster server made the admin key (in its home): the trainer's
        # home, on the same database, gets a copy where prepare() reads it.
        (cluster / "trainer-home").mkdir(mode=0o700)
        admin = cluster / "trainer-home" / "admin.key"
        admin.write_text((cluster / "home-0" / "admin.key").read_text())
        admin.chmod(0o600)
        texts, _bundle, key = prepare(cluster / "trainer-home", args.train_rows)
        out["train_seconds"] = time.perf_counter() - started
        headers = {"Authorization": f"Bearer {key}"}
        if not args.skip_servers:
            first, url1 = serve(server_env(env, "a", cluster))
            second, url2 = serve(server_env(env, "b", cluster))
            try:
                out["servers"] = compare(
                    "servers", [url1], [url1, url2], headers, texts, args.clients, args.seconds
                )
            finally:
                stop(first, second)
        if not args.skip_replicas:
            out["replicas"] = replicas(env, cluster, headers, texts, args)
    finally:
        subprocess.run(
            [str(ROOT / "scripts/dev-cluster"), "stop"],
            env={**os.environ, "AIMASS_DEV_CLUSTER": str(cluster)},
            check=False,
        )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "scale.json").write_text(json.dumps(out, indent=2))
    if not args.skip_training:
        out["training"] = training(outside)
        (RESULTS / "scale.json").write_text(json.dumps(out, indent=2))
        summary = out["training"].get("summary", out["training"]) if out["training"] else {}
        print(f"distributed training: {json.dumps(summary)[:400]}", flush=True)
    failed = sum(
        row[side]["errors"]
        for section in ("servers", "replicas")
        for row in out.get(section, [])
        for side in ("one", "two", "one_again")
        if side in row
    )
    if failed:
        raise SystemExit(f"{failed} requests failed: these numbers are not a valid comparison")


if __name__ == "__main__":
    main()
