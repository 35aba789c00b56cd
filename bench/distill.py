"""Distillation: a fine-tuned teacher vs its distilled student vs the student on labels alone.

For each language, on the packaged samples and through the same workspace calls
``aimass train`` and ``aimass distill`` make:

* ``en``: Rotten Tomatoes; teacher: MiniLM (6 layers) fine-tuned on every weight;
* ``zh``: the Chinese reviews; teacher: the recommended Chinese recipe's base,
  m3e-small (4 layers), fine-tuned on every weight.

``--teacher-base B`` trains the teacher on another base instead (e.g. ``gemma3``,
the multilingual Gemma-3-270M decoder), through LoRA adapters of rank
``--teacher-lora-rank`` if given; the student stays on the language's base.

The student is the language's base cut to its first ``--student-layers`` layers
(``--student-pick spread``: evenly spaced ones) by ``ws.bases.shrink`` (embeddings
and those layers' pretrained weights kept; ``--student-intermediate M`` also keeps
only the M largest feed-forward neurons of each), fine-tuned twice on the
same labelled rows: once with the teacher's soft targets (``aimass distill``,
plus ``--transfer-rows`` further training texts without labels as the transfer
set), once on the labels alone (the baseline). Accuracy is on the whole test
split of the sample; predictions/s is ``predictor.scores`` on ``--speed-rows``
test texts, batch 64, ``--threads`` torch threads, the same for all three
models, timed in ``--rounds`` interleaved rounds after a warm-up (each round
times every model once, the order rotating, so that load from other work on
shared cores falls on all three alike); a speed ratio is the median of the
per-round ratios to the teacher, printed with their range.

    python bench/distill.py [--langs en,zh] [--train-rows 2000] [--transfer-rows 2000]
                            [--teacher-epochs 2] [--student-epochs 3] [--student-layers 1]
                            [--student-pick first|spread] [--student-intermediate M]
                            [--max-length 64] [--match-hidden W] [--rounds 9]
                            [--teacher-base gemma3 --teacher-lora-rank 16 --teacher-lr 5e-4]
                            [--home DIR]

``--match-hidden W`` distils with intermediate-layer matching at weight ``W`` (the
student's one layer pulled towards the teacher's last; the baseline is unchanged).

A ``--home`` kept between runs reuses its teachers (and everything else found
trained from identical inputs). Writes ``bench/results/distill.json``.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

RESULTS = Path(__file__).parent / "results"

LANGS = {
    "en": {"sample": "rotten-tomatoes", "base": "minilm", "lr": 5e-5},
    "zh": {"sample": "chinese-reviews", "base": "m3e-small", "lr": 1e-4},
}


def student_base(ws: Any, base_ref: str, args: argparse.Namespace, name: str) -> str:
    """Register ``base_ref`` cut as the student flags say (``ws.bases.shrink``) as ``name``."""
    found = [b for b in ws.bases.list() if b.name == name]
    if found:
        return found[-1].ref
    base, _ = ws.bases.shrink(
        base_ref,
        name=name,
        layers=args.student_layers,
        pick=args.student_pick,
        intermediate_size=args.student_intermediate,
    )
    return base.ref


def transfer_set(ws: Any, dataset: Any, rows: int, train_rows: int, name: str) -> str | None:
    """Training texts the labelled sample did not take, without labels, as a dataset."""
    from aimass.data.tables import read_split

    if rows <= 0:
        return None
    train = read_split(ws.artifacts.resolve(dataset.uri), "train")
    taken = set(train.sample(train_rows, seed=0).texts)  # what max_train_rows picks
    texts = [t for t in train.texts if t not in taken][:rows]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "transfer.jsonl"
        path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts), "utf-8")
        version, _ = ws.datasets.import_file(path, name=name)
    return version.ref


def speeds(
    ws: Any, refs: dict[str, str], texts: list[str], rounds: int, call: str = "scores"
) -> dict[str, Any]:
    """Predictions/s of each model's ``call`` (``scores``, or ``predict`` for a tagger: raw
    text in, entities out) on ``texts`` (batch 64), timed in interleaved rounds.

    Every round times each model once, in an order that rotates from round to
    round (``aimass.training.distill.interleaved_seconds``, as the distillation job
    times teacher and student), so that a change in the machine's load (other work
    on shared cores) falls on all the models alike instead of on whichever was
    timed during it. Each model's speed is the median of its rounds; each ratio to
    the teacher is the median of the per-round ratios, with their range.
    """
    from aimass.serving.predictor import load_predictor
    from aimass.training.distill import interleaved_seconds

    runners: dict[str, Any] = {}
    for role, ref in refs.items():
        predictor: Any = load_predictor(ws.artifacts.resolve(ws.models.get(ref).uri), device="cpu")
        runners[role] = functools.partial(getattr(predictor, call), batch_size=64)
    seconds = interleaved_seconds(runners, texts, rounds)
    out: dict[str, Any] = {}
    for role in refs:
        ratios = [t / s for t, s in zip(seconds["teacher"], seconds[role], strict=True)]
        out[role] = {
            "predictions_per_s": round(len(texts) / statistics.median(seconds[role]), 1),
            "speed_ratio": round(statistics.median(ratios), 2),
            "speed_ratio_range": [round(min(ratios), 2), round(max(ratios), 2)],
        }
    return out


def train(ws: Any, name: str, dataset: str, base: str, config: dict[str, Any]) -> Any:
    """Train (or reuse a version trained from identical inputs) and say how long it took."""
    from aimass.jobs.train import TrainSpec

    spec = TrainSpec(dataset=dataset, base=base, model=name, config=config)
    started = time.perf_counter()
    version = ws.jobs.find_trained(spec) or ws.jobs.train(spec)
    print(f"  {version.ref}: {time.perf_counter() - started:.0f} s", flush=True)
    return version


def run_lang(ws: Any, lang: str, args: argparse.Namespace) -> dict[str, Any]:
    """Teacher, distilled student and baseline student for one language."""
    from aimass.data.tables import read_split

    recipe = LANGS[lang]
    dataset, _ = ws.datasets.import_sample(recipe["sample"], name=f"{lang}-reviews", seed=0)
    teacher_base, _ = ws.bases.import_(args.teacher_base or recipe["base"])
    own_base = teacher_base if not args.teacher_base else ws.bases.import_(recipe["base"])[0]
    student = f"{recipe['base']}-l{args.student_layers}"
    student += f"-ff{args.student_intermediate}" if args.student_intermediate else ""
    student += "-spread" if args.student_pick == "spread" else ""
    student_base_ref = student_base(ws, own_base.ref, args, student)
    transfer = transfer_set(
        ws, dataset, args.transfer_rows, args.train_rows, f"{lang}-transfer-{args.transfer_rows}"
    )
    common = {
        "mode": "finetune",
        "max_train_rows": args.train_rows,
        "max_length": args.max_length,
        "batch_size": 16,
    }
    print(f"[{lang}] teacher, distilled student, baseline student", flush=True)
    lora = {"lora_rank": args.teacher_lora_rank} if args.teacher_lora_rank else {}
    teacher = train(
        ws,
        f"{lang}-teacher" + (f"-{args.teacher_base}" if args.teacher_base else ""),
        dataset.ref,
        teacher_base.ref,
        {
            **common,
            "epochs": args.teacher_epochs,
            # LoRA's own default step (5e-4) unless given; a full fine-tune the language's.
            **({"lr": args.teacher_lr or recipe["lr"]} if args.teacher_lr or not lora else {}),
            **lora,
        },
    )
    student_config = {**common, "epochs": args.student_epochs, "lr": args.student_lr}
    distilled = train(
        ws,
        f"{lang}-student",
        dataset.ref,
        student_base_ref,
        {
            **student_config,
            "teacher": teacher.ref,
            "temperature": args.temperature,
            "distill_alpha": args.alpha,
            **({"unlabelled": transfer} if transfer else {}),
            **({"match_hidden": args.match_hidden} if args.match_hidden else {}),
        },
    )
    baseline = train(ws, f"{lang}-baseline", dataset.ref, student_base_ref, student_config)
    texts = read_split(ws.artifacts.resolve(dataset.uri), "test").texts[: args.speed_rows]
    versions = {"teacher": teacher, "student": distilled, "baseline": baseline}
    timed = speeds(ws, {r: v.ref for r, v in versions.items()}, texts, args.rounds)
    rows: dict[str, Any] = {}
    for role, version in versions.items():
        rows[role] = {
            "model": version.ref,
            "accuracy": version.metrics["test"]["accuracy"],
            **timed[role],
            "train_seconds": version.metrics["training"]["seconds"],
        }
    t, s = rows["teacher"], rows["student"]
    return {
        "sample": recipe["sample"],
        "test_rows": version.metrics["test"]["count"],
        "teacher_base": teacher_base.ref,
        "teacher_config": teacher.lineage.config,
        "student_base": student_base_ref,
        "transfer_set": transfer,
        "models": rows,
        "accuracy_ratio": round(s["accuracy"] / t["accuracy"], 4),
        "baseline_accuracy_ratio": round(rows["baseline"]["accuracy"] / t["accuracy"], 4),
        "speed_ratio": s["speed_ratio"],
        "speed_ratio_range": s["speed_ratio_range"],
        "agreement_with_teacher": distilled.metrics["distillation"].get("agreement"),
        "goal_met": s["accuracy"] >= 0.97 * t["accuracy"] and s["speed_ratio"] >= 5,
        "job_record": distilled.metrics["distillation"],
    }


def print_table(lang: str, result: dict[str, Any]) -> None:
    """Side by side: accuracy and predictions/s of teacher, student and baseline."""
    print(f"\n[{lang}] {result['sample']}, {result['test_rows']} test rows")
    print(f"  {'model':<24}{'accuracy':>10}{'pred/s':>10}{'train s':>10}")
    for role, row in result["models"].items():
        print(
            f"  {role + ' ' + row['model']:<24}{row['accuracy']:>10.4f}"
            f"{row['predictions_per_s']:>10.1f}{row['train_seconds']:>10.0f}"
        )
    print(
        f"  student / teacher: accuracy x{result['accuracy_ratio']:.3f} (baseline "
        f"x{result['baseline_accuracy_ratio']:.3f}), speed x{result['speed_ratio']:.2f} "
        f"(rounds {result['speed_ratio_range'][0]:.2f}-{result['speed_ratio_range'][1]:.2f}); "
        f"agreement {result['agreement_with_teacher']}; goal (>= 0.97, >= 5x) "
        f"{'met' if result['goal_met'] else 'NOT met'}"
    )


def main() -> None:
    """Parse flags, run each language, print and write ``bench/results/distill.json``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--langs", default="en,zh")
    parser.add_argument("--train-rows", type=int, default=2000)
    parser.add_argument("--transfer-rows", type=int, default=2000)
    parser.add_argument("--teacher-epochs", type=int, default=2)
    parser.add_argument(
        "--teacher-base", default=None, help="the teacher's base (default: the language's)"
    )
    parser.add_argument("--teacher-lora-rank", type=int, default=0, help="0: every weight")
    parser.add_argument("--teacher-lr", type=float, default=None)
    parser.add_argument("--student-epochs", type=int, default=3)
    parser.add_argument("--student-layers", type=int, default=1)
    parser.add_argument(
        "--student-pick", default="first", choices=["first", "spread"], help="which layers"
    )
    parser.add_argument(
        "--student-intermediate", type=int, default=0, help="feed-forward width (0: the base's)"
    )
    parser.add_argument("--student-lr", type=float, default=1e-4)
    parser.add_argument("--temperature", type=float, default=2.0)
    parser.add_argument("--alpha", type=float, default=0.5)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--match-hidden", type=float, default=0.0)
    parser.add_argument("--speed-rows", type=int, default=512)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=9, help="interleaved timing rounds")
    parser.add_argument("--home", type=Path, default=None, help="keep (and reuse) this home")
    parser.add_argument(
        "--out",
        type=Path,
        default=RESULTS / "distill.json",
        help="a file name (written under bench/results/, as the other benches do) or a path",
    )
    args = parser.parse_args()
    if args.out.parent == Path("."):
        args.out = RESULTS / args.out

    import torch

    from aimass.settings import Settings
    from aimass.workspace import Workspace

    torch.set_num_threads(args.threads)
    home = args.home or Path(tempfile.mkdtemp(prefix="aimass-distill-"))
    ws = Workspace(Settings(home=home, device="cpu", num_threads=args.threads))
    started = time.perf_counter()
    results: dict[str, Any] = {}
    try:
        for lang in args.langs.split(","):
            results[lang] = run_lang(ws, lang, args)
            print_table(lang, results[lang])
            payload = {
                "bench": "distill",
                "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
                "load_average": os.getloadavg(),
                "wall_seconds": round(time.perf_counter() - started, 1),
                "results": results,
            }
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(payload, indent=2) + "\n", "utf-8")
    finally:
        ws.close()
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
