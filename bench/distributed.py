"""Data-parallel training: ``aimass train --workers 2`` vs one worker, same data and seed.

Both runs go through the job a user starts (``Workspace.jobs.train``, what
``aimass train`` runs): MiniLM (all-MiniLM-L6-v2, the packaged base) fine-tuned
on the same seeded sample of Rotten Tomatoes rows, with the same global batch,
learning rate, schedule, epochs and seed. One worker trains in this process
(torch on every core); two workers are Ray Train processes on a local Ray (one
CPU and ``cores / 2`` torch threads each) that share each batch and average
their gradients.

Reported per run: the job's wall time (with two workers this includes starting
Ray and the workers), the optimisation time alone (``train_seconds``),
examples/s over the optimisation steps, and the validation accuracy. The ratio
``2-worker / 1-worker`` of each time is the scaling overhead on this machine.

    python bench/distributed.py [--rows 1000] [--epochs 1] [--batch-size 16]

Writes ``bench/results/distributed.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aimass.workspace import Workspace

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

RESULTS = Path(__file__).parent / "results"


def write_rows(path: Path, rows: int, seed: int) -> Path:
    """A seeded sample of the packaged Rotten Tomatoes rows as JSONL (both labels mixed)."""
    from aimass.data.samples import get_sample

    records = [r.fields for r in get_sample("rotten-tomatoes").records()]
    picked = random.Random(seed).sample(records, rows)
    with open(path, "w", encoding="utf-8") as handle:
        for record in picked:
            handle.write(json.dumps({"text": record["text"], "label": record["label"]}) + "\n")
    return path


def train(ws: Workspace, workers: int, args: argparse.Namespace) -> dict[str, Any]:
    """One training job; its timings and validation accuracy."""
    from aimass.jobs.train import TrainSpec

    config = {
        "mode": "finetune",
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "max_length": args.max_length,
        "seed": 0,
        "workers": workers,
    }
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    version = ws.jobs.train(
        TrainSpec(dataset="rt", base="minilm", model=f"w{workers}", config=config)
    )
    wall = time.perf_counter() - started
    training = version.metrics["training"]
    return {
        "workers": workers,
        "wall_seconds": round(wall, 2),
        "train_seconds": training["train_seconds"],
        "samples_per_second": training["samples_per_second"],
        "steps": training["steps"],
        "validation_accuracy": version.metrics["validation"]["accuracy"],
        "validation_loss": version.metrics["validation"]["loss"],
        # Load average (1 min) before and after: above the core count, the machine was
        # shared and the times say as much about the neighbours as about aimass.
        "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }


def main() -> None:
    """Train with one worker, then two, and print the side-by-side table and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1000, help="rows sampled (80/10/10 split)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-length", type=int, default=64)
    args = parser.parse_args()

    from aimass.settings import Settings
    from aimass.workspace import Workspace

    with tempfile.TemporaryDirectory() as tmp:
        ws = Workspace(Settings(home=Path(tmp) / "home", device="cpu"))
        ws.datasets.import_file(write_rows(Path(tmp) / "rt.jsonl", args.rows, 0), name="rt")
        ws.bases.import_("minilm")
        rows = ws.datasets.get("rt").splits
        runs = []
        for workers in (1, 2):
            result = train(ws, workers, args)
            runs.append(result)
            print(json.dumps(result), flush=True)
        ws.close()

    one, two = runs
    ratios = {
        key: round(two[key] / one[key], 3)
        for key in ("wall_seconds", "train_seconds", "samples_per_second")
    }
    print()
    print(f"{'workers':>8s} {'wall s':>8s} {'train s':>8s} {'ex/s':>7s} {'val acc':>8s}")
    for row in runs:
        print(
            f"{row['workers']:8d} {row['wall_seconds']:8.1f} {row['train_seconds']:8.1f} "
            f"{row['samples_per_second']:7.2f} {row['validation_accuracy']:8.4f}"
        )
    print(
        f"2-worker / 1-worker: wall {ratios['wall_seconds']}x, optimisation "
        f"{ratios['train_seconds']}x, examples/s {ratios['samples_per_second']}x"
    )
    result = {
        "benchmark": "distributed",
        "model": "all-MiniLM-L6-v2 (packaged minilm base), finetune",
        "data": f"Rotten Tomatoes sample, {args.rows} rows (seed 0), splits {rows}",
        "config": vars(args),
        "machine": f"{os.cpu_count()} cores ({platform.machine()}), CPU only; shared with "
        "other processes while it ran, so the times are noisy",
        "runs": runs,
        "ratio_2_over_1": ratios,
        "accuracy_difference": round(two["validation_accuracy"] - one["validation_accuracy"], 4),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "distributed.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
