"""Differential privacy on Rotten Tomatoes: accuracy, time overhead and attack AUC vs epsilon.

Features mode (the packaged MiniLM frozen, a linear head trained on its
features — privately or not), so the whole table runs in minutes on a CPU.
For each setting — non-private and epsilon = 1, 3, 8 — one ``aimass train``
run through the workspace (the code the CLI runs), then ``audit-privacy``
(loss-threshold and reference-calibrated membership inference on 1,000
training members vs 1,000 held-out test rows).

    python bench/privacy.py [--train-rows 4000] [--epochs 30] [--batch-size 256]

Writes ``bench/results/privacy.json``. The DP overhead is the ratio of
optimisation time per training example (loop only; feature encoding is the
same for both and excluded), DP over non-DP.

``--finetune-rows N`` (default 320) also times one fine-tuning epoch of MiniLM on
N rows, each setting as a user gets it by default: plain (every weight), DP with
ghost clipping and DP with per-example gradient hooks (both with the token
embeddings frozen, the DP default). Loop time per example; DP batches are
Poisson samples, so they also lose the length bucketing of plain batches.
``--finetune-repeats`` (default 3) alternates the three settings that many rounds
and reports medians. ``--no-features`` skips the features table. Fine-tuning
numbers go to ``bench/results/privacy-finetune.json``.

``--accuracy-rows N`` (default 0 = skip; 300 takes ~5 minutes on two free cores,
several times that when other jobs load them) compares the test
accuracy of DP *fine-tuning* at ``--accuracy-epsilon`` (default 8) with
non-private fine-tuning on the same N Rotten Tomatoes rows, for full fine-tuning
(every weight but the token embeddings under DP) and for LoRA adapters
(``--lora-rank``, default 8). The goal is DP within 3 points of non-private.
Each setting keeps its own step size and batch (DP-SGD wants larger batches
and steps: the noise is divided by the batch); all are printed and saved to
``bench/results/privacy-dp-finetune.json`` (``--accuracy-only lora,lora-dp`` runs a
subset, saved under a suffixed name). Only ``--accuracy-rows``:

    python bench/privacy.py --no-features --finetune-rows 0 --accuracy-rows 300

``--ner-rows N`` compares private NER with non-private NER (entity F1 on the whole
People's Daily test split; m3e-small on N training sentences; results in
``bench/results/privacy-dp-ner.json``):

    python bench/privacy.py --no-features --finetune-rows 0 --ner-rows 3000
    python bench/privacy.py --no-features --finetune-rows 0 --ner-rows 3000 \
        --ner-runs ner-features,ner-features-dp
"""

from __future__ import annotations

import argparse
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
# The DP fine-tuning accuracy runs without --accuracy-only (results: privacy-dp-finetune.json).
DEFAULT_RUNS = ("full", "full-dp", "lora", "lora-dp")


def write_subset(path: Path, train_rows: int, val_rows: int, test_rows: int) -> None:
    """The first rows of each Rotten Tomatoes split, as a JSONL with a split field."""
    from aimass.data.importer import ImportOptions, prepare_dataset
    from aimass.data.samples import get_sample

    prepared = prepare_dataset(get_sample("rotten-tomatoes").records(), ImportOptions())
    limits = {"train": train_rows, "validation": val_rows, "test": test_rows}
    seen = dict.fromkeys(limits, 0)
    with open(path, "w", encoding="utf-8") as out:
        for text, label, split in zip(
            prepared.texts, prepared.labels or [], prepared.splits, strict=True
        ):
            if seen[split] < limits[split]:
                seen[split] += 1
                out.write(json.dumps({"text": text, "label": label, "split": split}) + "\n")


def main() -> None:
    """Run the features-mode table and the fine-tuning overhead comparison."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train-rows", type=int, default=4000)
    parser.add_argument("--val-rows", type=int, default=500)
    parser.add_argument("--test-rows", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--lr", type=float, default=2e-2)
    parser.add_argument("--epsilons", default="1,3,8")
    parser.add_argument("--audit-examples", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--finetune-rows", type=int, default=320)
    parser.add_argument("--finetune-repeats", type=int, default=3)
    parser.add_argument("--features", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--accuracy-rows", type=int, default=0)
    parser.add_argument("--accuracy-test-rows", type=int, default=300)
    parser.add_argument("--accuracy-epochs", type=int, default=2)
    parser.add_argument("--accuracy-epsilon", type=float, default=8.0)
    parser.add_argument("--lora-rank", type=int, default=8)
    parser.add_argument("--lora-lr", type=float, default=5e-3)
    parser.add_argument("--lora-dp-lr", type=float, default=5e-3)
    parser.add_argument("--full-dp-lr", type=float, default=5e-4)
    parser.add_argument("--bitfit-dp-lr", type=float, default=5e-3, help="bitfit-dp-probe's step")
    parser.add_argument("--top-layers", type=int, default=2, help="top-dp-probe's layers")
    parser.add_argument(
        "--dp-batch-size", type=int, default=64, help="expected batch of the DP runs"
    )
    parser.add_argument(
        "--probe-epochs",
        type=int,
        default=10,
        help="linear-probe epochs of the *-dp-probe runs (DP-LP-FT)",
    )
    parser.add_argument("--probe-lr", type=float, default=1e-2)
    parser.add_argument(
        "--dp-noise",
        type=float,
        default=None,
        help="a fixed noise multiplier for the DP runs instead of one calibrated to "
        "--accuracy-epsilon (which must then cover it): a diagnostic, e.g. 0.001 with "
        "--accuracy-epsilon 1e9 --dp-accountant rdp clips without noising",
    )
    parser.add_argument("--dp-accountant", choices=("prv", "rdp"), default="prv")
    parser.add_argument(
        "--dp-clipping",
        choices=("flat", "per-layer"),
        default="flat",
        help="the DP runs' clipping: the whole gradient (flat) or each trained "
        "tensor by its share (per-layer, per-example gradients)",
    )
    parser.add_argument(
        "--ner-rows",
        type=int,
        default=0,
        help="also compare private NER with non-private NER: m3e-small on N People's Daily "
        "training sentences (0 = skip), scored on the whole test split",
    )
    parser.add_argument("--ner-epochs", type=int, default=2)
    parser.add_argument("--ner-dp-lr", type=float, default=5e-4)
    parser.add_argument(
        "--ner-features-epochs",
        type=int,
        default=30,
        help="epochs of the features-mode NER runs (the head alone on cached features)",
    )
    parser.add_argument("--ner-features-lr", type=float, default=2e-3)
    parser.add_argument("--ner-features-dp-lr", type=float, default=5e-3)
    parser.add_argument("--ner-features-dp-batch", type=int, default=256)
    parser.add_argument(
        "--ner-runs",
        default=parser_default_ner_runs(),
        help="NER runs, comma-separated: ner, ner-dp (every weight), ner-lora, ner-lora-dp "
        "(LoRA adapters of rank --lora-rank and the tagging head, at --lora-lr/--lora-dp-lr), "
        "ner-features, ner-features-dp (the head alone on the frozen encoder, "
        "--ner-features-epochs at --ner-features-lr/--ner-features-dp-lr)",
    )
    parser.add_argument(
        "--ner-out",
        default=None,
        help="file name under bench/results/ for the NER runs "
        "(default: privacy-dp-ner[-RUNS].json)",
    )
    parser.add_argument(
        "--accuracy-only",
        default=",".join(DEFAULT_RUNS),
        help="runs, comma-separated: full, full-dp, full-dp-probe (a private linear probe, "
        "then DP fine-tuning, one budget), lora, lora-dp, lora-dp-probe, bitfit-dp-probe "
        "(the same with only the biases training, at --bitfit-dp-lr), top-dp-probe (only "
        "the last --top-layers layers)",
    )
    parser.add_argument(
        "--accuracy-out",
        default=None,
        help="file name under bench/results/ for the DP fine-tuning accuracy runs "
        "(default: privacy-dp-finetune[-RUNS].json)",
    )
    args = parser.parse_args()
    if args.features:
        features_table(args)
    if args.finetune_rows:
        finetune_overhead(args)
    if args.accuracy_rows:
        dp_finetune_accuracy(args)
    if args.ner_rows:
        dp_ner_accuracy(args)


def parser_default_ner_runs() -> str:
    """The runs ``--ner-runs`` takes by default (their result has no suffix)."""
    return "ner,ner-dp,ner-lora,ner-lora-dp"


def dp_ner_accuracy(args: argparse.Namespace) -> None:
    """Entity F1 of NER fine-tuned privately (epsilon ``--accuracy-epsilon``) and not, on
    the same People's Daily sentences: m3e-small, every weight (the DP run keeps the
    token embeddings frozen), the whole test split."""
    import torch

    from aimass.jobs.train import TrainSpec
    from aimass.settings import Settings
    from aimass.workspace import Workspace

    torch.set_num_threads(args.threads)
    common = {
        "task": "token-classification",
        "epochs": args.ner_epochs,
        "max_train_rows": args.ner_rows,
        "max_length": 128,
        "patience": 0,
    }
    dp = {
        "target_epsilon": args.accuracy_epsilon,
        "accountant": args.dp_accountant,
        "clipping": args.dp_clipping,
    }
    lora = {**common, "lora_rank": args.lora_rank}
    features = {**common, "mode": "features", "epochs": args.ner_features_epochs}
    settings = (
        ("ner", {**common, "lr": 2e-4, "batch_size": 16}, None),
        ("ner-dp", {**common, "lr": args.ner_dp_lr, "batch_size": args.dp_batch_size}, dp),
        ("ner-lora", {**lora, "lr": args.lora_lr, "batch_size": 16}, None),
        ("ner-lora-dp", {**lora, "lr": args.lora_dp_lr, "batch_size": args.dp_batch_size}, dp),
        ("ner-features", {**features, "lr": args.ner_features_lr, "batch_size": 64}, None),
        (
            "ner-features-dp",
            {
                **features,
                "lr": args.ner_features_dp_lr,
                "batch_size": args.ner_features_dp_batch,
            },
            dp,
        ),
    )
    chosen = [r for r in args.ner_runs.split(",") if r]
    runs: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        ws = Workspace(Settings(home=Path(tmp) / "home", device="cpu"))
        dataset, _ = ws.datasets.import_sample("peoples-daily-ner")
        ws.bases.import_("m3e-small")
        for name, config, privacy in settings:
            if name not in chosen:
                continue
            started = time.perf_counter()
            version = ws.jobs.train(
                TrainSpec(
                    dataset=dataset.ref,
                    base="m3e-small",
                    model=name,
                    config=config,
                    privacy=privacy,
                )
            )
            test = version.metrics["test"]
            runs[name] = {
                "config": config,
                "test_f1": test["f1"],
                "test_per": (test.get("per_type") or {}).get("PER"),
                "val_f1_per_epoch": [h.get("f1") for h in version.metrics.get("history", [])],
                "privacy": version.privacy,
                "wall_seconds": round(time.perf_counter() - started, 1),
            }
            print(json.dumps({name: runs[name]}, ensure_ascii=False), flush=True)
        ws.close()
    print(f"\nNER, m3e-small, {args.ner_rows} People's Daily sentences, {args.ner_epochs} epochs")
    pairs = (("ner", "ner-dp"), ("ner-lora", "ner-lora-dp"), ("ner-features", "ner-features-dp"))
    for plain, private in pairs:
        if plain in runs and private in runs:
            gap = 100 * (runs[private]["test_f1"] - runs[plain]["test_f1"])
            print(
                f"  {private:12s} entity F1 non-private {runs[plain]['test_f1']:.4f}, DP "
                f"{runs[private]['test_f1']:.4f} (epsilon "
                f"{runs[private]['privacy']['epsilon']:.2f}), {gap:+.1f} points"
            )
    RESULTS.mkdir(exist_ok=True)
    out = {"benchmark": "privacy-dp-ner", "settings": vars(args), "runs": runs}
    default = parser_default_ner_runs().split(",")
    subset = "" if chosen == default else "-" + "-".join(chosen)
    name = args.ner_out or f"privacy-dp-ner{subset}.json"
    (RESULTS / name).write_text(json.dumps(out, indent=2, ensure_ascii=False))


def _accuracy_settings(
    args: argparse.Namespace,
) -> list[tuple[str, dict[str, Any], dict[str, Any] | None]]:
    """(name, training config, privacy) of the four fine-tuning runs, each with its own step size.

    Non-private runs keep the usual small batch; DP runs take 4x the batch (the noise
    is divided by it) and a larger step, the standard DP-SGD recipe (Li et al. 2021,
    "Large language models can be strong differentially private learners").
    """
    common = {"mode": "finetune", "epochs": args.accuracy_epochs, "max_length": 64, "patience": 0}
    lora = {"lora_rank": args.lora_rank}
    dp = {
        "target_epsilon": args.accuracy_epsilon,
        "accountant": args.dp_accountant,
        "clipping": args.dp_clipping,
    }
    if args.dp_noise is not None:
        dp["noise_multiplier"] = args.dp_noise
    probe = {"probe_epochs": args.probe_epochs, "probe_lr": args.probe_lr}
    full_dp = {**common, "batch_size": args.dp_batch_size, "lr": args.full_dp_lr}
    lora_dp = {**common, **lora, "batch_size": args.dp_batch_size, "lr": args.lora_dp_lr}
    return [
        ("full", {**common, "batch_size": 16, "lr": 1e-4}, None),
        ("full-dp", full_dp, dp),
        ("full-dp-probe", {**full_dp, **probe}, dp),
        # The head starts from random weights and the backbone barely moves: at LoRA's
        # usual 5e-4 to 1e-3 it cannot grow in a few dozen steps (measured: chance level).
        ("lora", {**common, **lora, "batch_size": 16, "lr": args.lora_lr}, None),
        ("lora-dp", lora_dp, dp),
        ("lora-dp-probe", {**lora_dp, **probe}, dp),
        # Fewer weights, less noise in all: every bias (BitFit), or the top layers.
        (
            "bitfit-dp-probe",
            {**full_dp, **probe, "trainable": "biases", "lr": args.bitfit_dp_lr},
            dp,
        ),
        ("top-dp-probe", {**full_dp, **probe, "trainable": f"top-{args.top_layers}"}, dp),
    ]


def dp_finetune_accuracy(args: argparse.Namespace) -> None:
    """Test accuracy of DP fine-tuning (full and LoRA) vs non-private, on the same rows."""
    import torch

    from aimass.data.importer import ImportOptions
    from aimass.jobs.train import TrainSpec
    from aimass.settings import Settings
    from aimass.workspace import Workspace

    torch.set_num_threads(args.threads)
    runs: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        ws = Workspace(Settings(home=Path(tmp) / "home", device="cpu"))
        data = Path(tmp) / "rt.jsonl"
        write_subset(data, args.accuracy_rows, 100, args.accuracy_test_rows)
        ws.datasets.import_file(data, name="rt", options=ImportOptions(split_field="split"))
        ws.bases.import_("minilm")
        chosen = set(args.accuracy_only.split(","))
        for name, config, privacy in _accuracy_settings(args):
            if name not in chosen:
                continue
            started = time.perf_counter()
            version = ws.jobs.train(
                TrainSpec(dataset="rt@1", base="minilm", model=name, config=config, privacy=privacy)
            )
            record = version.privacy or {}
            runs[name] = {
                "config": config,
                "test_accuracy": version.metrics["test"]["accuracy"],
                "val_accuracy": version.metrics["validation"]["accuracy"],
                "epsilon": record.get("epsilon"),
                "delta": record.get("delta"),
                "noise_multiplier": record.get("noise_multiplier"),
                "clipping": record.get("clipping"),
                "trained_parameters": record.get("trained_parameters"),
                "probe": version.metrics["training"].get("probe"),
                "val_accuracy_per_epoch": [
                    h.get("accuracy") for h in version.metrics.get("history", [])
                ],
                "wall_seconds": round(time.perf_counter() - started, 1),
            }
            print(json.dumps({name: runs[name]}), flush=True)
        ws.close()
    print(
        f"\nDP fine-tuning vs non-private, MiniLM, Rotten Tomatoes {args.accuracy_rows} train / "
        f"{args.accuracy_test_rows} test rows, {args.accuracy_epochs} epochs, seq <= 64, "
        f"epsilon {args.accuracy_epsilon:g}"
    )
    pairs = [(k, f"{k}-dp{p}") for k in ("full", "lora") for p in ("", "-probe")]
    # A subset of the weights answers to the same non-private model: every weight.
    pairs += [("full", "bitfit-dp-probe"), ("full", "top-dp-probe")]
    for kind, dp_kind in pairs:
        if kind not in runs or dp_kind not in runs:
            continue
        plain, private = runs[kind], runs[dp_kind]
        gap = 100 * (private["test_accuracy"] - plain["test_accuracy"])
        private["points_vs_non_private"] = round(gap, 2)
        verdict = "within" if gap >= -3 else "NOT within"
        print(
            f"  {dp_kind:13s} non-private ({kind}) {plain['test_accuracy']:.4f}  "
            f"DP {private['test_accuracy']:.4f} (eps {private['epsilon']:.2f})  "
            f"{gap:+.1f} pts, {verdict} 3 pts"
        )
    RESULTS.mkdir(exist_ok=True)
    out = {"benchmark": "privacy-dp-finetune", "settings": vars(args), "runs": runs}
    subset = "" if chosen == set(DEFAULT_RUNS) else "-" + "-".join(sorted(chosen))
    name = args.accuracy_out or f"privacy-dp-finetune{subset}.json"
    (RESULTS / name).write_text(json.dumps(out, indent=2))


def finetune_overhead(args: argparse.Namespace) -> None:
    """Loop time per example of one fine-tuning epoch: plain vs DP (ghost) vs DP (hooks)."""
    import torch

    from aimass.data.importer import ImportOptions
    from aimass.jobs.train import TrainSpec
    from aimass.settings import Settings
    from aimass.workspace import Workspace

    torch.set_num_threads(args.threads)
    config = {"mode": "finetune", "epochs": 1, "batch_size": 16, "lr": 5e-5, "max_length": 64}
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        ws = Workspace(Settings(home=Path(tmp) / "home", device="cpu"))
        data = Path(tmp) / "rt.jsonl"
        write_subset(data, args.finetune_rows, 64, 64)
        ws.datasets.import_file(data, name="rt", options=ImportOptions(split_field="split"))
        ws.bases.import_("minilm")
        settings = (
            ("plain", None),
            ("dp-ghost", {"target_epsilon": 8.0, "grad_sample_mode": "ghost"}),
            ("dp-hooks", {"target_epsilon": 8.0, "grad_sample_mode": "hooks"}),
        )
        samples: dict[str, list[float]] = {name: [] for name, _ in settings}
        # Alternate the settings round by round so machine load hits them alike.
        for round_ in range(args.finetune_repeats):
            for name, privacy in settings:
                version = ws.jobs.train(
                    TrainSpec(
                        dataset="rt@1",
                        base="minilm",
                        model=f"{name}-{round_}",
                        config=config,
                        privacy=privacy,
                    )
                )
                training = version.metrics["training"]
                samples[name].append(training["samples_per_second"])
                runs[name] = {
                    "samples_per_second": statistics.median(samples[name]),
                    "samples_per_second_runs": samples[name],
                    "steps": training["steps"],
                    "epsilon": (version.privacy or {}).get("epsilon"),
                }
                print(json.dumps({name: training}), flush=True)
        ws.close()
    plain = runs["plain"]["samples_per_second"]
    print(
        f"\nfine-tuning MiniLM (all weights), {args.finetune_rows} rows, batch 16, seq <= 64, "
        f"median of {args.finetune_repeats} alternating runs"
    )
    for name, row in runs.items():
        ratio = plain / row["samples_per_second"]
        row["time_overhead"] = ratio
        print(f"  {name:9s} {row['samples_per_second']:7.2f} samples/s   time x{ratio:.2f}")
    RESULTS.mkdir(exist_ok=True)
    out = {"benchmark": "privacy-finetune", "settings": vars(args), "runs": runs}
    (RESULTS / "privacy-finetune.json").write_text(json.dumps(out, indent=2))


def features_table(args: argparse.Namespace) -> None:
    """Features mode: non-private and each epsilon, trained and audited; one table."""

    import torch

    from aimass.jobs.train import TrainSpec
    from aimass.settings import Settings
    from aimass.workspace import Workspace

    torch.set_num_threads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        ws = Workspace(Settings(home=Path(tmp) / "home", device="cpu"))
        data = Path(tmp) / "rt.jsonl"
        write_subset(data, args.train_rows, args.val_rows, args.test_rows)
        from aimass.data.importer import ImportOptions

        ws.datasets.import_file(data, name="rt", options=ImportOptions(split_field="split"))
        ws.bases.import_("minilm")
        config = {
            "mode": "features",
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "lr": args.lr,
            "patience": 0,
        }
        settings = [None] + [float(e) for e in args.epsilons.split(",")]
        for epsilon in settings:
            privacy = None if epsilon is None else {"target_epsilon": epsilon}
            name = "rt-plain" if epsilon is None else f"rt-dp{int(epsilon)}"
            started = time.perf_counter()
            version = ws.jobs.train(
                TrainSpec(dataset="rt@1", base="minilm", model=name, config=config, privacy=privacy)
            )
            wall = time.perf_counter() - started
            report = ws.reports.audit_privacy(
                version.ref, dataset="rt@1", max_examples=args.audit_examples
            )
            training = version.metrics["training"]
            row = {
                "setting": "non-private" if epsilon is None else f"epsilon={epsilon:g}",
                "target_epsilon": epsilon,
                "spent_epsilon": (version.privacy or {}).get("epsilon"),
                "delta": (version.privacy or {}).get("delta"),
                "noise_multiplier": (version.privacy or {}).get("noise_multiplier"),
                "test_accuracy": version.metrics["test"]["accuracy"],
                "val_accuracy": version.metrics["validation"]["accuracy"],
                "loop_seconds": training["train_seconds"],
                "seconds_per_1k_examples": 1000
                * training["train_seconds"]
                / max(1, training["steps"] * args.batch_size),
                "wall_seconds": round(wall, 1),
                "mia_auc": report["attacks"]["loss_threshold"]["auc"],
                "mia_tpr_at_1pct_fpr": report["attacks"]["loss_threshold"]["tpr_at_1pct_fpr"],
                "calibrated_auc": report["attacks"]["calibrated"]["auc"],
                "calibrated_tpr_at_1pct_fpr": report["attacks"]["calibrated"]["tpr_at_1pct_fpr"],
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
        ws.close()

    plain = rows[0]
    print()
    print(
        f"features mode (MiniLM frozen + linear head), {args.train_rows} training rows, "
        f"{args.epochs} epochs, batch {args.batch_size}; attack on {args.audit_examples} "
        "members vs as many non-members"
    )
    header = (
        "setting",
        "eps spent",
        "test acc",
        "Δ acc",
        "DP time ×",
        "MIA AUC",
        "TPR@1%",
        "calib. AUC",
        "calib. TPR@1%",
    )
    print("  ".join(f"{h:>13s}" for h in header))
    for row in rows:
        overhead = row["seconds_per_1k_examples"] / plain["seconds_per_1k_examples"]
        cells = [
            row["setting"],
            "-" if row["spent_epsilon"] is None else f"{row['spent_epsilon']:.2f}",
            f"{row['test_accuracy']:.4f}",
            f"{row['test_accuracy'] - plain['test_accuracy']:+.4f}",
            f"{overhead:.2f}",
            f"{row['mia_auc']:.3f}",
            f"{row['mia_tpr_at_1pct_fpr']:.3f}",
            f"{row['calibrated_auc']:.3f}",
            f"{row['calibrated_tpr_at_1pct_fpr']:.3f}",
        ]
        row["dp_time_overhead"] = overhead
        print("  ".join(f"{c:>13s}" for c in cells))
    RESULTS.mkdir(exist_ok=True)
    out = {
        "benchmark": "privacy",
        "mode": "features",
        "settings": vars(args),
        "rows": rows,
        "torch": torch.__version__,
        "cpu_count": os.cpu_count(),
    }
    (RESULTS / "privacy.json").write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
