"""Cost of explaining a Chinese masked LM's fills, against a prediction of the same text.

The masked LM is m3e-small (whose checkpoint has no masked-LM head: a new one is
trained) trained as a masked LM on ``--train-rows`` Chinese reviews (the
packaged ``chinese-reviews`` sample) for one epoch at ``--lr``, as
``aimass train --task masked-lm`` does it, or an existing masked LM of the home
(``--model REF``). It is served through aimass's ``FillMaskPredictor``. For each
of ``--texts`` test reviews, one Han character (a seeded draw, away from the
ends) is replaced by ``[MASK]``, and in rotating order:

* ``predict``: one ``predict([text])`` call (the unit of cost);
* ``occlusion``: the top fill's leave-one-character-out scores (one batched
  prediction of the review's W one-word-shorter inputs);
* ``integrated-gradients``: the top fill's attributions (``--steps`` points).

Medians per method and their ratios to ``predict`` (the same table as
``bench/explain_ner.py``); the median |convergence delta|; and, as a check
that the scores mean something, the share of fills whose highest-scoring
character lies within two characters of the mask (a masked character is
mostly read off its neighbours: the other characters of its word).

    python bench/explain_fill.py [--train-rows 6000] [--lr 3e-4] [--texts 20] [--steps 50]
                                 [--threads 2] [--model REF] [--home DIR]

Writes ``bench/results/explain-fill.json``.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

sys.path.insert(0, str(Path(__file__).parent))
from distill import train  # bench/distill.py
from explain_ner import measure, print_table, write  # bench/explain_ner.py

RESULTS = Path(__file__).parent / "results"
NEAR = 2  # characters between the mask and the highest-scoring character


def masked_lm(ws: Any, args: argparse.Namespace) -> tuple[Any, list[str]]:
    """The masked LM to explain and the test reviews, each with one character masked."""
    from aimass.data.tables import read_split

    dataset, _ = ws.datasets.import_sample("chinese-reviews", name="zh", seed=0)
    if args.model:
        version = ws.models.get(args.model)
    else:
        base, _ = ws.bases.import_("m3e-small")
        config = {
            "task": "masked-lm",
            "max_train_rows": args.train_rows,
            "epochs": 1,
            "lr": args.lr,
            "batch_size": 16,
        }
        version = train(ws, "zh-mlm", dataset.ref, base.ref, config)
    test = read_split(ws.artifacts.resolve(dataset.uri), "test")
    rng = random.Random(0)
    texts = []
    for text in test.texts:
        if not 20 <= len(text) <= args.max_chars:
            continue
        inner = range(3, len(text) - 3)
        han = [i for i in inner if "\u4e00" <= text[i] <= "\u9fff"]
        if han:
            at = rng.choice(han)
            texts.append(f"{text[:at]}[MASK]{text[at + 1 :]}")
    return version, texts[: args.texts]


def near_mask(fill: dict[str, Any]) -> bool:
    """Whether the fill's highest-scoring character lies within ``NEAR`` of the mask."""
    best = max(fill["words"], key=lambda w: w["score"])
    return fill["start"] - NEAR <= best["start"] and best["end"] <= fill["end"] + NEAR


def main() -> None:
    """Parse flags, train (or reuse) the masked LM, time, print and write the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-rows", type=int, default=6000)
    # m3e-small has no masked-LM head: a new one learns faster at a larger step size.
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--model", default=None, help="an existing masked LM NAME@VERSION")
    parser.add_argument("--texts", type=int, default=20)
    parser.add_argument("--max-chars", type=int, default=80, help="longest review explained")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--home", type=Path, default=None, help="keep (and reuse) this home")
    parser.add_argument("--out", type=Path, default=RESULTS / "explain-fill.json")
    args = parser.parse_args()

    import torch

    from aimass.settings import Settings
    from aimass.workspace import Workspace

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        home = args.home or Path(tmp) / "home"
        ws = Workspace(Settings(home=home, device="cpu", num_threads=args.threads))
        try:
            version, texts = masked_lm(ws, args)
            predictor = ws.serving.load(version.ref)
            result = measure(predictor, texts, args.steps, check=near_mask)
            top = [predictor.predict([t])[0]["masks"][0]["candidates"][0]["score"] for t in texts]
        finally:
            ws.close()
    del result["median_entities_per_sentence"]  # one mask per review
    result["top_fill_in_or_near_mask"] = result.pop("top_word_in_or_next_to_entity")
    result = {
        "benchmark": "explain-fill",
        "model": version.ref,
        "settings": {
            "texts": len(texts),
            "steps": args.steps,
            "threads": args.threads,
            "train_rows": version.metrics.get("training", {}).get("train_rows"),
            "lr": version.lineage.config.get("lr"),
            "near_characters": NEAR,
        },
        "test_masked_accuracy": version.metrics.get("test", {}).get("masked_accuracy"),
        "median_top_fill_probability": sorted(top)[len(top) // 2],
        **result,
    }
    print_table(
        f"{version.ref} (test masked-token accuracy {result['test_masked_accuracy']}), "
        f"{len(texts)} reviews with one character masked",
        result,
    )
    print(
        f"  characters/review {result['median_chars_per_sentence']}, "
        f"top fill probability {result['median_top_fill_probability']:.3f}, "
        f"|convergence delta| {result['median_abs_convergence_delta']}, "
        f"top character within {NEAR} of the mask {result['top_fill_in_or_near_mask']}"
    )
    write(args.out, result)


if __name__ == "__main__":
    main()
