"""Ensembles: registered classifiers alone vs a pipeline that averages their probabilities.

Scores each model on a labelled split of a registered dataset, then a pipeline
with one ``ensemble`` step over all of them (``aimass pipelines create``; the
same step a served pipeline runs), side by side: accuracy, predictions/s and
how often each model agrees with the ensemble.

    python bench/ensemble.py --home DIR --dataset NAME[@VERSION] --models A@1,B@1
                             [--split test] [--weights 2,1 | --tune-on validation]
                             [--out FILE]

The models must share one label set (the ensemble step refuses otherwise). By
default the step averages their probabilities equally; ``--weights`` gives the
step's weights, and ``--tune-on SPLIT`` chooses them on another split (a grid of
weights 1..9 per model, scored by the weighted average's accuracy on SPLIT, ties
to the most even), so the scored split never picks them. Writes
``bench/results/ensemble.json`` (or ``--out``: a bare file name goes under
``bench/results/`` too).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

RESULTS = Path(__file__).parent / "results"
BATCH = 256  # AIMASS_MAX_PREDICT_BATCH


def labelled_rows(ws: Any, dataset: str, split: str) -> tuple[list[str], list[str]]:
    """Every text and label of ``split``, read through the workspace (pages of 1,000)."""
    texts: list[str] = []
    labels: list[str] = []
    while True:
        page, total = ws.datasets.rows(dataset, split=split, offset=len(texts), limit=1000)
        texts += [row["text"] for row in page]
        labels += [str(row["label"]) for row in page]
        if not page or len(texts) >= total:
            return texts, labels


def timed(predict: Any, texts: list[str]) -> tuple[list[str], float]:
    """Predicted labels of ``texts`` in batches, and predictions/s (after a warm-up)."""
    predict(texts[:8])
    began = time.perf_counter()
    labels = []
    for start in range(0, len(texts), BATCH):
        labels += [str(r["label"]) for r in predict(texts[start : start + BATCH])]
    return labels, len(texts) / (time.perf_counter() - began)


def tuned_weights(ws: Any, models: list[str], dataset: str, split: str) -> dict[str, Any]:
    """The step weights (1..9 each) whose weighted average of the models' probabilities
    is most accurate on ``split``; ties go to the most even weights."""
    texts, gold = labelled_rows(ws, dataset, split)
    probabilities = []
    for ref in models:
        rows: list[dict[str, float]] = []
        for start in range(0, len(texts), BATCH):
            rows += [
                r["probabilities"] for r in ws.serving.predict(ref, texts[start : start + BATCH])
            ]
        probabilities.append(rows)
    labels = list(probabilities[0][0])
    scored = []
    for weights in itertools.product(range(1, 10), repeat=len(models)):
        if math.gcd(*weights) != 1:  # (2, 2) is (1, 1)
            continue
        right = 0
        for i, truth in enumerate(gold):
            mix = {
                k: sum(w * p[i][k] for w, p in zip(weights, probabilities, strict=True))
                for k in labels
            }
            right += max(labels, key=mix.__getitem__) == truth
        scored.append((right / len(gold), -(max(weights) - min(weights)), weights))
    accuracy, _, best = max(scored)
    return {"split": split, "rows": len(gold), "weights": list(best), "accuracy": accuracy}


def main() -> None:
    """Score the models and their ensemble, print them side by side, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, required=True, help="the aimass home")
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--models", required=True, help="comma-separated NAME@VERSION")
    parser.add_argument("--split", default="test")
    parser.add_argument("--name", default="bench-ensemble", help="pipeline name")
    choose = parser.add_mutually_exclusive_group()
    choose.add_argument("--weights", help="comma-separated step weights, one per model")
    choose.add_argument("--tune-on", help="choose the weights on this split (not --split)")
    parser.add_argument(
        "--out",
        type=Path,
        default=RESULTS / "ensemble.json",
        help="a file name (written under bench/results/, as the other benches do) or a path",
    )
    args = parser.parse_args()
    if args.out.parent == Path("."):
        args.out = RESULTS / args.out
    models = [m for m in args.models.split(",") if m]
    if len(models) < 2:
        parser.error("--models needs two or more NAME@VERSION references")
    if args.tune_on == args.split:
        parser.error("--tune-on must name another split than --split (the one scored)")
    weights = [float(w) for w in args.weights.split(",")] if args.weights else None
    if weights is not None and len(weights) != len(models):
        parser.error(f"--weights needs {len(models)} numbers, one per model")

    from aimass.settings import Settings
    from aimass.workspace import Workspace

    ws = Workspace(Settings(home=args.home, device="cpu"))
    tuning = None
    try:
        if args.tune_on:
            tuning = tuned_weights(ws, models, args.dataset, args.tune_on)
            weights = [float(w) for w in tuning["weights"]]
            print(f"weights {weights} chosen on {args.tune_on} (accuracy {tuning['accuracy']:.4f})")
        texts, gold = labelled_rows(ws, args.dataset, args.split)
        predicted: dict[str, list[str]] = {}
        rows: dict[str, dict[str, Any]] = {}
        for ref in models:
            predicted[ref], speed = timed(
                lambda batch, ref=ref: ws.serving.predict(ref, batch), texts
            )
            rows[ref] = {"predictions_per_s": round(speed, 1)}
        step: dict[str, Any] = {"name": "average", "type": "ensemble", "models": models}
        if weights is not None:
            step["weights"] = weights
        spec = {"steps": [step]}
        pipeline, _ = ws.pipelines.create(spec, name=args.name)
        predicted["ensemble"], speed = timed(
            lambda batch: ws.pipelines.predict(pipeline.ref, batch)[1].results, texts
        )
        rows["ensemble"] = {"pipeline": pipeline.ref, "predictions_per_s": round(speed, 1)}
        for key, labels in predicted.items():
            rows[key]["accuracy"] = sum(p == g for p, g in zip(labels, gold, strict=True)) / len(
                gold
            )
            rows[key]["agreement_with_ensemble"] = sum(
                p == e for p, e in zip(labels, predicted["ensemble"], strict=True)
            ) / len(gold)
    finally:
        ws.close()
    print(f"{args.dataset} {args.split}: {len(gold)} rows")
    print(f"  {'model':<28}{'accuracy':>10}{'pred/s':>10}{'agrees':>10}")
    for key, row in rows.items():
        print(
            f"  {key:<28}{row['accuracy']:>10.4f}{row['predictions_per_s']:>10.1f}"
            f"{row['agreement_with_ensemble']:>10.3f}"
        )
    best = max(rows[m]["accuracy"] for m in models)
    print(f"  ensemble minus the best model: {rows['ensemble']['accuracy'] - best:+.4f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "bench": "ensemble",
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "rows": len(gold),
        "weights": weights,
        "tuning": tuning,
        "load_average": os.getloadavg(),
        "results": rows,
    }
    args.out.write_text(json.dumps(payload, indent=2) + "\n", "utf-8")


if __name__ == "__main__":
    main()
