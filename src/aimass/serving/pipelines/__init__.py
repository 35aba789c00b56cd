"""Pipelines: registered model versions and built-in steps composed into a small DAG.

:mod:`~aimass.serving.pipelines.spec` checks a spec (step types, links, cycles,
the flow of predictions, label sets); :mod:`~aimass.serving.pipelines.engine`
runs a pinned spec over a batch of inputs with whatever predict path the caller
supplies (the server's micro-batchers, or a predictor in process).
"""

from aimass.serving.pipelines.engine import (
    Explain,
    PipelineRun,
    Predict,
    detect_language,
    pseudonym_key,
    run_pipeline,
)
from aimass.serving.pipelines.spec import (
    ABSTAIN,
    LANGUAGES,
    MAX_STEPS,
    STEP_TYPES,
    StepType,
    check_labels,
    check_spec,
    entry_of,
    model_refs,
    output_labels,
    pinned_version,
    topological_order,
)

__all__ = [
    "ABSTAIN",
    "LANGUAGES",
    "MAX_STEPS",
    "STEP_TYPES",
    "Explain",
    "PipelineRun",
    "Predict",
    "StepType",
    "check_labels",
    "check_spec",
    "detect_language",
    "entry_of",
    "model_refs",
    "output_labels",
    "pinned_version",
    "pseudonym_key",
    "run_pipeline",
    "topological_order",
]
