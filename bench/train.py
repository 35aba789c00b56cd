"""Fine-tuning throughput and accuracy: aimass vs a plain Hugging Face ``Trainer``.

Both train the *same* model (all-MiniLM-L6-v2 with Hugging Face's pooler +
linear head, i.e. ``BertForSequenceClassification``) on the same Rotten
Tomatoes rows, with the same batch size, sequence length, learning rate,
schedule (linear, 6 % warm-up), weight decay, epochs and seed. The baseline
uses the ``Trainer`` defaults a user gets with a tokenizer: dynamic padding
(``DataCollatorWithPadding``), no length grouping; a second baseline adds
length grouping (``train_sampling_strategy="group_by_length"``, transformers 4's
``group_by_length=True``), the best a ``Trainer`` user gets without code.

Throughput counts training steps only (no evaluation) for both; accuracy is on
the same validation rows. Runs alternate (aimass, baseline, aimass, ...) and
medians are reported, because this machine is shared and noisy; both paths are
warmed up once, untimed, first.

    python bench/train.py [--train-rows 2000] [--val-rows 1000] [--repeats 3]

Writes ``bench/results/train.json``.
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

import numpy as np
import torch

from explain import minilm_dir  # bench/explain.py: the packaged MiniLM's directory

RESULTS = Path(__file__).parent / "results"
# (train texts, train labels, validation texts, validation labels); the warm-up cuts each short.
Data = tuple[list[Any], ...]


def load_rows(train_rows: int, val_rows: int) -> tuple[list[str], list[Any], list[str], list[Any]]:
    """Rotten Tomatoes rows (the quickstart's sample), first N of each split."""
    from aimass.data.importer import ImportOptions, prepare_dataset
    from aimass.data.samples import get_sample

    prepared = prepare_dataset(get_sample("rotten-tomatoes").records(), ImportOptions())
    rows = list(zip(prepared.texts, prepared.labels or [], prepared.splits, strict=True))
    train = [(t, y) for t, y, s in rows if s == "train"][:train_rows]
    val = [(t, y) for t, y, s in rows if s == "validation"][:val_rows]
    return [t for t, _ in train], [y for _, y in train], [t for t, _ in val], [y for _, y in val]


def run_aimass(minilm: Path, data: Data, args: argparse.Namespace) -> dict[str, Any]:
    """Train through aimass's task recipe (the same code ``aimass train`` runs)."""
    from aimass.artifacts import BundleWriter
    from aimass.data.tables import SplitData
    from aimass.entities import DatasetSchema
    from aimass.training.callbacks import CallbackList
    from aimass.training.config import TrainConfig
    from aimass.training.tasks import TrainInputs, get_task

    texts, labels, val_texts, val_labels = data
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "base"
        writer = BundleWriter(base)
        for path in minilm.iterdir():
            if path.is_file() and path.name in (
                "config.json",
                "model.safetensors",
                "tokenizer.json",
                "tokenizer_config.json",
            ):
                writer.add_file(path.name, path)
        manifest = writer.finish(kind="base", architecture="bert", family="encoder")
        config = TrainConfig(
            mode="finetune",
            epochs=args.epochs,
            lr=args.lr,
            batch_size=args.batch_size,
            max_length=args.max_length,
            pooling="pooler",
            seed=0,
        ).resolved()
        inputs = TrainInputs(
            base_dir=base,
            base_manifest=manifest,
            schema=DatasetSchema("text", "label", "string"),
            stats={"classes": ["fresh", "rotten"]},
            train=SplitData(texts, labels, {}),
            validation=SplitData(val_texts, val_labels, {}),
            test=SplitData([], [], {}),
            config=config,
            device=torch.device(args.device),
            callbacks=CallbackList(),
            workdir=Path(tmp),
        )
        outcome = get_task("classification").train(inputs)
    training = outcome.metrics["training"]
    return {
        "samples_per_second": training["samples_per_second"],
        "train_seconds": training["train_seconds"],
        "accuracy": outcome.metrics["validation"]["accuracy"],
    }


def run_trainer(
    minilm: Path, data: Data, args: argparse.Namespace, *, grouped: bool = False
) -> dict[str, Any]:
    """The baseline: a plain Hugging Face Trainer, as its documentation shows it.

    ``grouped=True`` is the best a Trainer user gets without writing code: batches
    of similar length (``train_sampling_strategy="group_by_length"``, the
    ``group_by_length=True`` of transformers 4), so less padding per batch.
    """
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        PrinterCallback,
        Trainer,
        TrainingArguments,
    )
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    texts, labels, val_texts, val_labels = data
    classes = ["fresh", "rotten"]
    tokenizer = AutoTokenizer.from_pretrained(str(minilm))
    model = AutoModelForSequenceClassification.from_pretrained(
        str(minilm), num_labels=2, use_safetensors=True
    )

    class Rows(torch.utils.data.Dataset[dict[str, Any]]):
        def __init__(self, texts: list[str], labels: list[str]) -> None:
            self.enc = tokenizer(texts, truncation=True, max_length=args.max_length)
            self.labels = [classes.index(y) for y in labels]

        def __len__(self) -> int:
            return len(self.labels)

        def __getitem__(self, i: int) -> dict[str, Any]:
            return {**{k: v[i] for k, v in self.enc.items()}, "labels": self.labels[i]}

    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(
            model=model,
            args=TrainingArguments(
                output_dir=tmp,
                per_device_train_batch_size=args.batch_size,
                per_device_eval_batch_size=64,
                num_train_epochs=args.epochs,
                learning_rate=args.lr,
                weight_decay=0.01,
                warmup_steps=0.06,
                max_grad_norm=1.0,
                lr_scheduler_type="linear",
                seed=0,
                report_to=[],
                save_strategy="no",
                eval_strategy="no",
                logging_strategy="no",
                use_cpu=args.device == "cpu",
                dataloader_num_workers=0,
                disable_tqdm=True,
                **_grouping(grouped),
            ),
            train_dataset=Rows(texts, labels),
            data_collator=DataCollatorWithPadding(tokenizer),
            processing_class=tokenizer,
        )
        trainer.remove_callback(PrinterCallback)
        started = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - started
        prediction = trainer.predict(Rows(val_texts, val_labels))
    logits = prediction.predictions
    assert isinstance(logits, np.ndarray)  # the model's one output: no tuple of outputs
    accuracy = float((logits.argmax(-1) == np.array(prediction.label_ids)).mean())
    return {
        "samples_per_second": len(texts) * args.epochs / seconds,
        "train_seconds": seconds,
        "accuracy": accuracy,
    }


def _grouping(grouped: bool) -> dict[str, Any]:
    """The Trainer's length-grouping argument, in the spelling its version takes.

    ``train_sampling_strategy`` replaced ``group_by_length`` during transformers 5;
    the GPU machine's image may carry a release from before the rename.
    """
    import dataclasses

    from transformers import TrainingArguments

    names = {f.name for f in dataclasses.fields(TrainingArguments)}
    if "train_sampling_strategy" in names:
        return {"train_sampling_strategy": "group_by_length" if grouped else "random"}
    return {"group_by_length": grouped}


def main() -> None:
    """Run both, alternating, and print the side-by-side table and ratio."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train-rows", type=int, default=2000)
    parser.add_argument("--val-rows", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--device", choices=["cpu", "cuda"], default="cpu", help="where both train (fp32)"
    )
    parser.add_argument(
        "--minilm",
        type=Path,
        default=None,
        help="a directory holding all-MiniLM-L6-v2 (default: the packaged copy)",
    )
    parser.add_argument("--out", default="train.json", help="file name under bench/results/")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    minilm = args.minilm or minilm_dir()
    data = load_rows(args.train_rows, args.val_rows)

    # Untimed warm-up of both paths: the first training steps in a process pay
    # one-off costs (kernel selection, allocator growth) that would bias whichever ran first.
    warm = tuple(part[:32] for part in data)
    contenders = (
        ("aimass", run_aimass),
        ("hf_trainer", run_trainer),
        ("hf_trainer_grouped", functools.partial(run_trainer, grouped=True)),
    )
    for _, fn in contenders:
        fn(minilm, warm, args)

    runs: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in contenders}
    for repeat in range(args.repeats):
        for name, fn in contenders:
            result = fn(minilm, data, args)
            runs[name].append(result)
            print(
                f"[{repeat + 1}/{args.repeats}] {name:10s} {result['samples_per_second']:7.2f} "
                f"samples/s  accuracy {result['accuracy']:.4f}",
                flush=True,
            )

    summary = {
        name: {
            key: statistics.median(r[key] for r in results)
            for key in ("samples_per_second", "train_seconds", "accuracy")
        }
        for name, results in runs.items()
    }
    ratio = summary["aimass"]["samples_per_second"] / summary["hf_trainer"]["samples_per_second"]
    print()
    print(
        f"{'':12s} {'samples/s':>10s} {'train s':>9s} {'val acc':>8s}   (medians of {args.repeats})"
    )
    for name, row in summary.items():
        print(
            f"{name:12s} {row['samples_per_second']:10.2f} {row['train_seconds']:9.1f} "
            f"{row['accuracy']:8.4f}"
        )
    grouped = (
        summary["aimass"]["samples_per_second"]
        / summary["hf_trainer_grouped"]["samples_per_second"]
    )
    print(f"\nthroughput ratio aimass / HF Trainer: {ratio:.2f}x (goal >= 1.0)")
    print(f"throughput ratio aimass / HF Trainer grouped by length: {grouped:.2f}x (goal >= 1.0)")
    gap = summary["aimass"]["accuracy"] - summary["hf_trainer"]["accuracy"]
    print(f"accuracy difference: {gap:+.4f}")
    RESULTS.mkdir(exist_ok=True)
    out = {
        "benchmark": "train",
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "runs": runs,
        "median": summary,
        "ratio": ratio,
        "ratio_vs_grouped": grouped,
        "torch": torch.__version__,
        "cpu_count": os.cpu_count(),
        "device": torch.cuda.get_device_name() if args.device == "cuda" else "cpu",
    }
    (RESULTS / args.out).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
