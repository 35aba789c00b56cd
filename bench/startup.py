"""Process start-up: compiling Python sources on every start vs reading their bytecode.

Every aimass process (a CLI call, a server, each model runner, a Ray worker)
imports torch, transformers and the rest. Python compiles a module's source the
first time it is imported and caches the bytecode beside it, unless the
environment sets ``PYTHONDONTWRITEBYTECODE``; with that set and nothing cached,
every process compiles thousands of files again. The Makefile therefore unsets
it for what make starts. This benchmark runs the same command both ways,
alternating, and prints the ratio:

* ``compiled``: ``PYTHONDONTWRITEBYTECODE=1`` and ``PYTHONPYCACHEPREFIX`` set to
  an empty directory, so no cached bytecode is read or written (a fresh
  ``.venv`` under that setting: pip installs with ``--no-compile``);
* ``bytecode``: the bytecode cache beside the sources, written by one warm-up
  run first.

    python bench/startup.py [--rounds 5] [--model sentiment@production] [--out FILE]

The commands: ``aimass version`` (the CLI alone) and ``aimass predict MODEL
TEXT`` in the home ``AIMASS_HOME`` names (``make quickstart`` registers
``sentiment@production``). Wall seconds and CPU-seconds (the child's user +
system time) are medians over the rounds. Writes ``bench/results/startup.json``
(or ``--out``: a bare file name goes under ``bench/results/`` too).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"
AIMASS = Path(sys.executable).parent / "aimass"


def run_once(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and the child's CPU-seconds (user + system) of one run of ``command``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def environments(empty_cache: str) -> dict[str, dict[str, str]]:
    """The two ways to start: compiling every source, or reading cached bytecode."""
    base = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")
    }
    return {
        "compiled": {**base, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPYCACHEPREFIX": empty_cache},
        "bytecode": base,
    }


def measure(command: list[str], envs: dict[str, dict[str, str]], rounds: int) -> dict[str, Any]:
    """Medians of ``rounds`` alternating runs under each environment, and their ratios."""
    run_once(command, envs["bytecode"])  # writes the bytecode cache the second side reads
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in envs}
    for round_ in range(rounds):
        order = list(envs) if round_ % 2 == 0 else list(reversed(envs))
        for name in order:
            runs[name].append(run_once(command, envs[name]))
    result: dict[str, Any] = {}
    for name, measured in runs.items():
        result[name] = {
            "wall_s": statistics.median(w for w, _ in measured),
            "cpu_s": statistics.median(c for _, c in measured),
            "runs": measured,
        }
    result["wall_ratio"] = result["compiled"]["wall_s"] / result["bytecode"]["wall_s"]
    result["cpu_saved_s"] = result["compiled"]["cpu_s"] - result["bytecode"]["cpu_s"]
    return result


def main() -> None:
    """Run both commands both ways and print their medians and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--model", default="sentiment@production")
    parser.add_argument("--text", default="a wonderful, moving film")
    parser.add_argument("--out", default="startup.json")
    args = parser.parse_args()
    commands = {
        "aimass version": [str(AIMASS), "version"],
        f"aimass predict {args.model}": [str(AIMASS), "predict", args.model, args.text],
    }
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="aimass-no-pyc-") as empty:
        envs = environments(empty)
        for label, command in commands.items():
            results[label] = found = measure(command, envs, args.rounds)
            sides = "  ".join(
                f"{side} {found[side]['wall_s']:6.2f} s ({found[side]['cpu_s']:5.2f} CPU-s)"
                for side in envs
            )
            print(
                f"{label:36s} {sides}  ratio {found['wall_ratio']:.2f}x, "
                f"{found['cpu_saved_s']:.2f} CPU-s saved per process"
            )
            if any(Path(empty).iterdir()):
                raise SystemExit(
                    f"bytecode was written under {empty}: the 'compiled' side was not clean"
                )
    out = Path(args.out) if Path(args.out).parent != Path() else RESULTS / args.out
    out.write_text(
        json.dumps(
            {
                "benchmark": "startup",
                "settings": vars(args),
                "load_average": os.getloadavg(),
                "results": results,
            },
            indent=2,
        )
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
