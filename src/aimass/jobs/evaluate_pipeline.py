"""Evaluating a pipeline version: the report a classifier gets, of the pipeline's answers.

A pipeline answers with a label and probabilities like a classifier, so it gets the
classification report (quality, calibration, fairness, robustness, explanations,
resources) computed on what the whole pipeline returns: de-identification, routing,
thresholds and label mapping included. Its label set is every label the pipeline can
answer with (:func:`~aimass.serving.pipelines.output_labels`) and ``abstain`` when
a threshold step can abstain: an abstained input scores all its probability on
``abstain`` and so counts as a wrong answer, the confusion matrix shows how often
each class was abstained on, macro averages leave ``abstain`` out (it is never a
true class), and the quality section adds the coverage (the share answered) and
the accuracy of the answers. An example's explanation is that of the model step
that decided it, on the text that model saw (de-identified when the pipeline
de-identifies); an input an ensemble decided has no single model to explain.

The report is published like a model's and recorded on the pipeline version
(``evaluations``), whose models stay pinned: the report describes exactly the
versions that version runs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from aimass.artifacts.storage import ArtifactStore
from aimass.entities import DatasetVersion, PipelineVersion
from aimass.errors import InvalidArgument, UnsupportedModel
from aimass.jobs.evaluate import EvaluateSpec, build_and_publish, check_rows, dataset_of
from aimass.jobs.runner import JobContext
from aimass.refs import parse_ref
from aimass.serving.pipelines import (
    ABSTAIN,
    output_labels,
    pinned_version,
    pseudonym_key,
    run_pipeline,
)
from aimass.store import Store

__all__ = [
    "LoadedPipeline",
    "pipeline_pins",
    "resolve_pipeline_evaluation",
    "run_pipeline_evaluation",
]

log = logging.getLogger("aimass.jobs.evaluate")
_LABEL_TYPES = ("string", "integer")


def resolve_pipeline_evaluation(
    store: Store, artifacts: ArtifactStore, project: str, spec: EvaluateSpec
) -> tuple[PipelineVersion, DatasetVersion]:
    """Look up the pipeline version and the dataset and check that they fit together:
    every pinned model still exists as pinned, the dataset's labels are ones the
    pipeline answers with (before any model loads)."""
    from aimass.evaluation import check_labels

    assert spec.pipeline is not None
    pipeline = store.pipelines.resolve(project, parse_ref(spec.pipeline, kind="pipeline"))
    for pin in pipeline_pins(pipeline):
        pinned_version(pin, store.registry.get_version(project, parse_ref(pin["model"])))
    dataset = dataset_of(store, project, spec.dataset)
    schema = dataset.schema
    if schema.label_field is None or schema.label_type is None:
        raise InvalidArgument(f"dataset {dataset.ref} is unlabelled; evaluation needs true labels")
    if schema.label_type not in _LABEL_TYPES:
        raise InvalidArgument(
            f"the dataset's labels do not match the pipeline's: pipeline {pipeline.ref} answers "
            f"with class labels and {dataset.ref} has {schema.label_type} labels"
        )
    answers = tuple(label for label in output_labels(pipeline.spec) if label != ABSTAIN)
    try:
        check_labels("classification", answers, list(dataset.labels))
    except InvalidArgument as exc:
        # The same message as for a model, about the pipeline's answers.
        message = exc.message.replace("the model's", "the pipeline's")
        raise InvalidArgument(f"pipeline {pipeline.ref}: {message}") from None
    check_rows(spec, dataset)
    return pipeline, dataset


def pipeline_pins(pipeline: PipelineVersion) -> list[dict[str, Any]]:
    """The pins of every model a pipeline version runs (a model step's, an ensemble's)."""
    pins: list[dict[str, Any]] = []
    for step in pipeline.spec["steps"]:
        pins += [step["pin"]] if step["type"] == "model" else step.get("pins", [])
    return pins


class LoadedPipeline:
    """A pipeline version run in this process, its models loaded once each (an evaluated
    pipeline, a distillation's teacher)."""

    def __init__(self, ctx: JobContext, pipeline: PipelineVersion, options: Any) -> None:
        from aimass.serving.predictor import load_predictor

        self.pipeline = pipeline
        self.options = options
        self.labels = tuple(output_labels(pipeline.spec))
        self.key = pseudonym_key(pipeline.spec, ctx.settings.home, pipeline.project)
        self.predictors: dict[str, Any] = {}
        project = pipeline.project
        for pin in pipeline_pins(pipeline):
            if pin["model"] not in self.predictors:
                version = ctx.store.registry.get_version(project, parse_ref(pin["model"]))
                directory = ctx.artifacts.resolve(pinned_version(pin, version).uri)
                self.predictors[pin["model"]] = load_predictor(
                    directory, device=ctx.settings.device
                )

    def run(self, texts: Sequence[str], method: str | None = None) -> list[dict[str, Any]]:
        """The pipeline's result for each text (with explanations when ``method`` is set)."""
        batch_size = self.options.batch_size

        async def predict(pin: dict[str, Any], batch: list[str]) -> list[dict[str, Any]]:
            return list(self.predictors[pin["model"]].predict(batch, batch_size=batch_size))

        async def explain(
            pin: dict[str, Any], batch: list[str], results: list[dict[str, Any]], how: Any
        ) -> list[dict[str, Any]]:
            return list(self.predictors[pin["model"]].with_explanations(batch, results, how))

        run = asyncio.run(
            run_pipeline(
                self.pipeline.spec,
                list(texts),
                predict=predict,
                explain=explain,
                method=method,
                key=self.key,
            )
        )
        return run.results

    def score(self, texts: Sequence[str]) -> np.ndarray:
        """(N, C) probabilities over :attr:`labels`; an abstained input is all ``abstain``,
        and a row is one-hot on the answer when label mapping made another label likelier."""
        column = {label: i for i, label in enumerate(self.labels)}
        scores = np.zeros((len(texts), len(self.labels)))
        for i, result in enumerate(self.run(texts)):
            label = result.get("label")
            if result.get("abstained") or label not in column:
                scores[i, column.get(ABSTAIN, 0)] = 1.0
                continue
            for name, p in (result.get("probabilities") or {}).items():
                if name in column:
                    scores[i, column[name]] = float(p)
            if scores[i].argmax() != column[label]:
                scores[i] = 0.0
                scores[i, column[label]] = 1.0
        return scores

    def explain(self, texts: Sequence[str]) -> list[dict[str, Any]]:
        """The explanation of the model step that decided each text."""
        found = []
        for result in self.run(texts, method=self.options.explain_method):
            explanation = result.get("explanation")
            if explanation is None:
                decided = result.get("decided_by") or {}
                raise UnsupportedModel(
                    f"an input was decided by step {decided.get('step')!r}, an ensemble of "
                    f"{', '.join(decided.get('models') or [])}: an average of models has no "
                    "single model to explain"
                )
            found.append(explanation)
        return found

    def describe(self, ctx: JobContext) -> Any:
        """The pipeline as :class:`~aimass.evaluation.ModelUnderTest`."""
        import torch

        from aimass.evaluation import ModelUnderTest
        from aimass.models.hf import num_parameters

        networks = [getattr(p, "model", None) for p in self.predictors.values()]
        return ModelUnderTest(
            name=self.pipeline.name,
            version=self.pipeline.version,
            digest=self.pipeline.digest,
            task="classification",
            architecture="pipeline",
            labels=self.labels,
            score=self.score,
            predict=self.run,
            explain=self.explain,
            parameters=sum(num_parameters(n) for n in networks if isinstance(n, torch.nn.Module)),
            bundle_bytes=sum(
                int(f["size"]) for p in self.predictors.values() for f in p.manifest.files.values()
            ),
            device=str(next(iter(self.predictors.values())).device),
            threads=torch.get_num_threads(),
            memory=None,
            abstain=ABSTAIN if ABSTAIN in self.labels else None,
        )


def run_pipeline_evaluation(ctx: JobContext, spec: EvaluateSpec) -> dict[str, Any]:
    """Build the pipeline's report, publish it and record it on the pipeline version."""
    import torch

    project = ctx.job.project
    pipeline, dataset = resolve_pipeline_evaluation(ctx.store, ctx.artifacts, project, spec)
    if ctx.settings.num_threads:
        torch.set_num_threads(ctx.settings.num_threads)
    under_test = LoadedPipeline(ctx, pipeline, spec.report_options())
    name, uri, summary = build_and_publish(ctx, spec, dataset, under_test.describe(ctx))
    ctx.store.pipelines.record_evaluation(
        project, pipeline.name, pipeline.version, name, {**summary, "report": uri}
    )
    log.info(
        "pipeline evaluation recorded",
        extra={"pipeline": pipeline.ref, "report": name, "uri": uri},
    )
    return {
        "pipeline": pipeline.name,
        "version": pipeline.version,
        "name": name,
        "report": uri,
        "summary": summary,
    }
