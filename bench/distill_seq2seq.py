"""Distilling a seq2seq model: word-level against sequence-level, beside the labels alone.

A generative extraction task built from the packaged People's Daily NER sample:
the source is a sentence, the target lists its entities in order, each as its
type and text (``人名邓小平；地名北京``; ``无`` when there is none). On it, through the
same workspace calls ``aimass train`` and ``aimass distill`` make:

* a WordPiece tokenizer of ``--vocab`` entries trained on the pairs;
* the teacher: a BART of preset ``--teacher-preset`` (``mini``: 3 + 3 layers,
  hidden size 256) trained from scratch on ``--train-rows`` pairs;
* students of ``--student-layers`` encoder and decoder layers of the teacher's
  width, from random weights, on the same pairs for ``--student-epochs``:
  ``alone`` (the references, no teacher), ``word`` (word-level distillation: the
  teacher's distribution at each reference position, ``--alpha``), ``sequence``
  (``--sequence-beams``: the teacher's decoded outputs are the targets, no
  word-level term) and ``both`` (its outputs as targets, the word-level term too);
* and each model's greedy outputs on ``--test-rows`` test sentences, scored
  against the references: the share written exactly, and entity precision,
  recall and F1 (an entity is its type and text).

Teacher-forced perplexity on the references is each model's own test score;
decoding is what a user of the model sees, and where sequence-level
distillation is meant to help (Kim and Rush 2016).

    python bench/distill_seq2seq.py [--train-rows 4000] [--teacher-epochs 6]
                                    [--student-epochs 6] [--students alone,word,sequence,both]
                                    [--home DIR] [--out FILE]

A ``--home`` kept between runs reuses what it trained from identical inputs.
Writes ``bench/results/distill-seq2seq.json``.
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
from distill import train  # bench/distill.py

RESULTS = Path(__file__).parent / "results"
NONE = "无"
# Entity types as the targets write them: Chinese words, which a WordPiece tokenizer
# splits into characters and decodes with spaces between, as it does the names.
TYPES = {"PER": "人名", "LOC": "地名", "ORG": "机构"}
STUDENTS = ("alone", "word", "sequence", "both")
CALL_ROWS = 200  # inputs per predict call (the serving limit is 256)


def entities(tokens: list[str], tags: list[str]) -> list[tuple[str, str]]:
    """``(type, text)`` of each BIO entity of a tagged sentence, in order."""
    found: list[tuple[str, str]] = []
    kind, chars = "", []
    for token, tag in [*zip(tokens, tags, strict=True), ("", "O")]:
        if tag.startswith("I-") and kind == tag[2:]:
            chars.append(token)
            continue
        if kind:
            found.append((kind, "".join(chars)))
        kind, chars = (tag[2:], [token]) if tag != "O" else ("", [])
    return found


def target(found: list[tuple[str, str]]) -> str:
    """The target text of a sentence's entities."""
    return "；".join(TYPES[kind] + text for kind, text in found if kind in TYPES) or NONE


def parsed(text: str) -> set[tuple[str, str]]:
    """The ``(type, text)`` entities a written target names (what fails to parse: none);
    spaces are dropped, as decoding puts them between characters."""
    items = ("".join(text.split())).split("；")
    return {(item[:2], item[2:]) for item in items if item[:2] in TYPES.values() and item[2:]}


def pairs_dataset(ws: Any, root: Path) -> Any:
    """The pairs, written from the People's Daily sample's rows and imported."""
    from aimass.data.importer import ImportOptions
    from aimass.data.tables import read_split

    found = [d for d in ws.datasets.list() if d.name == "pd-pairs"]  # a kept home's
    if found:
        return found[-1]
    sample, _ = ws.datasets.import_sample("peoples-daily-ner", name="pd", seed=0)
    rows = read_split(ws.artifacts.resolve(sample.uri), None)
    assert rows.tokens is not None
    assert rows.tags is not None
    path = root / "pd-pairs.jsonl"
    with path.open("w", encoding="utf-8") as out:
        for tokens, tags in zip(rows.tokens, rows.tags, strict=True):
            row = {"source": "".join(tokens), "target": target(entities(tokens, tags))}
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    version, _ = ws.datasets.import_file(path, name="pd-pairs", options=ImportOptions(kind="pairs"))
    return version


def scratch(ws: Any, name: str, args: argparse.Namespace, **overrides: Any) -> str:
    """A from-scratch BART base on the pairs' tokenizer (a kept home's, if there is one)."""
    found = [b for b in ws.bases.list() if b.name == name]
    if found:
        return str(found[-1].ref)
    base, _ = ws.bases.create_scratch(
        name,
        architecture="bart",
        tokenizer="pd-tok",
        preset=args.teacher_preset,
        overrides=overrides or None,
    )
    return str(base.ref)


def decoded_scores(ws: Any, ref: str, sources: list[str], references: list[str]) -> dict[str, Any]:
    """Greedy outputs of ``ref`` for ``sources``, scored against ``references``."""
    started = time.perf_counter()
    written = [
        p["generated_text"]
        for start in range(0, len(sources), CALL_ROWS)
        for p in ws.serving.predict(ref, sources[start : start + CALL_ROWS])
    ]
    seconds = time.perf_counter() - started
    exact = hits = said = true = 0
    for w, r in zip(written, references, strict=True):
        exact += "".join(w.split()) == "".join(r.split())
        guess, truth = parsed(w), parsed(r)
        hits, said, true = hits + len(guess & truth), said + len(guess), true + len(truth)
    precision, recall = hits / max(said, 1), hits / max(true, 1)
    return {
        "exact": round(exact / len(sources), 4),
        "entity_precision": round(precision, 4),
        "entity_recall": round(recall, 4),
        "entity_f1": round(2 * precision * recall / max(precision + recall, 1e-9), 4),
        "sentences_per_second": round(len(sources) / seconds, 1),
        "examples": [
            {"source": s, "reference": r, "written": w}
            for s, r, w in list(zip(sources, references, written, strict=True))[:3]
        ],
    }


def run(ws: Any, args: argparse.Namespace, root: Path) -> dict[str, Any]:
    """The teacher and the students; their perplexities and decoded scores."""
    from aimass.data.tables import read_split

    dataset = pairs_dataset(ws, root)
    if not any(b.name == "pd-tok" for b in ws.bases.list()):
        ws.bases.train_tokenizer(dataset.ref, name="pd-tok", vocab_size=args.vocab)
    teacher_base = scratch(ws, f"pd-bart-{args.teacher_preset}", args)
    layers = args.student_layers
    student_base = scratch(
        ws, f"pd-bart-l{layers}", args, encoder_layers=layers, decoder_layers=layers
    )
    common = {"task": "seq2seq", "max_length": 128, "batch_size": 16, "lr": args.lr}
    if args.train_rows:
        common["max_train_rows"] = args.train_rows
    teacher = train(
        ws, "pd-teacher", dataset.ref, teacher_base, {**common, "epochs": args.teacher_epochs}
    )
    student = {**common, "epochs": args.student_epochs}
    teaching = {"teacher": teacher.ref, "temperature": 1.0}
    configs = {
        "alone": student,
        "word": {**student, **teaching, "distill_alpha": args.alpha},
        "sequence": {
            **student,
            **teaching,
            "distill_alpha": 0.0,
            "sequence_beams": args.sequence_beams,
        },
        "both": {
            **student,
            **teaching,
            "distill_alpha": args.alpha,
            "sequence_beams": args.sequence_beams,
        },
    }
    versions = {"teacher": teacher}
    for role in args.students:
        versions[role] = train(ws, f"pd-student-{role}", dataset.ref, student_base, configs[role])
    test = read_split(ws.artifacts.resolve(dataset.uri), "test")
    assert test.targets is not None
    sources, references = test.texts[: args.test_rows], test.targets[: args.test_rows]
    rows: dict[str, Any] = {}
    for role, version in versions.items():
        record = version.metrics.get("distillation") or {}
        rows[role] = {
            "model": version.ref,
            "perplexity": version.metrics["test"]["perplexity"],
            "train_seconds": version.metrics["training"]["seconds"],
            "speed_ratio": record.get("speed_ratio"),
            "sequence_level": record.get("sequence_level"),
            **decoded_scores(ws, version.ref, sources, references),
        }
        shown = {k: rows[role][k] for k in ("perplexity", "exact", "entity_f1")}
        print(f"  {role}: {json.dumps(shown)}", flush=True)
    return {
        "sample": "peoples-daily-ner as pairs",
        "test_rows": len(sources),
        "teacher_config": teacher.lineage.config,
        "models": rows,
    }


def main() -> None:
    """Train the models (or reuse them), print the comparison, write the JSON."""
    import torch

    from aimass.settings import Settings
    from aimass.workspace import Workspace

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train-rows", type=int, default=4000, help="0: every training pair")
    parser.add_argument("--test-rows", type=int, default=500)
    parser.add_argument("--vocab", type=int, default=6000)
    parser.add_argument("--teacher-preset", default="mini")
    parser.add_argument("--teacher-epochs", type=int, default=6)
    parser.add_argument("--student-layers", type=int, default=1)
    parser.add_argument("--student-epochs", type=int, default=6)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--alpha", type=float, default=0.5)
    parser.add_argument("--sequence-beams", type=int, default=4)
    parser.add_argument(
        "--students",
        type=lambda s: [p for p in s.split(",") if p],
        default=list(STUDENTS),
        help=f"comma-separated, of {', '.join(STUDENTS)}",
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--home", type=Path, help="keep the home (and reuse it) here")
    parser.add_argument("--out", default="distill-seq2seq.json")
    args = parser.parse_args()
    unknown = set(args.students) - set(STUDENTS)
    if unknown:
        parser.error(f"--students: {sorted(unknown)} not of {', '.join(STUDENTS)}")
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        home = args.home or Path(tmp) / "home"
        ws = Workspace(Settings(home=home, device="cpu"))
        try:
            result = run(ws, args, Path(tmp))
        finally:
            ws.close()
    print(
        f"\n{'':9s} {'perplexity':>10s} {'exact':>6s} {'ent. F1':>7s} {'train s':>8s} {'speed':>6s}"
    )
    for role, row in result["models"].items():
        speed = f"x{row['speed_ratio']}" if row["speed_ratio"] else ""
        print(
            f"{role:9s} {row['perplexity']:10.2f} {row['exact']:6.3f} {row['entity_f1']:7.3f} "
            f"{row['train_seconds']:8.0f} {speed:>6s}"
        )
    RESULTS.mkdir(exist_ok=True)
    out = {
        "benchmark": "distill-seq2seq",
        "settings": {**vars(args), "home": str(args.home)},
        **result,
    }
    (RESULTS / args.out).write_text(json.dumps(out, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
