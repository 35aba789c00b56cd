"""The ``evaluate`` job: model version + dataset split → evaluation report attached to the version.

It lives in ``jobs`` with the other job kinds; it composes serving (the
predictor, the memory probe) and the evaluation package, which sees neither.

The report (``report.html`` and ``report.json``) is written to a staging
directory, published under ``reports/<sha256 of report.json>/`` in the
artifact store, and only then attached to the version (``kind="evaluation"``)
with its headline numbers, which are also merged into the version's
``metrics["evaluation"]``. A failed or cancelled job leaves the registry as it was.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass, field
from typing import Any

from aimass.artifacts.bundle import verify_bundle
from aimass.artifacts.storage import ArtifactStore
from aimass.data.splits import SPLITS
from aimass.data.tables import read_split
from aimass.entities import Attachment, DatasetVersion, Job, ModelVersion
from aimass.errors import InvalidArgument
from aimass.jobs.runner import JobContext
from aimass.refs import Ref, parse_ref, validate_name
from aimass.store import Store

__all__ = [
    "EvaluateSpec",
    "attachment_name",
    "build_and_publish",
    "check_labelled",
    "check_rows",
    "dataset_of",
    "resolve_evaluation",
    "submit_evaluation",
]

log = logging.getLogger("aimass.jobs.evaluate")
ATTACHMENT_KIND = "evaluation"


@dataclass(frozen=True)
class EvaluateSpec:
    """What to evaluate: stored in the job record as its ``spec``.

    Attributes:
        model: ``NAME@VERSION`` (aliases are resolved when the job is submitted).
        dataset: ``NAME`` or ``NAME@VERSION`` of a labelled dataset.
        split: ``train``, ``validation`` or ``test``.
        group_field: Dataset field to compute fairness by, if any.
        options: :class:`~aimass.evaluation.ReportOptions` fields to override.
        pipeline: ``NAME@VERSION`` of a pipeline to evaluate instead of a model (the
            report is stored on the pipeline version: :mod:`aimass.jobs.evaluate_pipeline`).
    """

    model: str | None = None
    dataset: str = ""
    split: str = "test"
    group_field: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    pipeline: str | None = None

    def __post_init__(self) -> None:
        if (self.model is None) == (self.pipeline is None):
            raise InvalidArgument(
                "an evaluation names a model or a pipeline: give exactly one of them"
            )
        if self.model is not None:
            parse_ref(self.model, kind="model")
        else:
            parse_ref(str(self.pipeline), kind="pipeline")
        if not self.dataset:
            raise InvalidArgument("an evaluation needs a labelled dataset: give its name")
        parse_ref(self.dataset, kind="dataset")
        if self.split not in SPLITS:
            raise InvalidArgument(f"unknown split {self.split!r}; use one of {', '.join(SPLITS)}")
        if self.group_field is not None and not self.group_field.strip():
            raise InvalidArgument("the group field name is empty")
        self.report_options()

    def report_options(self) -> Any:
        """The options as :class:`~aimass.evaluation.ReportOptions` (validated)."""
        from aimass.evaluation import ReportOptions

        known = ReportOptions.__dataclass_fields__
        unknown = sorted(set(self.options) - set(known))
        if unknown:
            raise InvalidArgument(
                f"unknown report options: {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        options = dict(self.options)
        if options.get("perturbations") is not None:
            options["perturbations"] = tuple(options["perturbations"])
        return ReportOptions(**options)

    def to_dict(self) -> dict[str, Any]:
        """JSON form for the job record (``pipeline`` only when one is evaluated)."""
        data = {
            "model": self.model,
            "dataset": self.dataset,
            "split": self.split,
            "group_field": self.group_field,
            "options": self.options,
        }
        return data if self.pipeline is None else {**data, "pipeline": self.pipeline}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EvaluateSpec:
        """Inverse of :meth:`to_dict`."""
        return cls(**data)


def dataset_of(store: Store, project: str, text: str) -> DatasetVersion:
    """The dataset version ``NAME`` (the latest) or ``NAME@VERSION`` names."""
    ref = parse_ref(text, kind="dataset")
    if ref.alias not in (None, "latest"):
        raise InvalidArgument(f"dataset reference {text!r}: use NAME or NAME@VERSION")
    return store.datasets.get(project, ref.name, ref.version)


def resolve_evaluation(
    store: Store, artifacts: ArtifactStore, project: str, spec: EvaluateSpec
) -> tuple[ModelVersion, DatasetVersion]:
    """Look up the version and dataset and check that they fit together (before any model loads)."""
    from aimass.evaluation import get_report_sections

    assert spec.model is not None  # a pipeline's evaluation: evaluate_pipeline
    version = store.registry.get_version(project, parse_ref(spec.model, kind="model"))
    dataset = dataset_of(store, project, spec.dataset)
    get_report_sections(version.task)
    task_config = verify_bundle(artifacts.resolve(version.uri)).task_config
    if version.task in _LABELLED:
        check_labelled(version, dataset, task_config)
    else:
        _check_language_model(version, dataset, task_config)
    check_rows(spec, dataset)
    return version, dataset


def check_rows(spec: EvaluateSpec, dataset: DatasetVersion) -> None:
    """The report options name known explainers and perturbations, the group field is a
    field of ``dataset`` and the split has rows: InvalidArgument naming what is wrong."""
    from aimass.explain import get_explainer

    options = spec.report_options()
    if options.explain_examples:
        get_explainer(options.explain_method)
    if options.perturbations:
        from aimass.evaluation import get_perturbation

        for name in options.perturbations:
            get_perturbation(name)
    schema = dataset.schema
    if spec.group_field is not None and spec.group_field not in schema.extra_fields:
        fields = ", ".join(schema.extra_fields) or "none"
        raise InvalidArgument(
            f"group field {spec.group_field!r} does not exist in dataset {dataset.ref} "
            f"(its fields: {fields}); import the data with that column to group by it",
            field=spec.group_field,
        )
    if not dataset.splits.get(spec.split):
        raise InvalidArgument(
            f"dataset {dataset.ref} has no {spec.split!r} rows "
            f"(splits: {', '.join(f'{k} {v}' for k, v in dataset.splits.items())}); use --split"
        )


# Dataset label types each labelled task accepts; the other tasks are language models.
_LABELLED = {
    "classification": ("string", "integer"),
    "regression": ("integer", "float"),
    "token-classification": ("tags",),
}
_PROMPT_KINDS = {"chat": "pairs", "plain": "pairs", "none": "text"}


def check_labelled(
    version: ModelVersion, dataset: DatasetVersion, task_config: dict[str, Any]
) -> None:
    """``dataset`` has labels of the kind ``version``'s task predicts (and, for a
    classifier, only labels it knows); the error names both."""
    from aimass.evaluation import check_labels

    schema = dataset.schema
    if schema.label_field is None or schema.label_type is None:
        raise InvalidArgument(f"dataset {dataset.ref} is unlabelled; evaluation needs true labels")
    if schema.label_type not in _LABELLED[version.task]:
        raise InvalidArgument(
            f"the dataset's labels do not match the model's: {version.ref} is a {version.task} "
            f"model and {dataset.ref} has {schema.label_type} labels"
            + (
                "; import BIO-tagged data with --kind tokens"
                if version.task == "token-classification"
                else ""
            )
        )
    if version.task == "classification":
        check_labels(version.task, tuple(task_config.get("labels", ())), list(dataset.labels))
    elif version.task == "token-classification":
        known = set(task_config.get("labels", ()))
        unknown = sorted(set(dataset.labels) - known)
        if unknown:
            # Same message as the per-row check, from the dataset's recorded tag set.
            check_labels(version.task, tuple(task_config["labels"]), [unknown])


def _check_language_model(
    version: ModelVersion, dataset: DatasetVersion, task_config: dict[str, Any]
) -> None:
    """The dataset kind must be one the model's task trains on (and, for a causal LM, the one
    it was trained on: pairs for an instruction-tuned model, text for a plain one)."""
    from aimass.training.tasks import get_task

    kind = dataset.schema.kind
    try:
        get_task(version.task).check_kind(dataset.schema)
    except InvalidArgument as exc:
        raise InvalidArgument(
            f"dataset {dataset.ref} cannot evaluate {version.ref}: {exc.message}", kind=kind
        ) from None
    expected = _PROMPT_KINDS.get(str(task_config.get("prompt_format")))
    if version.task == "causal-lm" and expected is not None and kind != expected:
        trained = (
            "instruction-tuned on prompt/response pairs"
            if expected == "pairs"
            else ("trained on plain text")
        )
        raise InvalidArgument(
            f"dataset {dataset.ref} is of kind {kind!r} but {version.ref} was {trained}; "
            f"evaluate it on a {expected!r} dataset (import one with --kind {expected})",
            kind=kind,
        )


def submit_evaluation(
    store: Store, artifacts: ArtifactStore, project: str, spec: EvaluateSpec
) -> Job:
    """Check ``spec`` and queue an ``evaluate`` job, with the model (or pipeline) alias and
    the dataset pinned to the versions they name now (a report must not change subject
    mid-queue)."""
    if spec.pipeline is not None:
        from aimass.jobs.evaluate_pipeline import resolve_pipeline_evaluation

        pipeline, dataset = resolve_pipeline_evaluation(store, artifacts, project, spec)
        pinned = EvaluateSpec(
            **{**spec.to_dict(), "pipeline": pipeline.ref, "dataset": dataset.ref}
        )
        return store.jobs.create(project, "evaluate", pinned.to_dict())
    version, dataset = resolve_evaluation(store, artifacts, project, spec)
    pinned = EvaluateSpec(**{**spec.to_dict(), "model": version.ref, "dataset": dataset.ref})
    return store.jobs.create(project, "evaluate", pinned.to_dict())


def attachment_name(dataset: DatasetVersion, split: str, group_field: str | None) -> str:
    """``<dataset>-v<version>-<split>[-by-<field>]`` as a valid slug (≤ 63 characters)."""
    name = f"{dataset.name}-v{dataset.version}-{split}"
    if group_field:
        slug = re.sub(r"[^a-z0-9._-]+", "-", group_field.lower()).strip("-._") or "field"
        name += f"-by-{slug}"
    return validate_name(name[:63].rstrip("-._"), kind="attachment")


def _model_under_test(ctx: JobContext, version: ModelVersion, options: Any) -> Any:
    """Load the version's predictor and describe it to the evaluation package."""
    import torch

    from aimass.evaluation import ModelUnderTest
    from aimass.models.hf import num_parameters
    from aimass.serving.predictor import load_predictor
    from aimass.serving.probe import measure_serving_memory

    if ctx.settings.num_threads:
        torch.set_num_threads(ctx.settings.num_threads)
    directory = ctx.artifacts.resolve(version.uri)
    predictor = load_predictor(directory, device=ctx.settings.device)
    network = getattr(predictor, "model", None)

    def memory(texts: Any) -> dict[str, Any]:
        return measure_serving_memory(
            directory, list(texts), device=ctx.settings.device, threads=ctx.settings.num_threads
        )

    if version.task in ("classification", "regression"):
        task_parts = _scored_parts(predictor, options)
    else:
        task_parts = _token_parts(predictor, options)
    return ModelUnderTest(
        name=version.name,
        version=version.version,
        digest=version.digest,
        task=version.task,
        architecture=predictor.manifest.architecture,
        parameters=num_parameters(network) if isinstance(network, torch.nn.Module) else 0,
        bundle_bytes=sum(int(f["size"]) for f in predictor.manifest.files.values()),
        metrics=version.metrics,
        privacy=version.privacy,
        device=str(predictor.device),
        threads=torch.get_num_threads(),
        memory=memory,
        **task_parts,
    )


def _scored_parts(predictor: Any, options: Any) -> dict[str, Any]:
    """Classification/regression: class scores, the public predict path, explanations."""
    target = predictor.explain_target()
    method = options.explain_method
    return {
        "labels": target.labels,
        "score": target.score,
        "predict": lambda texts: predictor.predict(list(texts), batch_size=options.batch_size),
        "explain": lambda texts: predictor.explain(list(texts), method=method),
    }


def _token_parts(predictor: Any, options: Any) -> dict[str, Any]:
    """Language models and NER: the training task's own loss / tag reading, generation, and
    a tagger's explanations (language models: why the report has none)."""
    from aimass.explain import explainers_for, list_explainers
    from aimass.jobs.scoring import TaskScorer

    scorer = TaskScorer(predictor, seed=options.seed)
    applicable = explainers_for(predictor.task)
    parts: dict[str, Any] = {
        "labels": tuple(predictor.manifest.task_config.get("labels", ())),
        "score": _no_scores,
        "explain": None,
        "explain_unsupported": (
            f"reports of {predictor.task} models do not explain examples yet; explain "
            "a prediction with 'aimass predict --explain'"
            if applicable
            else f"no explainer applies to {predictor.task!r} models: the explainers "
            f"({', '.join(e.name for e in list_explainers())}) attribute a class "
            "score, a value, an entity, a masked LM's fill or a causal LM's generated text"
        ),
    }
    if predictor.task == "token-classification":
        method = options.explain_method
        parts.update(
            tag=scorer.tags,
            predict=lambda texts: predictor.predict(list(texts), batch_size=options.batch_size),
            explain=lambda texts: predictor.explain(list(texts), method=method),
        )
        return parts
    parts["nll"] = scorer.nll
    if hasattr(predictor, "generate"):
        tokens = options.sample_tokens

        def generate(prompt: str, max_new_tokens: int) -> str:
            return str(
                predictor.generate(prompt, max_new_tokens=max_new_tokens, temperature=0)["text"]
            )

        parts.update(
            generate=generate,
            predict=lambda texts: [generate(t, tokens) for t in texts],
            predict_unit="generations",
        )
    else:
        parts.update(
            predict=lambda texts: scorer.nll(list(texts), None),
            predict_unit="texts scored",
        )
    return parts


def _no_scores(texts: Any) -> Any:
    raise AssertionError("token-level reports never ask for class scores")


def publish_report(ctx: JobContext, report: Any) -> str:
    """Stage ``report.html`` + ``report.json`` and publish them; returns the directory URI."""
    payload = report.json_bytes()
    key = f"reports/{hashlib.sha256(payload).hexdigest()}"
    with ctx.artifacts.staging() as stage:
        directory = stage / "report"
        directory.mkdir()
        (directory / "report.json").write_bytes(payload)
        (directory / "report.html").write_text(report.html(), encoding="utf-8")
        return ctx.artifacts.publish(directory, key)


def evaluation_data(
    ctx: JobContext, spec: EvaluateSpec, dataset: DatasetVersion, model: Any
) -> Any:
    """The rows of ``spec``'s split as :class:`~aimass.evaluation.EvaluationData`, their
    labels checked against ``model``'s."""
    from aimass.evaluation import EvaluationData, check_labels

    rows = read_split(ctx.artifacts.resolve(dataset.uri), spec.split)
    truth = rows.tags if dataset.schema.kind == "tokens" else rows.labels
    labels = list(truth) if truth is not None else [None] * len(rows)
    check_labels(model.task, model.labels, labels)
    return EvaluationData(
        name=dataset.name,
        version=dataset.version,
        digest=dataset.digest,
        split=spec.split,
        texts=rows.texts,
        labels=labels,
        group_field=spec.group_field,
        groups=rows.extras.get(spec.group_field) if spec.group_field else None,
        fields=tuple(dataset.schema.extra_fields),
        kind=dataset.schema.kind,
        tokens=rows.tokens,
        targets=rows.targets,
    )


def build_and_publish(
    ctx: JobContext, spec: EvaluateSpec, dataset: DatasetVersion, model: Any
) -> tuple[str, str, dict[str, Any]]:
    """Build ``model``'s report on ``spec``'s rows and publish it: ``(report name, URI,
    summary)``, the summary with the dataset, split and headline numbers."""
    from aimass.evaluation import build_report
    from aimass.training.callbacks import CallbackList

    data = evaluation_data(ctx, spec, dataset, model)
    progress = CallbackList(ctx.callbacks)
    report = build_report(
        model,
        data,
        spec.report_options(),
        on_phase=progress.on_phase,
        on_advance=progress.on_phase_advance,
    )
    uri = publish_report(ctx, report)
    summary = {
        "dataset": dataset.ref,
        "split": spec.split,
        "group_field": spec.group_field,
        "created_at": report.document["created_at"],
        **report.summary,
    }
    return attachment_name(dataset, spec.split, spec.group_field), uri, summary


def run_evaluate_job(ctx: JobContext) -> dict[str, Any]:
    """Build the report, publish it, attach it to the version; returns the result."""
    project = ctx.job.project
    spec = EvaluateSpec.from_dict(ctx.job.spec)
    if spec.pipeline is not None:
        from aimass.jobs.evaluate_pipeline import run_pipeline_evaluation

        return run_pipeline_evaluation(ctx, spec)
    options = spec.report_options()
    version, dataset = resolve_evaluation(ctx.store, ctx.artifacts, project, spec)
    model = _model_under_test(ctx, version, options)
    name, uri, summary = build_and_publish(ctx, spec, dataset, model)
    ref = Ref(name=version.name, version=version.version)
    attachment: Attachment = ctx.store.registry.attach(
        project, ref, kind=ATTACHMENT_KIND, name=name, uri=uri, summary=summary
    )
    # Re-read just before writing: another evaluation may have finished meanwhile.
    current = ctx.store.registry.get_version(project, ref).metrics
    evaluations = dict(current.get("evaluation") or {})
    evaluations[name] = {**summary, "report": uri}
    ctx.store.registry.update_version(project, ref, metrics={"evaluation": evaluations})
    log.info("evaluation attached", extra={"model": version.ref, "attachment": name, "uri": uri})
    return {
        "model": version.name,
        "version": version.version,
        "attachment": attachment.name,
        "report": uri,
        "summary": summary,
    }
