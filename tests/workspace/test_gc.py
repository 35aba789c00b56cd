"""Garbage collection: what nothing refers to goes, for good; nothing referred to does.

The scenario of a real user: train two versions, delete one, collect. Then each rule on
its own: the grace period (and publishing again restarts it), references inside JSON,
finished jobs' checkpoints, runs of unknown jobs, abandoned staging, a dry run, the
audit entry, and the bucket's copies with object storage.
"""

from __future__ import annotations

import json
import os
import time

import pytest
from typer.testing import CliRunner

from aimass.cli import app
from aimass.cli._common import reset
from aimass.entities import JobStatus
from aimass.errors import Conflict
from aimass.jobs.runner import checkpoint_dir
from aimass.jobs.train import TrainSpec
from aimass.settings import Settings
from aimass.workspace import Workspace
from aimass.workspace.gc import (
    ABANDONED_STAGING,
    FINISHED_CHECKPOINT,
    UNKNOWN_RUN,
    UNREFERENCED,
    collect_garbage,
)
from tests.conftest import TINY_FINETUNE, register_copy, sentiment_rows, write_jsonl

TEXTS = ["a great happy film", "an awful boring plot"]
HOUR = 3600.0


def _gc(ws, **kwargs):
    kwargs.setdefault("older_than", 0.0)
    return collect_garbage(ws.store, ws.artifacts, ws.audit, **kwargs)


def _publish(ws, key, data=b"x"):
    with ws.artifacts.staging() as stage:
        (stage / "f").write_bytes(data)
        return ws.artifacts.publish(stage / "f", key)


def _age(ws, key, seconds):
    """Make ``key`` look written ``seconds`` ago."""
    then = time.time() - seconds
    os.utime(ws.artifacts.path(key), (then, then))


@pytest.fixture
def trained(tmp_path, tiny_bert_dir):
    ws = Workspace(Settings(home=tmp_path / "home", device="cpu", num_threads=1))
    ws.datasets.import_file(write_jsonl(tmp_path / "s.jsonl", sentiment_rows(120)), name="s")
    ws.bases.import_(str(tiny_bert_dir), name="tiny")
    yield ws
    ws.close()


def _train(ws, model, **config):
    return ws.jobs.train(
        TrainSpec(dataset="s", base="tiny", model=model, config={**TINY_FINETUNE, **config})
    )


def test_a_deleted_versions_bundle_is_removed_and_every_referenced_artifact_kept(trained):
    ws = trained
    one = _train(ws, "m")
    two = _train(ws, "m", lr=2e-3)
    assert one.digest != two.digest
    expected = ws.serving.predict("m@1", TEXTS)
    ws.models.delete_version("m", 2)

    report = _gc(ws)

    assert [(g.key, g.reason, g.where) for g in report.removed] == [
        (ws.artifacts.key_of(two.uri), UNREFERENCED, "local")
    ]
    assert report.removed[0].bytes > 0
    assert not ws.artifacts.path(ws.artifacts.key_of(two.uri)).exists()
    # The dataset, the base and the kept version are whole and still serve.
    for ref in (ws.datasets.get("s").uri, ws.bases.get("tiny").uri, one.uri):
        assert ws.artifacts.path(ws.artifacts.key_of(ref)).exists(), ref
    fresh = Workspace(ws.settings)  # loads the model from its files again
    try:
        assert fresh.serving.predict("m@1", TEXTS) == expected
    finally:
        fresh.close()
    # Recorded in the audit trail, and a second run finds nothing.
    events = ws.audit.list(action="artifacts.gc")
    assert len(events) == 1 and events[0].details["keys"] == [report.removed[0].key]
    assert _gc(ws).removed == []
    assert len(ws.audit.list(action="artifacts.gc")) == 1  # nothing removed, nothing recorded


def test_a_job_removes_its_checkpoint_when_it_finishes_and_keeps_its_logs(trained):
    version = _train(trained, "m")
    run = trained.artifacts.path(f"runs/{version.lineage.job_id}")
    assert not (run / "checkpoint").exists()
    assert any((run / "tensorboard").iterdir())
    assert any(
        line.message.startswith("checkpoint saved")
        for line in trained.jobs.logs(version.lineage.job_id)
    )


def test_a_bundle_two_versions_share_stays_until_both_are_deleted(trained):
    ws = trained
    one = _train(ws, "m")
    register_copy(ws, "m@1", "copy", config_digest="c")
    ws.models.delete_version("m", 1)
    assert _gc(ws).removed == []
    ws.models.delete_version("copy", 1)
    assert [g.key for g in _gc(ws).removed] == [ws.artifacts.key_of(one.uri)]


def test_an_uri_inside_recorded_json_keeps_its_artifact(trained):
    ws = trained
    _train(ws, "m")
    in_metrics = _publish(ws, "reports/in-metrics", b"a")
    in_pipeline = _publish(ws, "reports/in-pipeline", b"b")
    loose = _publish(ws, "reports/privacy-audit/loose.json", b"c")
    from aimass.refs import Ref

    ws.store.registry.update_version(
        "default", Ref(name="m", version=1), metrics={"someday": {"report": in_metrics}}
    )
    pipeline, _ = ws.pipelines.create(
        {"steps": [{"name": "m", "type": "model", "model": "m@1"}]}, name="p"
    )
    ws.store.pipelines.record_evaluation(
        "default", "p", pipeline.version, "r", {"report": in_pipeline}
    )

    report = _gc(ws)

    assert [g.key for g in report.removed] == [ws.artifacts.key_of(loose)]
    assert ws.artifacts.path("reports/in-metrics").exists()
    assert ws.artifacts.path("reports/in-pipeline").exists()
    assert ws.artifacts.path("reports/privacy-audit").is_dir()


def test_the_grace_period_keeps_what_was_just_published_and_publishing_again_restarts_it(
    workspace,
):
    ws = workspace
    _publish(ws, "reports/fresh")
    _publish(ws, "reports/old")
    _publish(ws, "reports/again")
    _age(ws, "reports/old", 2 * HOUR)
    _age(ws, "reports/again", 2 * HOUR)
    _publish(ws, "reports/again")  # the same content, published by a job just now

    report = _gc(ws, older_than=HOUR)

    assert [g.key for g in report.removed] == ["reports/old"]
    assert sorted(report.too_young) == ["reports/again", "reports/fresh"]


def test_a_dry_run_lists_and_removes_nothing(workspace):
    ws = workspace
    _publish(ws, "datasets/orphan.parquet", b"rows")
    stored = ws.artifacts.path("datasets/orphan.parquet").stat().st_size  # encrypted: > 4
    report = _gc(ws, dry_run=True)
    assert [(g.key, g.bytes) for g in report.removed] == [("datasets/orphan.parquet", stored)]
    assert ws.artifacts.path("datasets/orphan.parquet").exists()
    assert ws.audit.list(action="artifacts.gc") == []


def test_runs_checkpoints_and_staging_are_judged_by_their_jobs(workspace):
    ws = workspace
    finished = ws.store.jobs.create("default", "train", {})
    running = ws.store.jobs.create("default", "train", {})
    ws.store.jobs.claim(finished.id)
    ws.store.jobs.finish(finished.id, JobStatus.FAILED, attempt=1, error="x")
    ws.store.jobs.claim(running.id)
    for job in (finished, running):
        checkpoint_dir(ws.artifacts, job.id).mkdir(parents=True)
        (checkpoint_dir(ws.artifacts, job.id) / "checkpoint.json").write_text("{}")
        (ws.artifacts.path(f"runs/{job.id}/tensorboard")).mkdir()
    stranger = ws.artifacts.path("runs/0123456789abcdef0123456789abcdef")
    stranger.mkdir(parents=True)
    abandoned = ws.artifacts.root / ".staging" / ("f" * 32)
    in_progress = ws.artifacts.root / ".staging" / ("e" * 32)  # perhaps a bundle being staged
    locks = ws.artifacts.root / ".staging" / "locks"  # shared by every process: kept
    for path in (abandoned, in_progress, locks):
        path.mkdir(parents=True)
    os.utime(stranger, (time.time() - 2 * HOUR,) * 2)
    os.utime(in_progress, (time.time() - 2 * HOUR,) * 2)
    for path in (abandoned, locks):
        os.utime(path, (time.time() - 25 * HOUR,) * 2)

    report = _gc(ws, older_than=HOUR)

    assert sorted((g.key, g.reason) for g in report.removed) == sorted(
        [
            (f"runs/{finished.id}/checkpoint", FINISHED_CHECKPOINT),
            ("runs/0123456789abcdef0123456789abcdef", UNKNOWN_RUN),
            (f".staging/{'f' * 32}", ABANDONED_STAGING),
        ]
    )
    assert checkpoint_dir(ws.artifacts, running.id).exists()
    assert ws.artifacts.path(f"runs/{finished.id}/tensorboard").exists()
    assert not stranger.exists() and not abandoned.exists()
    assert locks.is_dir() and in_progress.is_dir()  # staging waits a day, whatever the grace


def test_a_superseded_attempt_leaves_the_checkpoint_to_the_attempt_that_replaced_it(workspace):
    from aimass.jobs.runner import _finish

    ws = workspace
    job = ws.store.jobs.create("default", "train", {})
    first = ws.store.jobs.claim(job.id)
    assert ws.store.jobs.requeue(job.id, attempt=first.attempt)
    ws.store.jobs.claim(job.id)  # attempt 2 resumes from the checkpoint
    checkpoint_dir(ws.artifacts, job.id).mkdir(parents=True)
    with pytest.raises(Conflict):
        ws.store.jobs.finish(job.id, JobStatus.FAILED, attempt=first.attempt, error="late")
    _finish(ws.store, ws.artifacts, first, JobStatus.FAILED, error="late")
    assert checkpoint_dir(ws.artifacts, job.id).exists()


def test_the_cli_collects_prints_json_and_refuses_a_bad_duration(settings, monkeypatch):
    monkeypatch.setenv("AIMASS_HOME", str(settings.home))
    reset()
    ws = Workspace(settings)
    try:
        _publish(ws, "graphs/orphan", b"graph")
        stored = ws.artifacts.path("graphs/orphan").stat().st_size
    finally:
        ws.close()
    runner = CliRunner()
    dry = runner.invoke(app, ["gc", "--dry-run", "--older-than", "0"])
    assert dry.exit_code == 0, dry.output
    assert "would remove graphs/orphan" in dry.output and "would remove 1 artifacts" in dry.output
    done = runner.invoke(app, ["gc", "--older-than", "0s", "--json"])
    assert done.exit_code == 0, done.output
    data = json.loads(done.output)
    assert [g["key"] for g in data["removed"]] == ["graphs/orphan"] and data["bytes"] == stored
    kept = runner.invoke(app, ["gc"])  # nothing left; the default grace is an hour
    assert "removed 0 artifacts" in kept.output
    bad = runner.invoke(app, ["gc", "--older-than", "soon"])
    assert bad.exit_code != 0 and "not a duration" in bad.output and "30m" in bad.output


def test_through_the_server_an_all_projects_admin_collects(settings):
    from fastapi.testclient import TestClient

    from aimass import Client
    from aimass.server import create_app
    from tests.server.conftest import make_key, serve_settings
    from tests.server.test_trust_api import through

    ws = Workspace(settings)
    try:
        _publish(ws, "graphs/old", b"old graph")
        _age(ws, "graphs/old", 2 * HOUR)
        _publish(ws, "graphs/new", b"new graph")
        _age(ws, "graphs/new", 120)
    finally:
        ws.close()
    app = create_app(serve_settings(settings.home), job_workers=0)
    with TestClient(app, base_url="http://localhost") as http:
        admin = {"Authorization": f"Bearer {(settings.home / 'admin.key').read_text().strip()}"}
        project_admin = make_key(http, admin, ["admin"], name="project-admin")
        refused = http.post("/v1/artifacts:gc", headers=project_admin, json={})
        assert refused.status_code == 403
        too_short = http.post("/v1/artifacts:gc", headers=admin, json={"older_than_seconds": 5})
        assert too_short.status_code == 400 and "at least 60" in too_short.text
        key = admin["Authorization"].split()[1]
        client = Client("http://localhost", key, transport=through(http))
        dry = client.collect_garbage(older_than=HOUR, dry_run=True)
        assert [g.key for g in dry.removed] == ["graphs/old"] and dry.too_young == ["graphs/new"]
        done = client.collect_garbage(older_than=60)
        assert sorted(g.key for g in done.removed) == ["graphs/new", "graphs/old"]
        events = http.get("/v1/audit", headers=admin, params={"action": "artifacts.gc"}).json()
        assert [sorted(e["details"]["keys"]) for e in events if e["details"].get("keys")] == [
            ["graphs/new", "graphs/old"]
        ]
    assert not (settings.home / "artifacts").joinpath("graphs", "old").exists()


def test_a_dataset_or_base_a_queued_job_reads_is_not_deleted(trained):
    ws = trained
    ws.datasets.import_file(
        write_jsonl(ws.settings.home / "more.jsonl", sentiment_rows(80)), name="s"
    )
    job = ws.jobs.submit_training(
        TrainSpec(dataset="s", base="tiny", model="m", config=TINY_FINETUNE)
    )
    # The job names 's' (the latest): deleting s@2 would change what it reads; s@1 not.
    with pytest.raises(
        Conflict, match=rf"dataset s@2 is read by job\(s\) {job.id} \(train, queued\)"
    ):
        ws.datasets.delete_version("s", 2)
    with pytest.raises(Conflict, match="base tiny@1 is read by job"):
        ws.bases.delete_version("tiny", 1)
    assert ws.datasets.delete_version("s", 1).version == 1
    ws.jobs.cancel(job.id)
    assert ws.datasets.delete_version("s", 2).version == 2
    assert ws.bases.delete_version("tiny", 1).version == 1
