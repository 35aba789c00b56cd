"""Serving A/B: ``aimass serve`` from this working tree (or a ref) against the server at a ref.

The way to measure a change to the serving path on a shared, noisy machine: both
servers serve the same home and model (bench/serve.py's bench model, MiniLM
features, or with ``--model ner`` its Chinese NER tagger, m3e-small on People's
Daily; optionally optimised to ONNX), one at a time, in rounds that alternate
which goes first. The baseline runs from a detached ``git worktree`` of ``--base``
(its ``src/`` first on ``PYTHONPATH``, so the server and its runners import that
code); the candidate is this checkout, or another ref's worktree with
``--candidate``. Per server and round: N=32 and N=1 clients
for ``--seconds`` (bench/serve.py's load generator), throughput, p50, p99, p99 over
Little's law (32 / throughput) and the server's own CPU-seconds per 1,000
predictions. Prints each round and the medians with candidate/base ratios.

    python bench/serve_ab.py --base REF [--candidate REF] [--rounds 4] [--seconds 10]
                             [--backend onnx-int8|torch] [--model sentiment|ner]
                             [--out serve-ab.json]

Writes ``bench/results/serve-ab.json`` (or ``--out``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from serve import (  # bench/serve.py
    RESULTS,
    _serve_env,
    drive,
    free_port,
    measured,
    prepare,
    prepare_ner,
    start,
)

REPO = Path(__file__).resolve().parent.parent


def _head() -> str:
    """This checkout's commit, marked when ``src/`` has changes not committed."""
    head = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "HEAD"], check=True, capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(REPO), "diff", "--quiet", "HEAD", "--", "src"], check=False
    ).returncode
    return f"{head} (with uncommitted src changes)" if dirty else head


def one_server(
    env: dict[str, str],
    key: str,
    texts: list[str],
    seconds: float,
    *,
    single_seconds: float | None = None,
) -> dict[str, Any]:
    """Start ``aimass serve`` with ``env``, warm it, measure N=32 for ``seconds`` then
    N=1 (``single_seconds``, default half as long), stop it. Each result has the
    server's CPU-seconds per 1,000 predictions and p99 over Little's law."""
    port = free_port()
    proc = start(
        [sys.executable, "-m", "aimass.cli", "serve", "--port", str(port)],
        env,
        f"http://127.0.0.1:{port}/readyz",
    )
    url = f"http://127.0.0.1:{port}/v1/projects/default/models/bench@production:predict"
    auth = {"Authorization": f"Bearer {key}"}
    try:
        asyncio.run(drive(url, auth, texts, 32, 2.0))  # warm up
        out = {}
        single = seconds / 2 if single_seconds is None else single_seconds
        for clients, length in ((32, seconds), (1, single)):

            def load(clients: int = clients, length: float = length) -> dict[str, Any]:
                return asyncio.run(drive(url, auth, texts, clients, length))

            result = measured(proc.pid, load)
            result["p99_over_little"] = result["p99_ms"] / (1000 * clients / result["throughput"])
            out[f"n{clients}"] = result
        return out
    finally:
        proc.terminate()
        proc.wait(30)


def main() -> None:
    """Prepare the model, run the rounds, print the medians and ratios, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="git ref of the baseline")
    parser.add_argument("--candidate", help="git ref to measure (default: this checkout)")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--backend", choices=["onnx-int8", "torch"], default="onnx-int8")
    parser.add_argument(
        "--model",
        choices=["sentiment", "ner"],
        default="sentiment",
        help="what is served: the MiniLM sentiment classifier or a Chinese NER tagger",
    )
    parser.add_argument("--train-rows", type=int, default=1500)
    parser.add_argument("--out", default="serve-ab.json", help="file name under bench/results/")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="aimass-ab-"))
    refs = {"base": args.base, "candidate": args.candidate}
    trees: dict[str, Path | None] = {}
    shas: dict[str, str | None] = {}
    try:
        for name, ref in refs.items():
            if ref is None:
                trees[name] = shas[name] = None
                continue
            parsed = subprocess.run(
                ["git", "-C", str(REPO), "rev-parse", ref],
                check=True,
                capture_output=True,
                text=True,
            )
            shas[name] = parsed.stdout.strip()
            trees[name] = scratch / name
            subprocess.run(
                ["git", "-C", str(REPO), "worktree", "add", "--detach", str(trees[name]), ref],
                check=True,
                capture_output=True,
            )
        run(args, scratch, trees, shas)
    finally:
        for tree in trees.values():
            if tree is not None:
                subprocess.run(
                    ["git", "-C", str(REPO), "worktree", "remove", "--force", str(tree)],
                    check=False,
                    capture_output=True,
                )


def run(
    args: argparse.Namespace,
    scratch: Path,
    trees: dict[str, Path | None],
    shas: dict[str, str | None],
) -> None:
    """The rounds of :func:`main` (a ref's worktree is in ``trees``; None: this checkout)."""
    from aimass.jobs.optimize import OptimizeSpec
    from aimass.settings import Settings
    from aimass.workspace import Workspace

    print(f"training the bench model ({args.model}) ...", flush=True)
    make = prepare_ner if args.model == "ner" else prepare
    texts, _, key = make(scratch / "home", args.train_rows)
    if args.backend != "torch":
        ws = Workspace(Settings(home=scratch / "home", device="cpu"))
        ws.jobs.optimize(OptimizeSpec(model="bench@production"))
        ws.close()
    common = {**_serve_env(scratch / "home"), "AIMASS_SERVE_BACKEND": args.backend}
    common.pop("PYTHONPATH", None)
    envs = {
        name: common if tree is None else {**common, "PYTHONPATH": str(tree / "src")}
        for name, tree in trees.items()
    }
    rows: dict[str, list[dict[str, Any]]] = {"base": [], "candidate": []}
    for round_ in range(args.rounds):
        order = ["base", "candidate"] if round_ % 2 == 0 else ["candidate", "base"]
        for name in order:
            result = one_server(envs[name], key, texts, args.seconds)
            rows[name].append(result)
            at32, at1 = result["n32"], result["n1"]
            print(
                f"{name:9s} N=32 {at32['throughput']:6.1f}/s p99 {at32['p99_ms']:6.1f} ms "
                f"(x{at32['p99_over_little']:.2f} Little) CPU-s/1000 "
                f"{at32['cpu_seconds_per_1000']:5.2f} | N=1 {at1['throughput']:5.1f}/s "
                f"p50 {at1['p50_ms']:5.1f} ms",
                flush=True,
            )
    keys = ("throughput", "p50_ms", "p99_ms", "p99_over_little", "cpu_seconds_per_1000")
    summary: dict[str, dict[str, dict[str, float]]] = {}
    for n in ("n32", "n1"):
        summary[n] = {}
        for k in keys:
            base = statistics.median(r[n][k] for r in rows["base"])
            cand = statistics.median(r[n][k] for r in rows["candidate"])
            summary[n][k] = {"base": base, "candidate": cand, "ratio": cand / base}
            print(f"{n} {k:22s} base {base:8.2f}  candidate {cand:8.2f}  x{cand / base:.3f}")
    RESULTS.mkdir(exist_ok=True)
    out = {
        "bench": "serve_ab",
        "base": {"ref": args.base, "sha": shas["base"]},
        "candidate": {
            "ref": args.candidate or "this checkout",
            "sha": shas["candidate"] or _head(),
        },
        "args": vars(args),
        "machine": f"{os.cpu_count()} CPUs",
        "load_average": os.getloadavg(),
        "rows": rows,
        "summary": summary,
    }
    (RESULTS / args.out).write_text(json.dumps(out, indent=2))
    failed = sum(r[n]["errors"] for found in rows.values() for r in found for n in ("n32", "n1"))
    if failed:
        raise SystemExit(f"{failed} requests failed: these numbers are not a valid comparison")


if __name__ == "__main__":
    main()
