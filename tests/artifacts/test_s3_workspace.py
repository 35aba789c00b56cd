"""Three "machines" share one SQLite database and one bucket, each with its own empty
artifact root: the first imports and starts training and dies after a checkpoint, the
second resumes the job from the checkpoint it finds in the bucket, the third serves the
model it never saw locally."""

from __future__ import annotations

import pytest

from aimass.entities import JobStatus
from aimass.jobs.pool import recover_stale_jobs
from aimass.jobs.train import TrainSpec
from aimass.settings import Settings
from aimass.training.callbacks import Callback
from aimass.workspace import Workspace
from tests.conftest import TINY_FINETUNE, sentiment_rows, write_jsonl

pytestmark = pytest.mark.services

TEXTS = ["a great happy film", "an awful boring plot"]


class ProcessDied(BaseException):
    """Not an Exception: the runner cannot record it, as when the process is killed."""


class DieInEpoch(Callback):
    def __init__(self, epoch):
        self.epoch = epoch

    def on_step_end(self, state):
        if state.epoch == self.epoch:
            raise ProcessDied


def _machine(home, root, bucket):
    return Workspace(
        Settings(home=home, artifact_root=root, device="cpu", num_threads=1, **bucket.settings)
    )


def test_train_resume_and_serve_across_caches(tmp_path, s3_bucket, tiny_bert_dir):
    home = tmp_path / "home"  # the shared database and keys
    first = _machine(home, tmp_path / "cache-1", s3_bucket)
    second = _machine(home, tmp_path / "cache-2", s3_bucket)
    third = _machine(home, tmp_path / "cache-3", s3_bucket)
    try:
        data = write_jsonl(tmp_path / "s.jsonl", sentiment_rows(120))
        first.datasets.import_file(data, name="s")
        first.bases.import_(str(tiny_bert_dir), name="tiny")
        job = first.jobs.submit_training(
            TrainSpec(dataset="s", base="tiny", model="m", config=TINY_FINETUNE)
        )
        with pytest.raises(ProcessDied):
            first.jobs.run(job.id, callbacks=[DieInEpoch(2)])
        names = s3_bucket.names()
        assert any(f"_index/runs/{job.id}/checkpoint.json" in n for n in names)
        assert any("/_index/bundles/" in n for n in names)
        assert any("/_index/datasets/" in n for n in names)

        # Another machine: no checkpoint on its disk, but one in the bucket.
        assert not (tmp_path / "cache-2" / "runs").exists()
        recovered = recover_stale_jobs(second.store, second.artifacts, stale_after=0)
        assert [(j.id, action) for j, action in recovered] == [(job.id, "resumed")]
        done = second.jobs.run(job.id)
        assert done.status == JobStatus.SUCCEEDED and done.attempt == 2
        messages = [line.message for line in second.jobs.logs(job.id)]
        assert any("resumed from the checkpoint after epoch 2" in m for m in messages)

        version = second.models.get("m@1")
        expected = second.serving.predict("m@1", TEXTS)
        assert not (tmp_path / "cache-3" / "bundles").exists()
        assert third.serving.predict("m@1", TEXTS) == expected
        stored = third.artifacts.stored(version.uri)
        assert stored.is_relative_to(tmp_path / "cache-3")
        assert third.artifacts.is_encrypted(version.uri)
    finally:
        for ws in (first, second, third):
            ws.close()


def _publish(ws, key, data):
    with ws.artifacts.staging() as stage:
        (stage / "f").write_bytes(data)
        return ws.artifacts.publish(stage / "f", key)


def test_rotating_the_master_key_rekeys_the_copies_in_the_bucket(tmp_path, s3_bucket):
    from aimass.artifacts.envelope import header_key_id
    from aimass.workspace.secrets import rotate_master_key

    home = tmp_path / "home"
    first, second = (_machine(home, tmp_path / f"cache-{i}", s3_bucket) for i in (1, 2))
    try:
        here = _publish(first, "datasets/here.parquet", b"published here")
        there = _publish(second, "datasets/there.parquet", b"published elsewhere")
        old = first.artifacts.keys.active
        report = rotate_master_key(first.settings, first.artifacts)
        assert report["retired_keys"] == [old]
    finally:
        first.close()
        second.close()
    fresh = _machine(home, tmp_path / "cache-3", s3_bucket)  # only the new key now
    try:
        assert fresh.artifacts.keys.active != old and old not in fresh.artifacts.keys.keys
        assert fresh.artifacts.resolve(here).read_bytes() == b"published here"
        assert fresh.artifacts.resolve(there).read_bytes() == b"published elsewhere"
        assert header_key_id(fresh.artifacts.stored(there)) == fresh.artifacts.keys.active
    finally:
        fresh.close()


def test_readiness_follows_the_bucket_and_names_nothing(tmp_path, s3_bucket, monkeypatch):
    from fastapi.testclient import TestClient

    import aimass.server.state as server_state
    from aimass.server import create_app

    monkeypatch.setattr(server_state, "BUCKET_CHECK_SECONDS", 0.0)  # ask on every probe
    settings = Settings(
        home=tmp_path / "home",
        artifact_root=tmp_path / "cache",
        device="cpu",
        **s3_bucket.settings,
    )
    with TestClient(create_app(settings, job_workers=0), base_url="http://localhost") as client:
        assert client.get("/readyz").json() == {"status": "ready"}
        s3_bucket.client.delete_bucket(Bucket=s3_bucket.bucket)  # empty: nothing published
        r = client.get("/readyz")
        assert r.status_code == 503 and r.json() == {"status": "object store unavailable"}
        assert s3_bucket.bucket not in r.text and "127.0.0.1" not in r.text
        assert client.get("/healthz").status_code == 200, "the process itself is alive"
        s3_bucket.client.create_bucket(Bucket=s3_bucket.bucket)
        assert client.get("/readyz").status_code == 200


def test_garbage_collection_removes_the_buckets_copies_too(tmp_path, s3_bucket):
    from aimass.workspace.gc import FINISHED_CHECKPOINT, UNREFERENCED, collect_garbage

    home = tmp_path / "home"
    first, second = (_machine(home, tmp_path / f"cache-{i}", s3_bucket) for i in (1, 2))
    try:
        data = write_jsonl(tmp_path / "s.jsonl", sentiment_rows(20))
        dataset, _ = first.datasets.import_file(data, name="s")
        _publish(first, "reports/orphan", b"nobody's")
        job = first.store.jobs.create("default", "train", {})
        first.store.jobs.claim(job.id)
        checkpoint = f"runs/{job.id}/checkpoint"
        first.artifacts.path(checkpoint).mkdir(parents=True)
        (first.artifacts.path(checkpoint) / "checkpoint.json").write_text("{}")
        first.artifacts.mirror_up(checkpoint)
        # The job's worker died after its last upload; its record was failed by a sweep.
        first.store.jobs.finish(job.id, JobStatus.FAILED, attempt=1, error="gone")

        # On the second machine, whose cache has none of them, the bucket's copies go.
        # Within the grace period the report stays: its age is the bucket's to tell.
        report = collect_garbage(second.store, second.artifacts, second.audit, older_than=3600)
        assert [(g.key, g.reason, g.where) for g in report.removed] == [
            (checkpoint, FINISHED_CHECKPOINT, "remote")
        ]
        assert report.too_young == ["reports/orphan"]
        report = collect_garbage(second.store, second.artifacts, second.audit, older_than=0)
        assert [(g.key, g.reason, g.where) for g in report.removed] == [
            ("reports/orphan", UNREFERENCED, "remote")
        ]
        names = s3_bucket.names()
        assert not any("_index/reports/orphan" in n or f"_index/{checkpoint}" in n for n in names)
        assert second.artifacts.in_remote(second.artifacts.key_of(dataset.uri))

        # The first machine's cache still holds its copies: its own collection finds them.
        report = collect_garbage(first.store, first.artifacts, first.audit, older_than=0)
        assert sorted((g.key, g.where) for g in report.removed) == [
            ("reports/orphan", "local"),
            (checkpoint, "local"),
        ]
        assert first.artifacts.resolve(dataset.uri).is_file()
    finally:
        first.close()
        second.close()


def test_garbage_collection_removes_uploads_no_index_names(tmp_path, s3_bucket, monkeypatch):
    import aimass.workspace.gc as gc
    from aimass.workspace.gc import STRAY_UPLOAD, collect_garbage

    ws = _machine(tmp_path / "home", tmp_path / "cache", s3_bucket)
    try:
        data = write_jsonl(tmp_path / "s.jsonl", sentiment_rows(20))
        dataset, _ = ws.datasets.import_file(data, name="s")
        key = ws.artifacts.key_of(dataset.uri)
        objects = ws.artifacts.remote.objects
        live = ws.artifacts.remote.index(key).upload
        lost, crashed = "a" * 32, "b" * 32
        objects.put_bytes(b"the loser of a race", f"{key}/{lost}")  # same key, no index
        objects.put_bytes(b"half a bundle", f"bundles/{'c' * 64}/{crashed}/model.safetensors")
        # Written by someone else with access to the bucket: never followed, never removed.
        objects.put_bytes(b"{}", "_index/bundles/../../escape.json")
        objects.put_bytes(b"another team's", f"their-data/{'d' * 32}/file.csv")

        # Perhaps uploads in progress: a day must pass, whatever the grace period.
        report = collect_garbage(ws.store, ws.artifacts, ws.audit, older_than=0)
        assert report.removed == [] and sorted(report.too_young) == sorted(
            [f"{key}/{lost}", f"bundles/{'c' * 64}/{crashed}"]
        )
        monkeypatch.setattr(gc, "IN_PROGRESS_FLOOR_SECONDS", 0.0)  # a day later
        report = collect_garbage(ws.store, ws.artifacts, ws.audit, older_than=0)
        assert sorted((g.key, g.reason, g.bytes) for g in report.removed) == [
            (f"bundles/{'c' * 64}/{crashed}", STRAY_UPLOAD, 13),
            (f"{key}/{lost}", STRAY_UPLOAD, 19),
        ]
        names = s3_bucket.names()
        assert not any(lost in n or crashed in n for n in names)
        assert any(n.endswith("_index/bundles/../../escape.json") for n in names)
        assert any(n.endswith(f"their-data/{'d' * 32}/file.csv") for n in names)
        assert any(f"{key}/{live}" in n for n in names)
        fresh = _machine(tmp_path / "home", tmp_path / "cache-2", s3_bucket)
        try:
            assert fresh.artifacts.resolve(dataset.uri).is_file()  # downloaded and verified
        finally:
            fresh.close()
    finally:
        ws.close()
