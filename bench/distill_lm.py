"""Distilling a language model: teacher vs its distilled student vs the student on its own.

On the packaged Chinese reviews (their texts; the labels are not used) and through
the same workspace calls ``aimass train`` and ``aimass distill`` make:

* a WordPiece tokenizer of ``--vocab`` entries trained on the reviews, and the
  teacher: a Llama-style decoder of preset ``--teacher-preset`` (``mini``: 4
  layers, hidden size 256) trained from scratch as a causal LM on
  ``--train-rows`` reviews (``--teacher-epochs``, lr 1e-3, max length 128), or
  with ``--task masked-lm`` a BERT of that preset trained as a masked LM (BERT's
  15 % masking; each model is then scored on the masked positions of its test
  evaluation, the same masks for all three); with ``--teacher-base NAME`` the
  teacher is that packaged base trained further on the reviews instead (e.g.
  ``m3e-small`` as a masked LM, lr ``--teacher-lr``; its own tokenizer);
* the student: ``--student-start scratch`` (the default) a Llama of the
  teacher's width with ``--student-layers`` layers and random weights, on the
  same tokenizer; ``teacher`` the trained teacher registered as a base and cut
  by ``ws.bases.shrink`` to its first ``--student-layers`` layers
  (DistilBERT's start: the teacher's own weights, fewer layers);
* distilled on the same reviews, the teacher's next-token distribution the soft
  target of every position (``--alpha``, ``--temperature``);
* and, as the baseline, the same student trained on the same reviews alone.

Perplexity is each model's on the whole test split, as its training job scores
it; speed is the distillation job's own timing (forward passes over test texts,
teacher and student interleaved), teacher ÷ student.

    python bench/distill_lm.py [--task causal-lm|masked-lm] [--train-rows 0]
                               [--teacher-epochs 2] [--student-epochs 2]
                               [--student-layers 1] [--student-start scratch|teacher]
                               [--home DIR] [--out FILE]

``--train-rows 0`` takes every training review. A ``--home`` kept between runs
reuses what it trained from identical inputs. Writes ``bench/results/distill-lm.json``
(``distill-mlm.json`` with ``--task masked-lm``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

sys.path.insert(0, str(Path(__file__).parent))
from distill import train  # bench/distill.py

RESULTS = Path(__file__).parent / "results"
# Each task's architecture and the prefix of the names it registers.
KINDS = {"causal-lm": ("llama", "zh-lm", "zh-gpt"), "masked-lm": ("bert", "zh-mlm", "zh-bert")}


def bases(ws: Any, args: argparse.Namespace) -> tuple[Any, str]:
    """The reviews, and the teacher's scratch base (tokenizer trained on them)."""
    dataset, _ = ws.datasets.import_sample("chinese-reviews", name="zh-reviews", seed=0)
    if args.teacher_base:
        pretrained, _ = ws.bases.import_(args.teacher_base)
        return dataset, pretrained.ref
    architecture, _, prefix = KINDS[args.task]
    name = f"{prefix}-{args.teacher_preset}"
    found = [b for b in ws.bases.list() if b.name == name]  # a kept home's
    if found:
        return dataset, found[-1].ref
    # A second WordPiece training gave another vocabulary here: a kept home trains it once.
    if not any(b.name == "zh-tok" for b in ws.bases.list()):
        ws.bases.train_tokenizer(dataset.ref, name="zh-tok", vocab_size=args.vocab)
    base, _ = ws.bases.create_scratch(
        name, architecture=architecture, tokenizer="zh-tok", preset=args.teacher_preset
    )
    return dataset, base.ref


def run(ws: Any, args: argparse.Namespace) -> dict[str, Any]:
    """Teacher, distilled student and baseline student; their perplexities and speed."""
    dataset, teacher_base = bases(ws, args)
    architecture, prefix, _ = KINDS[args.task]
    if args.teacher_base:
        prefix = f"{prefix}-{args.teacher_base}"
    common: dict[str, Any] = {"task": args.task, "max_length": 128, "batch_size": 16}
    if args.train_rows:
        common["max_train_rows"] = args.train_rows
    teaching = {**common, "epochs": args.teacher_epochs}
    if args.teacher_lr:
        teaching["lr"] = args.teacher_lr
    teacher = train(ws, f"{prefix}-teacher", dataset.ref, teacher_base, teaching)
    name = f"{prefix}-l{args.student_layers}-{args.student_start}"
    found = [b for b in ws.bases.list() if b.name == name]  # a kept home's
    if found:
        student_base = found[-1].ref
    elif args.student_start == "teacher":
        whole, _ = ws.bases.from_model(teacher.ref, name=f"{prefix}-teacher-base")
        cut, _ = ws.bases.shrink(whole.ref, name=name, layers=args.student_layers)
        student_base = cut.ref
    else:
        fresh, _ = ws.bases.create_scratch(
            name,
            architecture=architecture,
            tokenizer="zh-tok",
            preset=args.teacher_preset,
            overrides={"num_layers": args.student_layers},
        )
        student_base = fresh.ref
    student = {**common, "epochs": args.student_epochs, "lr": args.student_lr}
    distilled = train(
        ws,
        f"{prefix}-student-{args.student_start}",
        dataset.ref,
        student_base,
        {
            **student,
            "teacher": teacher.ref,
            "temperature": args.temperature,
            "distill_alpha": args.alpha,
        },
    )
    baseline = train(
        ws, f"{prefix}-baseline-{args.student_start}", dataset.ref, student_base, student
    )
    versions = {"teacher": teacher, "student": distilled, "baseline": baseline}
    record = distilled.metrics["distillation"]
    rows = {
        role: {
            "model": v.ref,
            "perplexity": v.metrics["test"]["perplexity"],
            "train_seconds": v.metrics["training"]["seconds"],
        }
        for role, v in versions.items()
    }
    t = rows["teacher"]["perplexity"]
    return {
        "sample": "chinese-reviews",
        "task": args.task,
        "test_tokens": record["test_tokens"],
        "teacher_config": teacher.lineage.config,
        "student_base": student_base,
        "models": rows,
        "perplexity_ratio": round(rows["student"]["perplexity"] / t, 4),
        "baseline_perplexity_ratio": round(rows["baseline"]["perplexity"] / t, 4),
        "speed_ratio": record.get("speed_ratio"),
        "agreement": record.get("agreement"),
        "job_record": record,
    }


def main() -> None:
    """Train the three models (or reuse them), print the comparison, write the JSON."""
    import torch

    from aimass.settings import Settings
    from aimass.workspace import Workspace

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--task", choices=tuple(KINDS), default="causal-lm")
    parser.add_argument("--train-rows", type=int, default=0, help="0: every training review")
    parser.add_argument("--vocab", type=int, default=8000)
    parser.add_argument("--teacher-preset", default="mini")
    parser.add_argument("--teacher-base", help="a packaged base to train the teacher from")
    parser.add_argument("--teacher-lr", type=float, help="default: the task's for the base")
    parser.add_argument("--teacher-epochs", type=int, default=2)
    parser.add_argument("--student-layers", type=int, default=1)
    parser.add_argument("--student-start", choices=("scratch", "teacher"), default="scratch")
    parser.add_argument("--student-epochs", type=int, default=2)
    parser.add_argument("--student-lr", type=float, default=1e-3)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--alpha", type=float, default=0.5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--home", type=Path, help="keep the home (and reuse it) here")
    parser.add_argument("--out", default=None, help="default: distill-lm.json, distill-mlm.json")
    args = parser.parse_args()
    if args.teacher_base and args.student_start != "teacher":
        parser.error("--teacher-base needs --student-start teacher (the teacher's tokenizer)")
    args.out = args.out or ("distill-mlm.json" if args.task == "masked-lm" else "distill-lm.json")
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        home = args.home or Path(tmp) / "home"
        ws = Workspace(Settings(home=home, device="cpu"))
        try:
            result = run(ws, args)
        finally:
            ws.close()
    print(f"\n{'':10s} {'perplexity':>11s} {'÷ teacher':>10s} {'train s':>8s}")
    teacher = result["models"]["teacher"]["perplexity"]
    for role, row in result["models"].items():
        ratio = row["perplexity"] / teacher
        print(f"{role:10s} {row['perplexity']:11.2f} {ratio:10.3f} {row['train_seconds']:8.0f}")
    print(
        f"student speed ÷ teacher: x{result['speed_ratio']}; "
        f"{'masked' if args.task == 'masked-lm' else 'next'} tokens alike: "
        f"{result['agreement']:.3f}"
    )
    RESULTS.mkdir(exist_ok=True)
    out = {"benchmark": "distill-lm", "settings": {**vars(args), "home": str(args.home)}, **result}
    (RESULTS / args.out).write_text(json.dumps(out, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
