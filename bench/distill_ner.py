"""Distilling a Chinese tagger: teacher vs its distilled student vs the student on labels alone.

On the packaged People's Daily sample (character-level BIO: PER, LOC, ORG) and
through the same workspace calls ``aimass train`` and ``aimass distill`` make:

* the teacher: m3e-small (4 layers) fine-tuned on ``--train-rows`` tagged
  sentences (every weight, ``--teacher-epochs``, lr ``--teacher-lr``), or an
  existing tagger of the home (``--teacher NAME@VERSION``, e.g. the one
  ``aimass recipes chinese-ner`` registers);
* the student: m3e-small cut by ``ws.bases.shrink`` to its first
  ``--student-layers`` layers, keeping the ``--student-intermediate`` largest
  feed-forward neurons of each (0: all), so it shares the teacher's tokenizer;
* distilled on the same tagged sentences plus ``--transfer-rows`` further
  training sentences as raw text without their tags (the transfer set), the
  teacher's tag distribution the soft target of every position;
* and, as the baseline, the same student on the tagged sentences alone.

Entity F1 (and PER F1) is on the whole test split, as the training job scores
it; predictions/s is each model's ``predict`` (raw text in, entities out) on
``--speed-rows`` test sentences, batch 64, ``--threads`` torch threads, timed in
``--rounds`` interleaved rounds after a warm-up (the order rotating, so load from
other work on shared cores falls on all three alike); a speed ratio is the
median of the per-round ratios to the teacher, printed with their range.

    python bench/distill_ner.py [--train-rows 3000] [--transfer-rows 10000]
                                [--teacher-epochs 2] [--student-epochs 3]
                                [--student-layers 1] [--student-intermediate 1024]
                                [--teacher NAME@VERSION] [--home DIR] [--out FILE]

A ``--home`` kept between runs reuses what it trained from identical inputs.
Writes ``bench/results/distill-ner.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

sys.path.insert(0, str(Path(__file__).parent))
from distill import speeds, student_base, train  # bench/distill.py

RESULTS = Path(__file__).parent / "results"


def transfer_set(ws: Any, dataset: Any, rows: int, train_rows: int, name: str) -> str | None:
    """Training sentences the tagged sample did not take, as raw text without tags."""
    from aimass.data.tables import read_split

    if rows <= 0:
        return None
    train_split = read_split(ws.artifacts.resolve(dataset.uri), "train")
    taken = set(train_split.sample(train_rows, seed=0).texts)  # what max_train_rows picks
    assert train_split.tokens is not None
    texts = [
        "".join(tokens)
        for text, tokens in zip(train_split.texts, train_split.tokens, strict=True)
        if text not in taken
    ][:rows]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "transfer.jsonl"
        path.write_text(
            "".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in texts), "utf-8"
        )
        version, _ = ws.datasets.import_file(path, name=name)
    return version.ref


def run(ws: Any, args: argparse.Namespace) -> dict[str, Any]:
    """Teacher, distilled student and baseline student; their scores and speeds."""
    from aimass.data.tables import read_split

    dataset, _ = ws.datasets.import_sample("peoples-daily-ner", name="pd", seed=0)
    base, _ = ws.bases.import_("m3e-small")
    student = f"m3e-small-l{args.student_layers}"
    student += f"-ff{args.student_intermediate}" if args.student_intermediate else ""
    student_ref = student_base(ws, base.ref, args, student)
    transfer = transfer_set(
        ws, dataset, args.transfer_rows, args.train_rows, f"pd-raw-{args.transfer_rows}"
    )
    common = {
        "task": "token-classification",
        "mode": "finetune",
        "max_train_rows": args.train_rows,
        "max_length": args.max_length,
        "batch_size": 16,
    }
    if args.teacher:
        teacher = ws.models.get(args.teacher)
    else:
        teacher = train(
            ws,
            "pd-teacher",
            dataset.ref,
            base.ref,
            {**common, "epochs": args.teacher_epochs, "lr": args.teacher_lr},
        )
    student_config = {**common, "epochs": args.student_epochs, "lr": args.student_lr}
    distilled = train(
        ws,
        "pd-student",
        dataset.ref,
        student_ref,
        {
            **student_config,
            "teacher": teacher.ref,
            "temperature": args.temperature,
            "distill_alpha": args.alpha,
            **({"unlabelled": transfer} if transfer else {}),
        },
    )
    baseline = train(ws, "pd-baseline", dataset.ref, student_ref, student_config)
    test = read_split(ws.artifacts.resolve(dataset.uri), "test")
    assert test.tokens is not None
    texts = ["".join(tokens) for tokens in test.tokens[: args.speed_rows]]
    versions = {"teacher": teacher, "student": distilled, "baseline": baseline}
    timed = speeds(ws, {r: v.ref for r, v in versions.items()}, texts, args.rounds, "predict")
    rows: dict[str, Any] = {}
    for role, version in versions.items():
        scores = version.metrics["test"]
        rows[role] = {
            "model": version.ref,
            "f1": scores["f1"],
            "per_f1": scores["per_type"]["PER"]["f1"],
            **timed[role],
            "train_seconds": version.metrics["training"]["seconds"],
        }
    t, s = rows["teacher"], rows["student"]
    return {
        "sample": "peoples-daily-ner",
        "test_sentences": distilled.metrics["test"]["count"],
        "teacher_config": teacher.lineage.config,
        "student_base": student_ref,
        "transfer_set": transfer,
        "models": rows,
        "f1_ratio": round(s["f1"] / t["f1"], 4) if t["f1"] else None,
        "baseline_f1_ratio": round(rows["baseline"]["f1"] / t["f1"], 4) if t["f1"] else None,
        "speed_ratio": s["speed_ratio"],
        "speed_ratio_range": s["speed_ratio_range"],
        "words_tagged_alike": distilled.metrics["distillation"].get("agreement"),
        "goal_met": t["f1"] > 0 and s["f1"] >= 0.97 * t["f1"] and s["speed_ratio"] >= 5,
        "job_record": distilled.metrics["distillation"],
    }


def print_table(result: dict[str, Any]) -> None:
    """Side by side: entity F1, PER F1 and sentences/s of teacher, student and baseline."""
    print(f"\n{result['sample']}, {result['test_sentences']} test sentences")
    print(f"  {'model':<28}{'F1':>8}{'PER F1':>8}{'sent/s':>9}{'train s':>9}")
    for role, row in result["models"].items():
        print(
            f"  {role + ' ' + row['model']:<28}{row['f1']:>8.4f}{row['per_f1']:>8.4f}"
            f"{row['predictions_per_s']:>9.1f}{row['train_seconds']:>9.0f}"
        )
    low, high = result["speed_ratio_range"]
    print(
        f"  student / teacher: F1 x{result['f1_ratio']} (baseline "
        f"x{result['baseline_f1_ratio']}), speed x{result['speed_ratio']:.2f} "
        f"(rounds {low:.2f}-{high:.2f}); words tagged alike {result['words_tagged_alike']}; "
        f"goal (>= 0.97, >= 5x) {'met' if result['goal_met'] else 'NOT met'}"
    )


def main() -> None:
    """Parse flags, run, print and write ``bench/results/distill-ner.json``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-rows", type=int, default=3000)
    parser.add_argument("--transfer-rows", type=int, default=10000)
    parser.add_argument("--teacher", default=None, help="an existing tagger NAME@VERSION")
    parser.add_argument("--teacher-epochs", type=int, default=2)
    parser.add_argument("--teacher-lr", type=float, default=2e-4)
    parser.add_argument("--student-epochs", type=int, default=3)
    parser.add_argument("--student-layers", type=int, default=1)
    parser.add_argument("--student-pick", default="first", choices=["first", "spread"])
    parser.add_argument("--student-intermediate", type=int, default=1024)
    parser.add_argument("--student-lr", type=float, default=5e-4)
    parser.add_argument("--temperature", type=float, default=2.0)
    parser.add_argument("--alpha", type=float, default=0.5)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--speed-rows", type=int, default=512)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=9, help="interleaved timing rounds")
    parser.add_argument("--home", type=Path, default=None, help="keep (and reuse) this home")
    parser.add_argument("--out", type=Path, default=RESULTS / "distill-ner.json")
    args = parser.parse_args()
    if args.out.parent == Path("."):
        args.out = RESULTS / args.out

    import torch

    from aimass.settings import Settings
    from aimass.workspace import Workspace

    torch.set_num_threads(args.threads)
    home = args.home or Path(tempfile.mkdtemp(prefix="aimass-distill-ner-"))
    ws = Workspace(Settings(home=home, device="cpu", num_threads=args.threads))
    started = time.perf_counter()
    try:
        result = run(ws, args)
        print_table(result)
        payload = {
            "bench": "distill-ner",
            "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "load_average": os.getloadavg(),
            "wall_seconds": round(time.perf_counter() - started, 1),
            "result": result,
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n", "utf-8")
    finally:
        ws.close()
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
