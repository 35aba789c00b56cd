"""The ``optimize`` job: a model version → ONNX graphs (fp32 and int8) with a parity record.

``aimass models optimize NAME@VERSION`` queues it. The job

1. exports the version's PyTorch model to ``model.onnx`` (:mod:`aimass.models.onnx`)
   and quantises it to ``model-int8.onnx``;
2. runs held-out rows — the test split of the dataset the version was trained on,
   or the split asked for — through all three (PyTorch, ONNX fp32, ONNX int8),
   and records each one's quality (accuracy; RMSE for regression; entity F1 for
   NER, each row's tokens joined by spaces and served as text), its agreement
   with PyTorch (rows with the same label, or the same entities) and its
   predictions per second on this machine;
3. applies the parity gate: int8 is recommended for serving only when its
   quality is within ``threshold`` of PyTorch's (points of accuracy or of entity
   F1; for regression, percent of PyTorch's RMSE); else the fp32 graph, when it
   matches PyTorch; else PyTorch itself;
4. publishes the graphs and ``parity.json`` under ``graphs/<sha256>/`` and attaches
   them to the version (``kind="onnx"``), with the parity record also in the
   version's ``metrics["serving"]`` — what the model details show.

A server with ``AIMASS_SERVE_BACKEND=auto`` (the default) then serves the
recommended backend; nothing changes for versions that were never optimised.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from aimass.artifacts.bundle import verify_bundle
from aimass.artifacts.storage import ArtifactStore
from aimass.data.splits import SPLITS
from aimass.data.tables import read_split
from aimass.entities import DatasetVersion, ModelVersion
from aimass.errors import Cancelled, InvalidArgument, UnsupportedModel
from aimass.jobs.evaluate import check_labelled
from aimass.jobs.runner import JobContext
from aimass.metrics import entity_spans, span_scores
from aimass.refs import Ref, parse_ref
from aimass.store import Store

if TYPE_CHECKING:
    from aimass.serving.predictor import Predictor

__all__ = [
    "ATTACHMENT_KIND",
    "OPTIMIZE",
    "OptimizeSpec",
    "parity_record",
    "resolve_optimization",
    "run_optimize_job",
    "tagged_rows",
]

log = logging.getLogger("aimass.jobs.optimize")
OPTIMIZE = "optimize"
ATTACHMENT_KIND = "onnx"
_TASKS = ("classification", "regression", "token-classification")
_DROP_UNITS = {
    "classification": "accuracy points",
    "regression": "percent of torch's RMSE",
    "token-classification": "entity F1 points",
}


@dataclass(frozen=True)
class OptimizeSpec:
    """What to optimise: stored in the job record as its ``spec``.

    Attributes:
        model: ``NAME@VERSION`` (aliases are resolved when the job is submitted).
        dataset: Rows for the parity run: ``NAME`` or ``NAME@VERSION``; default the
            dataset version the model was trained on.
        split: Its split (default ``test``).
        threshold: Largest quality drop at which int8 still serves: points of
            accuracy (0.5 = half a point) or of entity F1 (NER), or percent of the
            RMSE for regression.
        max_rows: Most rows the parity run uses (the first of the split).
    """

    model: str
    dataset: str | None = None
    split: str = "test"
    threshold: float = 0.5
    max_rows: int = 2000

    def __post_init__(self) -> None:
        parse_ref(self.model, kind="model")
        if self.dataset is not None:
            parse_ref(self.dataset, kind="dataset")
        if self.split not in SPLITS:
            raise InvalidArgument(f"unknown split {self.split!r}; use one of {', '.join(SPLITS)}")
        if not 0 <= self.threshold <= 100:
            raise InvalidArgument(
                f"threshold must be between 0 and 100 (points of accuracy), got {self.threshold}"
            )
        if not 10 <= self.max_rows <= 1_000_000:
            raise InvalidArgument(f"max_rows must be between 10 and 1,000,000, got {self.max_rows}")

    def to_dict(self) -> dict[str, Any]:
        """JSON form for the job record."""
        return asdict(self)


def resolve_optimization(
    store: Store, artifacts: ArtifactStore, project: str, spec: OptimizeSpec
) -> tuple[ModelVersion, DatasetVersion]:
    """The version and the parity rows' dataset, checked before any model loads."""
    version = store.registry.get_version(project, parse_ref(spec.model, kind="model"))
    if version.task not in _TASKS:
        raise UnsupportedModel(
            f"model {version.ref} is a {version.task!r} model; ONNX graphs are built for "
            f"{', '.join(_TASKS)} models (serve it with the torch backend)",
            task=version.task,
        )
    ref = parse_ref(spec.dataset or version.lineage.dataset, kind="dataset")
    dataset = store.datasets.get(project, ref.name, ref.version)
    if not dataset.splits.get(spec.split):
        raise InvalidArgument(
            f"dataset {dataset.ref} has no {spec.split!r} rows for the parity run "
            f"(splits: {', '.join(f'{k} {v}' for k, v in dataset.splits.items())}); "
            "pass another split or dataset"
        )
    task_config = verify_bundle(artifacts.resolve(version.uri)).task_config
    check_labelled(version, dataset, task_config)
    return version, dataset


def parity_record(
    task: str,
    labels: list[Any],
    outputs: dict[str, list[dict[str, Any]]],
    speed: dict[str, float],
    threshold: float,
) -> dict[str, Any]:
    """Quality, agreement and speed of each backend, the gate's verdict and the recommendation.

    Args:
        task: ``classification``, ``regression`` or ``token-classification``.
        labels: The true labels (or values) of the parity rows; for NER each row's
            entities as ``(type, start, end)`` character spans of its text.
        outputs: Predictions of each backend (``torch``, ``onnx``, ``onnx-int8``).
        speed: Predictions per second of each backend.
        threshold: The gate (see :class:`OptimizeSpec`).
    """
    reference = outputs["torch"]
    backends: dict[str, dict[str, Any]] = {}
    for name, results in outputs.items():
        if task == "regression":
            values = np.array([r["value"] for r in results])
            truth = np.array([float(v) for v in labels])
            rmse = float(np.sqrt(np.mean((values - truth) ** 2)))
            ref_values = np.array([r["value"] for r in reference])
            backends[name] = {
                "rmse": round(rmse, 6),
                "max_abs_diff_from_torch": round(float(np.max(np.abs(values - ref_values))), 6),
            }
        elif task == "token-classification":
            found = [_entities(r) for r in results]
            scores = span_scores(
                {(i, *e) for i, row in enumerate(labels) for e in row},
                {(i, *e) for i, row in enumerate(found) for e in row},
            )
            same = [a == _entities(r) for a, r in zip(found, reference, strict=True)]
            backends[name] = {
                "f1": round(scores["f1"], 6),
                "precision": round(scores["precision"], 6),
                "recall": round(scores["recall"], 6),
                "agreement_with_torch": float(np.mean(same)),
            }
        else:
            predicted = [r["label"] for r in results]
            accuracy = float(np.mean([p == str(t) for p, t in zip(predicted, labels, strict=True)]))
            agreement = float(
                np.mean([p == r["label"] for p, r in zip(predicted, reference, strict=True)])
            )
            backends[name] = {"accuracy": round(accuracy, 6), "agreement_with_torch": agreement}
        backends[name]["predictions_per_second"] = round(speed[name], 1)
    for name, entry in backends.items():
        entry["drop"] = round(_drop(task, backends["torch"], entry), 4)
        entry["passes"] = name == "torch" or entry["drop"] <= threshold
    recommended = next(
        (name for name in ("onnx-int8", "onnx") if backends.get(name, {}).get("passes")), "torch"
    )
    return {
        "task": task,
        "rows": len(labels),
        "threshold": threshold,
        "drop_unit": _DROP_UNITS[task],
        "backends": backends,
        "recommended": recommended,
    }


def _drop(task: str, reference: dict[str, Any], entry: dict[str, Any]) -> float:
    if task == "regression":
        base = reference["rmse"]
        return 0.0 if base == 0 else 100.0 * (entry["rmse"] - base) / base
    key = "f1" if task == "token-classification" else "accuracy"
    return 100.0 * (reference[key] - entry[key])


def _entities(result: dict[str, Any]) -> set[tuple[str, int, int]]:
    return {(e["label"], e["start"], e["end"]) for e in result["entities"]}


def tagged_rows(tokens: list[list[str]], tags: list[list[str]]) -> tuple[list[str], list[Any]]:
    """NER rows as the texts a served tagger gets (tokens joined by spaces) and each
    text's true entities as ``(type, start, end)`` character spans."""
    texts, entities = [], []
    for words, row_tags in zip(tokens, tags, strict=True):
        starts = []
        position = 0
        for word in words:
            starts.append(position)
            position += len(word) + 1
        texts.append(" ".join(words))
        entities.append(
            [
                (kind, starts[first], starts[last - 1] + len(words[last - 1]))
                for kind, first, last in entity_spans(row_tags)
            ]
        )
    return texts, entities


def run_optimize_job(ctx: JobContext) -> dict[str, Any]:
    """Export, quantise, run the parity rows, publish and attach; returns the record."""
    import torch

    from aimass.models.onnx import FP32_FILE, INT8_FILE, export_graph, quantize_int8
    from aimass.serving.predictor import load_predictor

    project = ctx.job.project
    spec = OptimizeSpec(**ctx.job.spec)
    version, dataset = resolve_optimization(ctx.store, ctx.artifacts, project, spec)
    rows = read_split(ctx.artifacts.resolve(dataset.uri), spec.split)
    texts: list[str]
    labels: list[Any]
    if version.task == "token-classification":
        texts, labels = tagged_rows(
            list(rows.tokens or [])[: spec.max_rows], list(rows.tags or [])[: spec.max_rows]
        )
    else:
        texts, labels = rows.texts[: spec.max_rows], list(rows.labels or [])[: spec.max_rows]
    if ctx.settings.num_threads:
        torch.set_num_threads(ctx.settings.num_threads)
    bundle = ctx.artifacts.resolve(version.uri)
    reference = load_predictor(bundle, device="cpu")
    log_line = f"exporting {version.ref} to ONNX; parity on {len(texts):,} rows of {dataset.ref}"
    ctx.store.jobs.log(ctx.job.id, log_line)
    with ctx.artifacts.staging() as stage:
        directory = stage / "graphs"
        directory.mkdir()
        model, example, per_token = _exportable(reference, texts[:2])
        export_graph(model, example, directory / FP32_FILE, per_token=per_token)
        _progress(ctx, 0.25)
        quantize_int8(directory / FP32_FILE, directory / INT8_FILE)
        _progress(ctx, 0.35)
        outputs: dict[str, list[dict[str, Any]]] = {}
        speed: dict[str, float] = {}
        threads = ctx.settings.num_threads or None
        for step, backend in enumerate(("torch", "onnx", "onnx-int8")):
            predictor = (
                reference
                if backend == "torch"
                else load_predictor(bundle, backend=backend, graph=directory, threads=threads)
            )
            predictor.predict(texts[:8])  # warm-up: first-run allocations are not the speed
            started = time.perf_counter()
            outputs[backend] = predictor.predict(texts)
            speed[backend] = len(texts) / max(time.perf_counter() - started, 1e-9)
            _progress(ctx, 0.35 + 0.2 * (step + 1))
        record = parity_record(version.task, labels, outputs, speed, spec.threshold)
        record.update(
            model=version.ref,
            digest=version.digest,
            dataset=dataset.ref,
            split=spec.split,
            files={name: _sha256(directory / name) for name in (FP32_FILE, INT8_FILE)},
            bytes={name: (directory / name).stat().st_size for name in (FP32_FILE, INT8_FILE)},
        )
        payload = json.dumps(record, indent=2, sort_keys=True).encode()
        (directory / "parity.json").write_bytes(payload)
        uri = ctx.artifacts.publish(directory, f"graphs/{hashlib.sha256(payload).hexdigest()}")
    ref = Ref(name=version.name, version=version.version)
    summary = {k: record[k] for k in ("recommended", "threshold", "drop_unit", "rows", "dataset")}
    summary["backends"] = record["backends"]
    ctx.store.registry.attach(
        project, ref, kind=ATTACHMENT_KIND, name="onnx", uri=uri, summary=summary
    )
    ctx.store.registry.update_version(project, ref, metrics={"serving": {**summary, "graphs": uri}})
    log.info(
        "ONNX graphs attached",
        extra={"model": version.ref, "recommended": record["recommended"], "uri": uri},
    )
    return {"model": version.name, "version": version.version, "graphs": uri, **summary}


def _exportable(predictor: Predictor, texts: list[str]) -> tuple[Any, dict[str, Any], bool]:
    """The PyTorch model of ``predictor`` (eval mode, CPU), a batch of ``texts`` as the
    predictor feeds it (the graph's inputs), and whether its outputs are per token."""
    from aimass.models.text import collate, encode_texts
    from aimass.serving.sequence import SequencePredictor
    from aimass.serving.tokens import TokenClassificationPredictor

    if isinstance(predictor, SequencePredictor):
        encoded = encode_texts(predictor.tokenizer, texts, max_length=predictor.max_length)
        batch = collate(encoded, list(range(len(texts))), "cpu")
        return predictor.model.cpu().eval(), batch, False
    if isinstance(predictor, TokenClassificationPredictor):
        encoded = predictor.tokenizer(
            texts,
            truncation=True,
            max_length=predictor.max_length,
            padding=True,
            return_tensors="pt",
        )
        batch = {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]}
        return predictor.model.cpu().eval(), batch, True
    raise UnsupportedModel(f"a {predictor.task!r} model has no PyTorch model to export to ONNX")


def _progress(ctx: JobContext, fraction: float) -> None:
    if ctx.store.jobs.report(ctx.job.id, progress=fraction, attempt=ctx.job.attempt):
        raise Cancelled(f"job {ctx.job.id} was cancelled")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
