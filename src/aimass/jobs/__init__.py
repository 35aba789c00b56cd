"""Jobs: the offline composition root (training, and later evaluation and batch jobs)."""

from aimass.jobs.runner import JobContext, JobReporter, get_job_kind, register_job_kind, run_job
from aimass.jobs.train import TrainSpec, config_digest, resolve_inputs

__all__ = [
    "JobContext",
    "JobReporter",
    "TrainSpec",
    "config_digest",
    "get_job_kind",
    "register_job_kind",
    "resolve_inputs",
    "run_job",
]
