"""Restart safety: queued jobs wait, dead running jobs resume from a checkpoint or fail."""

from __future__ import annotations

import time

import pytest
from safetensors.torch import load_file

from aimass.entities import JobStatus
from aimass.jobs.pool import recover_stale_jobs
from aimass.jobs.train import TrainSpec
from aimass.training.callbacks import Callback

SPEC = TrainSpec(
    dataset="s",
    base="tiny",
    model="m",
    config={"mode": "finetune", "epochs": 3, "lr": 1e-3, "batch_size": 16},
)


class ProcessDied(BaseException):
    """Not an Exception: the runner cannot record it, as when the process is killed."""


class DieInEpoch(Callback):
    def __init__(self, epoch):
        self.epoch = epoch

    def on_step_end(self, state):
        if state.epoch == self.epoch:
            raise ProcessDied


def bundle_weights(ws, ref):
    version = ws.models.get(ref)
    return load_file(str(ws.artifacts.resolve(version.uri) / "model.safetensors"))


def test_a_job_killed_after_a_checkpoint_resumes_and_matches_an_uninterrupted_run(ready):
    reference = ready.jobs.train(TrainSpec(**{**SPEC.to_dict(), "model": "reference"}))
    job = ready.jobs.submit_training(SPEC)
    with pytest.raises(ProcessDied):
        ready.jobs.run(job.id, callbacks=[DieInEpoch(2)])
    assert ready.jobs.get(job.id).status == JobStatus.RUNNING  # the process "died" mid-job
    recovered = recover_stale_jobs(ready.store, ready.artifacts, stale_after=0)
    assert [(j.id, action) for j, action in recovered] == [(job.id, "resumed")]
    assert ready.jobs.get(job.id).status == JobStatus.QUEUED
    done = ready.jobs.run(job.id)
    assert done.status == JobStatus.SUCCEEDED and done.attempt == 2
    messages = [line.message for line in ready.jobs.logs(job.id)]
    assert any("resumed from the checkpoint after epoch 2" in m for m in messages)
    resumed, fresh = bundle_weights(ready, "m@1"), bundle_weights(ready, f"{reference.ref}")
    assert resumed.keys() == fresh.keys()
    for name in fresh:
        assert (resumed[name] == fresh[name]).all(), name
    assert done.metrics["validation"] == ready.jobs.get(done.id).metrics["validation"]


def test_a_job_killed_before_any_checkpoint_is_marked_failed_with_the_reason(ready):
    job = ready.jobs.submit_training(SPEC)
    with pytest.raises(ProcessDied):
        ready.jobs.run(job.id, callbacks=[DieInEpoch(0)])
    recovered = recover_stale_jobs(ready.store, ready.artifacts, stale_after=0)
    assert [action for _, action in recovered] == ["failed"]
    record = ready.jobs.get(job.id)
    assert record.status == JobStatus.FAILED
    assert "no checkpoint" in record.error and "stopped" in record.error
    assert ready.store.registry.list_models("default") == []


def test_a_live_job_is_not_recovered(ready):
    job = ready.jobs.submit_training(SPEC)
    ready.store.jobs.claim(job.id)
    assert recover_stale_jobs(ready.store, ready.artifacts, stale_after=3600) == []


def test_the_pool_runs_queued_jobs_and_a_superseded_worker_cannot_finish(ready):
    first = ready.jobs.submit_training(SPEC)
    pool = ready.jobs.start_workers(1)
    try:
        deadline = time.monotonic() + 120
        while not ready.jobs.get(first.id).status.finished and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        ready.jobs.stop_workers()
    assert ready.jobs.get(first.id).status == JobStatus.SUCCEEDED
    assert pool.workers == 1
    stale = ready.store.jobs.create("default", "train", SPEC.to_dict())
    old = ready.store.jobs.claim(stale.id)
    ready.store.jobs.requeue(stale.id, attempt=old.attempt)
    ready.store.jobs.claim(stale.id)
    from aimass.errors import Conflict

    with pytest.raises(Conflict):
        ready.store.jobs.finish(stale.id, JobStatus.FAILED, error="x", attempt=old.attempt)
    assert ready.store.jobs.report(stale.id, progress=0.5, attempt=old.attempt) is True
