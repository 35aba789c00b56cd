"""Jobs: the offline composition root (training, evaluation, and later batch jobs)."""

from aimass.jobs.evaluate import (
    EvaluateSpec,
    attachment_name,
    resolve_evaluation,
    submit_evaluation,
)
from aimass.jobs.runner import JobContext, JobReporter, get_job_kind, register_job_kind, run_job
from aimass.jobs.train import TrainSpec, config_digest, resolve_inputs

__all__ = [
    "EvaluateSpec",
    "JobContext",
    "JobReporter",
    "TrainSpec",
    "attachment_name",
    "config_digest",
    "get_job_kind",
    "register_job_kind",
    "resolve_evaluation",
    "resolve_inputs",
    "run_job",
    "submit_evaluation",
]
