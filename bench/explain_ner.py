"""Cost of explaining a Chinese tagger's entities, against a prediction of the same sentence.

The tagger is m3e-small fine-tuned on ``--train-rows`` People's Daily sentences
(the packaged sample, character-level BIO: PER, LOC, ORG) for one epoch, as
``aimass train`` does it, or an existing tagger of the home (``--model REF``,
e.g. the one ``aimass recipes chinese-ner`` registers). It is served through
aimass's ``TokenClassificationPredictor``. For each of ``--texts`` test
sentences with at least one entity, in rotating order:

* ``predict``: one ``predict([text])`` call (the unit of cost);
* ``occlusion``: every entity's leave-one-character-out scores (one batched
  prediction of the sentence's W one-word-shorter inputs);
* ``integrated-gradients``: every entity's attributions (``--steps`` points, the
  sentence's entities one Captum batch).

Medians per method and their ratios to ``predict``; the median number of
entities and characters per sentence; the median |convergence delta|; and, as
a check that the scores mean something, the share of entities whose highest
scoring character lies inside the entity or next to it.

    python bench/explain_ner.py [--train-rows 2000] [--texts 20] [--steps 50]
                                [--threads 2] [--model REF] [--home DIR]

Writes ``bench/results/explain-ner.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
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
METHODS = ("predict", "occlusion", "integrated-gradients")


def tagger(ws: Any, args: argparse.Namespace) -> tuple[Any, list[str]]:
    """The tagger to explain and the test sentences (with a gold entity) to explain."""
    from aimass.data.tables import read_split
    from aimass.metrics import entity_spans

    dataset, _ = ws.datasets.import_sample("peoples-daily-ner", name="pd", seed=0)
    if args.model:
        version = ws.models.get(args.model)
    else:
        base, _ = ws.bases.import_("m3e-small")
        config = {
            "task": "token-classification",
            "mode": "finetune",
            "max_train_rows": args.train_rows,
            "epochs": 1,
            "lr": 2e-4,
            "batch_size": 16,
        }
        version = train(ws, "pd-tagger", dataset.ref, base.ref, config)
    test = read_split(ws.artifacts.resolve(dataset.uri), "test")
    assert test.tokens is not None
    assert test.tags is not None
    texts = [
        "".join(tokens)
        for tokens, tags in zip(test.tokens, test.tags, strict=True)
        if entity_spans(tags) and len(tokens) <= args.max_chars
    ]
    return version, texts[: args.texts]


def near(entity: dict[str, Any]) -> bool:
    """Whether the entity's highest-scoring word is inside it or next to it."""
    best = max(entity["words"], key=lambda w: w["score"])
    return entity["start"] - 1 <= best["start"] and best["end"] <= entity["end"] + 1


def share(checks: list[bool]) -> float | None:
    """The share of true checks (``None`` when there are none)."""
    return sum(checks) / len(checks) if checks else None


def measure(predictor: Any, texts: list[str], steps: int, *, check: Any = near) -> dict[str, Any]:
    """Per-sentence times of each method (rotating order), entity counts and checks
    (``check(entity)``: whether its highest-scoring word lies where it should)."""
    times: dict[str, list[float]] = {m: [] for m in METHODS}
    deltas, entities = [], []
    inside: dict[str, list[bool]] = {"occlusion": [], "integrated-gradients": []}
    predictor.predict(texts[:2])  # warm-up
    for i, text in enumerate(texts):
        order = METHODS[i % 3 :] + METHODS[: i % 3]
        for method in order:
            started = time.perf_counter()
            if method == "predict":
                predictor.predict([text])
            else:
                options = {"n_steps": steps} if method == "integrated-gradients" else {}
                (explained,) = predictor.explain([text], method=method, **options)
                for entity in explained["entities"]:
                    inside[method].append(check(entity))
                    if method == "integrated-gradients":
                        deltas.append(abs(entity["details"]["convergence_delta"]))
                if method == "occlusion":
                    entities.append(len(explained["entities"]))
            times[method].append((time.perf_counter() - started) * 1000)
    median = {m: statistics.median(t) for m, t in times.items()}
    return {
        "median_ms": median,
        "ratio_to_predict": {m: median[m] / median["predict"] for m in METHODS},
        "median_entities_per_sentence": statistics.median(entities),
        "median_chars_per_sentence": statistics.median(len(t) for t in texts),
        "median_abs_convergence_delta": statistics.median(deltas) if deltas else None,
        "top_word_in_or_next_to_entity": share(
            inside["occlusion"] + inside["integrated-gradients"]
        ),
        "top_word_check_by_method": {m: share(v) for m, v in inside.items()},
        "runs_ms": times,
    }


def main() -> None:
    """Parse flags, train (or reuse) the tagger, time, print and write the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-rows", type=int, default=2000)
    parser.add_argument("--model", default=None, help="an existing tagger NAME@VERSION")
    parser.add_argument("--texts", type=int, default=20)
    parser.add_argument("--max-chars", type=int, default=80, help="longest sentence explained")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--home", type=Path, default=None, help="keep (and reuse) this home")
    parser.add_argument("--out", type=Path, default=RESULTS / "explain-ner.json")
    args = parser.parse_args()

    import torch

    from aimass.settings import Settings
    from aimass.workspace import Workspace

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        home = args.home or Path(tmp) / "home"
        ws = Workspace(Settings(home=home, device="cpu", num_threads=args.threads))
        try:
            version, texts = tagger(ws, args)
            result = measure(ws.serving.load(version.ref), texts, args.steps)
        finally:
            ws.close()
    result = {
        "benchmark": "explain-ner",
        "model": version.ref,
        "test_f1": version.metrics.get("test", {}).get("f1"),
        "settings": {
            "texts": len(texts),
            "steps": args.steps,
            "threads": args.threads,
            "train_rows": None if args.model else args.train_rows,
        },
        **result,
    }
    print_table(
        f"{version.ref} (test entity F1 {result['test_f1']}), {len(texts)} sentences", result
    )
    print(
        f"  entities/sentence {result['median_entities_per_sentence']}, "
        f"characters/sentence {result['median_chars_per_sentence']}, "
        f"|convergence delta| {result['median_abs_convergence_delta']}, "
        f"top character in or next to its entity {result['top_word_in_or_next_to_entity']}"
    )
    write(args.out, result)


def print_table(title: str, result: dict[str, Any]) -> None:
    """The median time of each method and its ratio to a prediction, under ``title``."""
    print(f"\n{title}")
    print(f"  {'method':<22}{'median ms':>11}{'x predict':>11}")
    for method in METHODS:
        print(
            f"  {method:<22}{result['median_ms'][method]:>11.1f}"
            f"{result['ratio_to_predict'][method]:>11.1f}"
        )


def write(out: Path, result: dict[str, Any]) -> None:
    """Write ``result`` as JSON to ``out`` and say where."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
