"""Job records: explicit transitions, cancellation, progress."""

import pytest

from aimass.entities import JobStatus
from aimass.errors import FailedPrecondition, InvalidArgument, NotFound


def test_lifecycle(store):
    job = store.jobs.create("default", "train", {"x": 1})
    assert job.status == JobStatus.QUEUED
    assert store.jobs.next_queued().id == job.id
    running = store.jobs.claim(job.id)
    assert running.status == JobStatus.RUNNING
    assert running.started_at is not None
    with pytest.raises(FailedPrecondition):
        store.jobs.claim(job.id)
    assert store.jobs.report(job.id, progress=0.5, metrics={"loss": 1.0}) is False
    done = store.jobs.finish(job.id, JobStatus.SUCCEEDED, result={"version": 1})
    assert (done.status, done.progress, done.result) == (JobStatus.SUCCEEDED, 1.0, {"version": 1})
    assert store.jobs.get(job.id).metrics == {"loss": 1.0}


def test_cancel_queued_and_running(store):
    queued = store.jobs.create("default", "train", {})
    assert store.jobs.request_cancel(queued.id).status == JobStatus.CANCELLED
    running = store.jobs.create("default", "train", {})
    store.jobs.claim(running.id)
    store.jobs.request_cancel(running.id)
    assert store.jobs.report(running.id, progress=0.1) is True


def test_jobs_are_scoped_by_project(store):
    store.projects.create("other")
    job = store.jobs.create("other", "train", {})
    with pytest.raises(NotFound):
        store.jobs.get(job.id, project="default")
    assert [j.id for j in store.jobs.list("other")] == [job.id]


def test_finish_needs_a_terminal_status(store):
    job = store.jobs.create("default", "train", {})
    with pytest.raises(InvalidArgument):
        store.jobs.finish(job.id, JobStatus.RUNNING)
