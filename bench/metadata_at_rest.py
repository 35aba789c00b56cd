"""What encrypting the SQLite metadata database costs: plaintext vs SQLCipher.

``AIMASS_ENCRYPT_METADATA=true`` makes a new home's metadata database a SQLCipher one
(every page encrypted and authenticated). This benchmark opens two fresh homes, one
each way, and times the store operations a server makes most, alternating the sides
round by round, and prints each side's median per operation and their ratio:

* ``audit append``: one audit record appended to the hash chain (a write transaction:
  the chain's head row locked, the record inserted), as every API request does;
* ``model lookup``: a model version read by alias, as predict resolves a reference
  when its cache is cold;
* ``job log``: one line appended to a job's log, as training does every few steps.

    python bench/metadata_at_rest.py [--rounds 7] [--operations 200] [--out FILE]

Writes ``bench/results/metadata-at-rest.json`` (or ``--out``: a bare file name goes
under ``bench/results/`` too).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"


def _timed(operation: Callable[[int], Any], count: int) -> float:
    """Median milliseconds of ``count`` calls of ``operation``."""
    times = []
    for index in range(count):
        start = time.perf_counter()
        operation(index)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def _operations(home: Path, encrypted: bool) -> tuple[Any, dict[str, Callable[[int], Any]]]:
    """A workspace on a fresh home and the operations to time on it."""
    from aimass.entities import Lineage
    from aimass.refs import parse_ref
    from aimass.settings import Settings
    from aimass.store.audit import AuditRecord
    from aimass.workspace import Workspace

    ws = Workspace(Settings(home=home, encrypt_metadata=encrypted, device="cpu"))
    store, key = ws.store, ws.derived_key("audit")
    lineage = Lineage(
        dataset="d@1", dataset_digest="dd", base="b@1", base_digest="bd", job_id="j",
        task="classification", config={"lr": 1e-4}, code_version="bench",
    )  # fmt: skip
    store.registry.create_version(
        "default", "bench", task="classification", digest="x" * 64, uri="artifacts:bundles/x",
        metrics={"test": {"accuracy": 0.9}}, lineage=lineage, config_digest="c" * 64,
    )  # fmt: skip
    store.registry.set_alias("default", "bench", "production", 1)
    production = parse_ref("bench@production")
    job = store.jobs.create("default", "train", {"bench": True})

    def append(index: int) -> Any:
        record = AuditRecord(
            actor="key:bench", action="models.predict", resource=f"/bench/{index}", outcome="ok"
        )
        return store.audit.append([record], key=key)

    return ws, {
        "audit append": append,
        "model lookup": lambda _: store.registry.get_version("default", production),
        "job log": lambda index: store.jobs.log(job.id, f"step {index}: loss 0.1"),
    }


def main() -> None:
    """Run the rounds and print medians and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--operations", type=int, default=200)
    parser.add_argument("--out", default="metadata-at-rest.json")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="aimass-metadata-"))
    sides = {"plaintext": False, "encrypted": True}
    opened = {name: _operations(root / name, encrypted) for name, encrypted in sides.items()}
    names = list(opened["plaintext"][1])
    for _, operations in opened.values():  # warm: connections, statement caches
        for operation in operations.values():
            _timed(operation, 20)
    medians: dict[str, dict[str, list[float]]] = {s: {n: [] for n in names} for s in sides}
    for index in range(args.rounds):
        order = list(sides) if index % 2 == 0 else list(reversed(sides))
        for side in order:
            for name, operation in opened[side][1].items():
                medians[side][name].append(_timed(operation, args.operations))
    for ws, _ in opened.values():
        ws.close()
    result: dict[str, Any] = {
        "rounds": args.rounds,
        "operations_per_round": args.operations,
        "median_ms": {
            side: {name: statistics.median(values) for name, values in by_name.items()}
            for side, by_name in medians.items()
        },
        "round_medians_ms": medians,
    }
    result["ratio_encrypted_over_plaintext"] = {
        name: result["median_ms"]["encrypted"][name] / result["median_ms"]["plaintext"][name]
        for name in names
    }
    for name in names:
        plain, encrypted = (result["median_ms"][side][name] for side in sides)
        ratio = result["ratio_encrypted_over_plaintext"][name]
        print(f"{name:>13}: plaintext {plain:.3f} ms, encrypted {encrypted:.3f} ms ({ratio:.2f}x)")
    out = Path(args.out)
    out = out if out.parent != Path(".") else RESULTS / out
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
