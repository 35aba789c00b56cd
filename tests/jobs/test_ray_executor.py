"""The Ray executor on a real two-node Ray cluster: jobs run in Ray actors, the store
stays the queue, and progress, logs, cancellation and recovery behave as with threads."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from aimass.entities import JobStatus
from aimass.jobs.pool import recover_stale_jobs
from aimass.jobs.ray_executor import actor_name
from aimass.jobs.train import TrainSpec
from aimass.settings import Settings
from tests.conftest import sentiment_rows, write_jsonl

pytestmark = [pytest.mark.services, pytest.mark.subprocess]

SPEC = TrainSpec(
    dataset="s",
    base="tiny",
    model="m",
    config={"mode": "finetune", "epochs": 3, "lr": 1e-3, "batch_size": 16},
)
# Long enough to be caught running (each epoch is a fraction of a second).
LONG = TrainSpec(**{**SPEC.to_dict(), "config": {**SPEC.config, "epochs": 400}})
# Enough epochs after the first checkpoint that the job is still running when its
# killed worker's death takes effect (3 epochs could finish first).
RESUMABLE = TrainSpec(**{**SPEC.to_dict(), "config": {**SPEC.config, "epochs": 40}})
RUNNING_ON = re.compile(r"running on Ray node (\w+) \(pid (\d+), actor (\S+)\)")


def ray_settings(home: Path, address: str, **extra: Any) -> Settings:
    values: dict[str, Any] = {
        "home": home,
        "device": "cpu",
        "num_threads": 1,
        "executor": "ray",
        "ray_address": address,
        "job_heartbeat_seconds": 0.5,
    }
    return Settings(**{**values, **extra})


@pytest.fixture
def ray_ws(ray_cluster, tmp_path: Path, tiny_bert_dir: Path) -> Iterator[Any]:
    """A workspace on executor=ray with dataset 's' and base 'tiny' (workers not started)."""
    from aimass.workspace import Workspace

    ws = Workspace(ray_settings(tmp_path / "home", ray_cluster.address))
    ws.datasets.import_file(write_jsonl(tmp_path / "s.jsonl", sentiment_rows(200)), name="s")
    ws.bases.import_(str(tiny_bert_dir), name="tiny")
    yield ws
    ws.close()


def wait_for(what: str, check: Callable[[], Any], timeout: float = 240) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def messages(ws: Any, job_id: str) -> list[str]:
    return [line.message for line in ws.jobs.logs(job_id)]


def running_on(ws: Any, job_id: str, attempt: int = 1) -> re.Match[str] | None:
    """The job's 'running on Ray node …' line for ``attempt``, once it is there."""
    for message in messages(ws, job_id):
        found = RUNNING_ON.search(message)
        if found and found.group(3).endswith(f"-{attempt}"):
            return found
    return None


def named_actors() -> list[str]:
    import ray

    return list(ray.util.list_named_actors())


def test_a_training_job_runs_on_the_ray_cluster_with_progress_and_logs(ray_ws):
    import ray

    job = ray_ws.jobs.submit_training(SPEC)
    ray_ws.jobs.start_workers(1)
    done = wait_for(
        "the job to finish", lambda: (j := ray_ws.jobs.get(job.id)).status.finished and j
    )
    assert done.status == JobStatus.SUCCEEDED, done.error
    assert done.progress == 1.0 and done.metrics["loss"] > 0 and done.metrics["curve"]
    found = running_on(ray_ws, job.id)
    assert found, messages(ray_ws, job.id)
    node, pid, name = found.groups()
    # It ran in a Ray worker process of one of the cluster's nodes, not in this one.
    assert node in {n["NodeID"] for n in ray.nodes() if n["Alive"]}
    assert int(pid) != os.getpid()
    assert name == actor_name(job.id, 1)
    logs = messages(ray_ws, job.id)
    assert any(m.startswith("epoch 3/3") for m in logs), logs
    assert logs[-1] == "succeeded: done"
    assert ray_ws.models.get(f"m@{done.result['version']}").ref == "m@1"
    # The finished job's actor is gone: it does not hold a CPU of the cluster.
    wait_for("the actor to go", lambda: name not in named_actors(), timeout=30)


def test_a_running_ray_job_is_cancelled_within_a_step(ray_ws):
    job = ray_ws.jobs.submit_training(LONG)
    ray_ws.jobs.start_workers(1)
    wait_for("training progress", lambda: ray_ws.jobs.get(job.id).progress > 0)
    assert running_on(ray_ws, job.id)
    ray_ws.jobs.cancel(job.id)
    done = wait_for("the cancel", lambda: (j := ray_ws.jobs.get(job.id)).status.finished and j, 60)
    assert done.status == JobStatus.CANCELLED
    assert done.progress < 0.5
    wait_for("the actor to go", lambda: actor_name(job.id, 1) not in named_actors(), timeout=30)


def kill_ray_worker(ws: Any, job_id: str, attempt: int) -> None:
    """SIGKILL the job's Ray worker process, as the kernel's OOM killer would."""
    pid = int(wait_for("the job on Ray", lambda: running_on(ws, job_id, attempt)).group(2))
    os.kill(pid, signal.SIGKILL)


def test_a_job_whose_ray_worker_dies_resumes_from_its_checkpoint_or_fails_saying_so(ray_ws):
    # Killed after its first checkpoint: queued again, resumed on a new actor, finished.
    job = ray_ws.jobs.submit_training(RESUMABLE)
    ray_ws.jobs.start_workers(1)
    wait_for(
        "a checkpoint",
        lambda: any(m.startswith("checkpoint saved") for m in messages(ray_ws, job.id)),
    )
    kill_ray_worker(ray_ws, job.id, 1)
    done = wait_for(
        "the job to finish", lambda: (j := ray_ws.jobs.get(job.id)).status.finished and j
    )
    assert done.status == JobStatus.SUCCEEDED and done.attempt == 2, done.error
    logs = messages(ray_ws, job.id)
    assert any("its Ray worker died" in m and "resume from its checkpoint" in m for m in logs)
    assert any(m.startswith("resumed from the checkpoint after epoch") for m in logs), logs
    assert running_on(ray_ws, job.id, 2)

    # Killed before any checkpoint: failed, with Ray's reason and what to do.
    doomed = ray_ws.jobs.submit_training(LONG)
    kill_ray_worker(ray_ws, doomed.id, 1)
    failed = wait_for(
        "the failure", lambda: (j := ray_ws.jobs.get(doomed.id)).status.finished and j, 60
    )
    assert failed.status == JobStatus.FAILED
    assert "its Ray worker died" in failed.error, failed.error
    assert re.search(r"\(Actor\w*Error: The actor died", failed.error), failed.error
    assert "no checkpoint" in failed.error and "submit it again" in failed.error


DRIVER = textwrap.dedent(
    """
    import sys, time
    from aimass.settings import Settings
    from aimass.workspace import Workspace

    ws = Workspace(Settings(
        home=sys.argv[1], device="cpu", num_threads=1, executor="ray",
        ray_address=sys.argv[2], job_heartbeat_seconds=0.5,
    ))
    ws.jobs.start_workers(1)
    print("started", flush=True)
    time.sleep(600)
    """
)


def test_a_ray_job_outlives_its_server_and_the_next_server_removes_its_actor(ray_ws, ray_cluster):
    job = ray_ws.jobs.submit_training(
        TrainSpec(**{**SPEC.to_dict(), "config": {**SPEC.config, "epochs": 30}})
    )
    server = subprocess.Popen(
        [sys.executable, "-c", DRIVER, str(ray_ws.settings.home), ray_cluster.address],
        env={**os.environ, **ray_cluster.env},
    )
    try:
        wait_for("the job on Ray", lambda: running_on(ray_ws, job.id))
    finally:
        server.send_signal(signal.SIGKILL)  # the server dies without a word
        server.wait(30)
    # The job goes on: its actor beats, so a sweep as strict as 3 s finds nothing stale.
    stale_after = 3.0
    while not (record := ray_ws.jobs.get(job.id)).status.finished:
        assert recover_stale_jobs(ray_ws.store, ray_ws.artifacts, stale_after=stale_after) == []
        time.sleep(0.5)
    assert record.status == JobStatus.SUCCEEDED, record.error
    assert record.attempt == 1
    # Nobody waited on the actor: the next server's sweep frees its CPU.
    assert actor_name(job.id, 1) in named_actors()
    ray_ws.jobs.start_workers(1)
    wait_for("the reap", lambda: actor_name(job.id, 1) not in named_actors(), timeout=30)


def test_a_job_waiting_for_a_ray_worker_stays_alive_and_can_be_cancelled(ray_cluster, tmp_path):
    from aimass.workspace import Workspace

    # A GPU job on a cluster without GPUs: its actor is never placed.
    ws = Workspace(ray_settings(tmp_path / "home", ray_cluster.address, device="cuda"))
    try:
        job = ws.store.jobs.create("default", "train", SPEC.to_dict())
        ws.jobs.start_workers(1)
        wait_for("the dispatch", lambda: "dispatched to Ray" in " ".join(messages(ws, job.id)))
        time.sleep(3)
        # The waiting server beats for it: not stale, though nothing runs it yet.
        assert recover_stale_jobs(ws.store, ws.artifacts, stale_after=2) == []
        assert ws.jobs.get(job.id).status == JobStatus.RUNNING
        assert running_on(ws, job.id) is None
        ws.jobs.cancel(job.id)
        done = wait_for("the cancel", lambda: (j := ws.jobs.get(job.id)).status.finished and j, 30)
        assert done.status == JobStatus.CANCELLED
        assert done.error == "cancelled while waiting for a Ray worker"
        wait_for("the actor to go", lambda: actor_name(job.id, 1) not in named_actors(), 30)
    finally:
        ws.close()


def test_a_ray_node_without_the_servers_master_key_fails_the_job_saying_which(
    ray_cluster, tmp_path
):
    import base64
    import secrets

    from pydantic import SecretStr

    from aimass.workspace import Workspace

    # The server holds its master key in its environment; the test cluster's nodes do not.
    key = SecretStr(base64.b64encode(secrets.token_bytes(32)).decode())
    ws = Workspace(ray_settings(tmp_path / "home", ray_cluster.address, master_key=key))
    try:
        job = ws.store.jobs.create("default", "train", SPEC.to_dict())
        ws.jobs.start_workers(1)
        done = wait_for("the job to end", lambda: (j := ws.jobs.get(job.id)).status.finished and j)
        assert done.status == JobStatus.FAILED
        assert "it could not run on Ray node" in done.error
        assert "lacks AIMASS_MASTER_KEY, which the server has" in done.error
        assert key.get_secret_value() not in done.error
    finally:
        ws.close()
