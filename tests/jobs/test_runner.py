"""Job runs: a failed or cancelled job leaves the registry unchanged and says why."""

import pytest

from aimass.entities import JobStatus
from aimass.errors import Cancelled, JobFailed
from aimass.jobs.train import TrainSpec
from aimass.training import sequence_tasks
from aimass.training.callbacks import Callback

SPEC = TrainSpec(
    dataset="s",
    base="tiny",
    model="m",
    config={"mode": "finetune", "epochs": 2, "lr": 1e-3, "batch_size": 16},
)


def registry_is_empty(ws):
    return ws.store.registry.list_models("default") == []


def test_a_crash_marks_the_job_failed_and_registers_nothing(ready, monkeypatch):
    def explode(self, inputs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(sequence_tasks.ClassificationTask, "train", explode)
    job = ready.jobs.submit_training(SPEC)
    with pytest.raises(JobFailed, match="disk on fire"):
        ready.jobs.run(job.id)
    record = ready.store.jobs.get(job.id)
    assert record.status == JobStatus.FAILED
    assert "disk on fire" in record.error
    assert registry_is_empty(ready)


def test_a_failure_while_writing_the_bundle_leaves_no_half_artifact(ready, monkeypatch):
    from aimass.artifacts import bundle

    def broken(self, name, tensors, *, metadata=None):
        (self.directory / name).write_bytes(b"half")
        raise OSError("no space left on device")

    monkeypatch.setattr(bundle.BundleWriter, "add_tensors", broken)
    bundles_before = set((ready.artifacts.root / "bundles").iterdir())
    with pytest.raises(JobFailed):
        ready.jobs.train(SPEC)
    assert set((ready.artifacts.root / "bundles").iterdir()) == bundles_before
    assert not any((ready.artifacts.root / ".staging").iterdir())
    assert registry_is_empty(ready)


class CancelAfter(Callback):
    def __init__(self, store, job_id, steps):
        self.store, self.job_id, self.steps = store, job_id, steps

    def on_step_end(self, state):
        if state.step == self.steps:
            self.store.jobs.request_cancel(self.job_id)


def test_cancellation_is_honoured_promptly(ready):
    steps = []

    class Count(Callback):
        def on_step_end(self, state):
            steps.append(state.step)

    long = TrainSpec(**{**SPEC.to_dict(), "config": {**SPEC.config, "epochs": 50}})
    job = ready.jobs.submit_training(long)
    with pytest.raises(Cancelled):
        ready.jobs.run(job.id, callbacks=[CancelAfter(ready.store, job.id, 2), Count()])
    record = ready.store.jobs.get(job.id)
    assert record.status == JobStatus.CANCELLED
    assert len(steps) < 100, "the cancel request is read within 50 ms, not at the end"
    assert registry_is_empty(ready)


def test_progress_and_metrics_are_reported_while_running(ready):
    seen = []

    class Watch(Callback):
        def on_eval(self, state, metrics):
            seen.append(ready.store.jobs.get(job.id))

    job = ready.jobs.submit_training(SPEC)
    done = ready.jobs.run(job.id, callbacks=[Watch()])
    assert seen and seen[0].status == JobStatus.RUNNING and seen[0].progress > 0
    assert done.status == JobStatus.SUCCEEDED
    assert done.metrics["validation"]["accuracy"] >= 0.5
    assert done.result["version"] == 1


def test_identical_inputs_are_found_again(ready):
    assert ready.jobs.find_trained(SPEC) is None
    version = ready.jobs.train(SPEC)
    assert ready.jobs.find_trained(SPEC) == version


def test_the_loss_curve_stays_small_however_long_the_training():
    from aimass.jobs.runner import LossCurve

    curve = LossCurve(size=8)
    changed = [curve.add(step, 1.0 / step) for step in range(1, 101)]
    assert len(curve.points) <= 8 and curve.points[0][0] <= 2 and curve.points[-1][0] >= 64
    assert curve.stride > 1 and sum(changed) < 100
    assert not curve.add(101, float("nan"))
