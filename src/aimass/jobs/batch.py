"""The ``batch-predict`` job: a model version over a dataset version → a result dataset.

The result is a new, content-addressed dataset version (Parquet) whose ``label``
is the prediction, with ``score``/``probabilities`` (classification) as extra
fields, the input's own label as ``true_label`` and its split and other fields
kept, so it can be evaluated, filtered or used to train a student model.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from aimass.data.importer import ImportOptions, prepare_dataset
from aimass.data.readers import Record
from aimass.data.tables import publish_dataset, read_split
from aimass.errors import Cancelled, InvalidArgument
from aimass.jobs.runner import JobContext
from aimass.refs import parse_ref, validate_name
from aimass.serving.policy import parse_policy

__all__ = ["BATCH_PREDICT", "BatchPredictSpec"]

BATCH_PREDICT = "batch-predict"
_CHUNK = 256


@dataclass(frozen=True)
class BatchPredictSpec:
    """What to predict: stored in the job record as its ``spec``.

    Attributes:
        model: ``NAME``, ``NAME@VERSION`` or ``NAME@ALIAS`` (resolved when the job is
            submitted, so a later alias move does not change what it runs).
        dataset: ``NAME`` or ``NAME@VERSION``.
        output: Dataset name for the results.
        split: Only this split (all rows when ``None``).
        output_policy: The submitting key's output policy (``labels``, ``top_k=N``,
            ``round=D``), applied to every stored prediction; ``None``: full output.
    """

    model: str
    dataset: str
    output: str
    split: str | None = None
    output_policy: str | None = None

    def __post_init__(self) -> None:
        parse_ref(self.model, kind="model")
        parse_ref(self.dataset, kind="dataset")
        validate_name(self.output, kind="dataset")
        if self.split not in (None, "train", "validation", "test"):
            raise InvalidArgument(f"split {self.split!r}: use train, validation or test")
        parse_policy(self.output_policy)

    def to_dict(self) -> dict[str, Any]:
        """JSON form for the job record."""
        return asdict(self)


def _rows(
    texts: list[str],
    labels: list[Any] | None,
    extras: dict[str, list[Any]],
    results: list[dict[str, Any]],
    splits: list[str],
) -> list[Record]:
    rows = []
    for i, (text, result) in enumerate(zip(texts, results, strict=True)):
        fields: dict[str, Any] = {"text": text, "split": splits[i]}
        fields["label"] = result.get("label", result.get("value"))
        if "score" in result:
            fields["score"] = str(result["score"])
        if "probabilities" in result:
            fields["probabilities"] = json.dumps(result["probabilities"], sort_keys=True)
        if labels is not None:
            fields["true_label"] = None if labels[i] is None else str(labels[i])
        for name, values in extras.items():
            fields.setdefault(name, values[i])
        rows.append(Record(line=i + 1, fields=fields))
    return rows


def run_batch_predict(ctx: JobContext) -> dict[str, Any]:
    """Predict every row in chunks (progress and cancellation per chunk), then publish."""
    from aimass.serving.predictor import load_predictor

    spec = BatchPredictSpec(**ctx.job.spec)
    project = ctx.job.project
    model = ctx.store.registry.get_version(project, parse_ref(spec.model, kind="model"))
    ref = parse_ref(spec.dataset, kind="dataset")
    dataset = ctx.store.datasets.get(project, ref.name, ref.version)
    path = ctx.artifacts.resolve(dataset.uri)
    predictor = load_predictor(ctx.artifacts.resolve(model.uri), device=ctx.settings.device)
    splits = [s for s in ("train", "validation", "test") if spec.split in (None, s)]
    texts, labels, split_of = [], [], []
    extras: dict[str, list[Any]] = {}
    for split in splits:
        data = read_split(path, split)
        texts += data.texts
        labels += data.labels or [None] * len(data)
        split_of += [split] * len(data)
        for name, values in data.extras.items():
            extras.setdefault(name, []).extend(values)
    if not texts:
        raise InvalidArgument(f"dataset {dataset.ref} has no rows in split {spec.split!r}")
    results: list[dict[str, Any]] = []
    ctx.store.jobs.log(
        ctx.job.id, f"predicting {len(texts):,} rows of {dataset.ref} with {model.ref}"
    )
    for start in range(0, len(texts), _CHUNK):
        results += predictor.predict(texts[start : start + _CHUNK])
        stop = ctx.store.jobs.report(
            ctx.job.id, progress=len(results) / len(texts), attempt=ctx.job.attempt
        )
        if stop:
            raise Cancelled(f"job {ctx.job.id} was cancelled after {len(results):,} rows")
    policy = parse_policy(spec.output_policy)
    if not policy.is_full:
        results = policy.apply(results)
    has_labels = dataset.schema.label_type is not None
    records = _rows(texts, labels if has_labels else None, extras, results, split_of)
    label_type = "float" if model.task == "regression" else "string"
    prepared = prepare_dataset(
        records,
        ImportOptions(
            label_field="label",
            label_type=label_type,
            split_field="split",
            max_text_chars=ctx.settings.max_text_chars,
        ),
    )
    provenance = {
        "source": BATCH_PREDICT,
        "model": model.ref,
        "model_digest": model.digest,
        "dataset": dataset.ref,
        "dataset_digest": dataset.digest,
        "job_id": ctx.job.id,
    }
    version, _ = publish_dataset(
        prepared,
        store=ctx.store,
        artifacts=ctx.artifacts,
        name=spec.output,
        project=project,
        fmt=BATCH_PREDICT,
        provenance=provenance,
    )
    return {
        "dataset": version.name,
        "version": version.version,
        "rows": version.num_rows,
        "model": model.ref,
    }
