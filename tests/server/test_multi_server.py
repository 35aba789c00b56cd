"""Two ``aimass serve`` processes on one PostgreSQL and one home serve the same projects:
keys, models, jobs and the audit chain are shared; killing one loses no request to the
other, and its running job is recovered, not run twice."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import pytest

from aimass.client import Client
from aimass.jobs.train import TrainSpec
from aimass.settings import Settings
from aimass.workspace import Workspace
from tests.conftest import TINY_FINETUNE, sentiment_rows, write_jsonl

pytestmark = [pytest.mark.subprocess, pytest.mark.services]

FINISHED = {"succeeded", "failed", "cancelled"}


@pytest.fixture(scope="module")
def shared(postgres_server, tiny_bert_dir, tmp_path_factory) -> Iterator[tuple[Path, str]]:
    """``(home, database URL)``: dataset 's', base 'tiny', model 'm@production' and the
    admin key, made before the servers start (so neither bootstraps its own admin key)."""
    name = f"multi_{secrets.token_hex(6)}"
    with postgres_server.connect() as connection:
        connection.execute(f"CREATE DATABASE {name}")
    url = postgres_server.url(name)
    home = tmp_path_factory.mktemp("multi") / "home"
    ws = Workspace(Settings(home=home, device="cpu", num_threads=1, database_url=url))
    ws.datasets.import_file(write_jsonl(home.parent / "s.jsonl", sentiment_rows(200)), name="s")
    ws.bases.import_(str(tiny_bert_dir), name="tiny")
    config = {**TINY_FINETUNE, "epochs": 1}
    ws.jobs.train(TrainSpec(dataset="s", base="tiny", model="m", config=config, alias="production"))
    ws.keys.ensure_admin()
    ws.close()
    yield home, url
    with postgres_server.connect() as connection:
        connection.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serve(home: Path, url: str, log: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """``aimass serve`` (one job thread, batches in process) on ``home`` and ``url``."""
    port = free_port()
    env = {
        **os.environ,
        "AIMASS_HOME": str(home),
        "AIMASS_DATABASE_URL": url,
        "AIMASS_DEVICE": "cpu",
        "AIMASS_NUM_THREADS": "1",
        "AIMASS_SERVE_RUNNERS": "0",
        "AIMASS_JOB_HEARTBEAT_SECONDS": "0.5",
        "AIMASS_JOB_STALE_SECONDS": "5",
        "OMP_NUM_THREADS": "1",
    }
    with open(log, "w") as handle:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "aimass.cli",
                "serve",
                "--port",
                str(port),
                "--job-threads",
                "1",
            ],
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 90
            while True:
                assert proc.poll() is None, log.read_text()
                assert time.monotonic() < deadline, log.read_text()
                try:
                    if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.2)
            yield proc, base
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


_clients: list[Client] = []


def stack_client(url: str, key: str) -> Client:
    """A client closed when the servers of :func:`two_servers` stop."""
    client = Client(url, key, timeout=120)
    _clients.append(client)
    return client


@contextmanager
def two_servers(shared, tmp_path) -> Iterator[list[tuple[subprocess.Popen[bytes], str]]]:
    """Two servers on the same home and database (stopped, with their clients, after)."""
    home, url = shared
    with ExitStack() as stack:
        try:
            yield [stack.enter_context(serve(home, url, tmp_path / f"serve-{i}.log")) for i in "ab"]
        finally:
            while _clients:
                _clients.pop().close()


def finished(client: Client, job_id: str, *, timeout: float = 400):
    """The job once it is finished, failed ones too (``jobs.wait`` raises for those)."""
    deadline = time.monotonic() + timeout
    while (job := client.jobs.get(job_id)).status not in FINISHED:
        assert time.monotonic() < deadline, job
        time.sleep(0.5)
    return job


def starts(client: Client, job_id: str) -> int:
    """How many times a worker started the job (each start logs one line)."""
    return sum(line.message.startswith("started ") for line in client.jobs.logs(job_id))


def test_two_servers_share_keys_models_jobs_and_the_audit_chain(shared, tmp_path):
    admin = (shared[0] / "admin.key").read_text().strip()
    with two_servers(shared, tmp_path) as [(_, url_a), (_, url_b)]:
        a = stack_client(url_a, admin)
        b = stack_client(url_b, admin)
        created = a.keys.create("caller", scopes=["predict", "read"])
        with Client(url_b, created.key) as caller:
            assert caller.predict("m@production", ["bad awful film"])[0]["label"] in {"pos", "neg"}
        # A model trained by a job submitted to one server predicts on the other.
        config = {**TINY_FINETUNE, "epochs": 1}
        job = a.jobs.submit_training(dataset="s", base="tiny", model="m2", config=config)
        assert b.jobs.wait(job.id, poll=0.3, timeout=300).status == "succeeded"
        assert len(b.predict("m2", ["good great film", "bad"])) == 2
        # Jobs submitted to both: each run once, by whichever server claimed it.
        jobs = [
            client.jobs.submit_batch_predict(
                model="m@1", dataset="s", output=f"out-{i}", split="test"
            )
            for i, client in enumerate([a, b] * 3)
        ]
        done = [b.jobs.wait(j.id, poll=0.3, timeout=300) for j in jobs]
        assert [(d.status, d.attempt) for d in done] == [("succeeded", 1)] * len(jobs)
        assert [starts(a, j.id) for j in jobs] == [1] * len(jobs)
        assert {b.datasets.get(f"out-{i}").num_rows for i in range(len(jobs))} == {20}
        # Both servers appended to one chain (every call above was audited).
        for client in (a, b):
            verified = client.audit.verify()
            assert verified.ok, verified.problems


def stream(url: str, key: str, stop: threading.Event, results: list) -> None:
    """Predict in a loop until ``stop``; record ``(time, error or None)`` per request."""
    with Client(url, key, timeout=120) as client:
        while not stop.is_set():
            try:
                client.predict("m@production", ["good film"])
                results.append((time.monotonic(), None))
            except Exception as exc:
                results.append((time.monotonic(), repr(exc)))
            time.sleep(0.05)


def test_killing_one_server_loses_no_request_to_the_other_and_no_job(shared, tmp_path):
    admin = (shared[0] / "admin.key").read_text().strip()
    with two_servers(shared, tmp_path) as [(proc_a, url_a), (_, url_b)]:
        b = stack_client(url_b, admin)
        # Long enough that both jobs still run when one server is killed, on a fast quiet
        # machine too (with 3 epochs there, a job ended within the 1.5 s before the kill).
        config = {**TINY_FINETUNE, "epochs": 60}
        jobs = [
            b.jobs.submit_training(dataset="s", base="tiny", model=f"k{i}", config=config)
            for i in range(2)
        ]
        # One job thread per server: once both jobs run, each server runs one.
        deadline = time.monotonic() + 120
        while {b.jobs.get(j.id).status for j in jobs} != {"running"}:
            assert time.monotonic() < deadline, [b.jobs.get(j.id) for j in jobs]
            time.sleep(0.2)
        stop = threading.Event()
        to_a: list = []
        to_b: list = []
        threads = [
            threading.Thread(target=stream, args=(url_a, admin, stop, to_a)),
            threading.Thread(target=stream, args=(url_b, admin, stop, to_b)),
        ]
        for thread in threads:
            thread.start()
        time.sleep(1.5)
        proc_a.send_signal(signal.SIGKILL)
        proc_a.wait()
        killed_at = time.monotonic()
        try:
            done = [finished(b, j.id) for j in jobs]
            # The survivor keeps answering well after the kill, however soon the jobs ended
            # (on a quiet machine both were done within 5 s of it, before any later call).
            deadline = time.monotonic() + 60
            while not any(t > killed_at + 5 for t, _ in to_b):
                assert time.monotonic() < deadline, "the survivor was not asked after the kill"
                time.sleep(0.2)
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=150)
        assert to_b and all(error is None for _, error in to_b), [e for _, e in to_b if e]
        assert all(error is None for t, error in to_a if t < killed_at - 0.5)
        # The survivor's own job ran once; the killed server's job was recovered by the
        # survivor's stale-job sweep: resumed from its checkpoint (a second attempt, after
        # the first stopped) or failed with the reason. No attempt ran twice.
        assert sorted(d.attempt for d in done) in ([1, 1], [1, 2]), done
        for record in done:
            assert starts(b, record.id) == record.attempt
            if record.attempt == 1 and record.status != "succeeded":
                assert record.status == "failed" and "stopped" in (record.error or "")
            else:
                assert record.status == "succeeded", record
        recovered = [d for d in done if d.attempt == 2 or d.status == "failed"]
        assert len(recovered) == 1, done
        verified = b.audit.verify()
        assert verified.ok, verified.problems
