"""The API end to end in process: datasets, jobs, registry, predict, audit, metrics."""

from __future__ import annotations

import hashlib
import json
import time

from fastapi.testclient import TestClient

from aimass.server import create_app
from tests.conftest import sentiment_rows

P = "/v1/projects/default"


def wait_for(client, headers, job_id, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"{P}/jobs/{job_id}", headers=headers).json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish")


def test_predict_batches_and_audits_a_hash_never_the_text(client, admin):
    raw = json.dumps({"inputs": ["good great film", "bad awful movie"]}).encode()
    r = client.post(
        f"{P}/models/sentiment@production:predict",
        headers={**admin, "Content-Type": "application/json"},
        content=raw,
    )
    assert r.status_code == 200, r.text
    out = r.json()
    assert (out["model"], out["version"]) == ("sentiment", 1)
    assert [p["label"] for p in out["predictions"]] == ["pos", "neg"]
    event = client.get("/v1/audit", headers=admin, params={"action": "models.predict"}).json()[0]
    assert event["outcome"] == "ok" and event["request_id"] == r.headers["x-request-id"]
    assert event["input_hash"] == hashlib.sha256(raw).hexdigest()
    assert "good great film" not in json.dumps(event)
    metrics = client.get("/metrics", headers=admin).text
    assert 'aimass_predictions_total{model="sentiment",project="default"} 2.0' in metrics
    assert "aimass_batch_size_bucket" in metrics and 'reason="' in metrics
    # Anonymous scrapes see the same totals without any tenant's names.
    anonymous = client.get("/metrics").text
    assert "aimass_predictions_total 2.0" in anonymous
    assert "sentiment" not in anonymous and 'project="' not in anonymous


def test_upload_list_show_versions(client, admin):
    content = "".join(json.dumps(r) + "\n" for r in sentiment_rows(60, seed=3))
    body = {"name": "uploaded", "format": "jsonl", "content": content}
    r = client.post(f"{P}/datasets", headers=admin, json=body)
    assert r.status_code == 201, r.text
    assert r.json()["num_rows"] == 60 and r.json()["schema"]["label_type"] == "string"
    assert r.json()["provenance"]["source"] == "upload"
    assert client.get(f"{P}/datasets/uploaded/versions/1", headers=admin).json()["version"] == 1
    assert len(client.get(f"{P}/datasets/uploaded/versions", headers=admin).json()) == 1
    bad = {
        "name": "bad",
        "format": "jsonl",
        "content": '{"text": "a", "label": "x"}\n{"text": 2}\n',
    }
    r = client.post(f"{P}/datasets", headers=admin, json=bad)
    assert r.status_code == 400 and "line 2" in r.json()["error"]["message"]
    assert client.get(f"{P}/datasets/bad", headers=admin).status_code == 404


def test_registry_card_and_delete_with_safeguards(client, admin):
    card = client.get(f"{P}/models/sentiment/versions/production/card", headers=admin)
    assert card.status_code == 200 and card.text.startswith("# Model card: sentiment v1")
    r = client.delete(f"{P}/models/sentiment/versions/1", headers=admin)
    assert r.status_code == 409 and r.json()["error"]["code"] == "CONFLICT"
    assert client.get(f"{P}/models/sentiment", headers=admin).json()["aliases"]["production"] == 1


def test_training_and_batch_prediction_jobs_run_on_the_workers(settings_for, admin):
    app = create_app(settings_for(), job_workers=1)
    with TestClient(app, base_url="http://localhost") as c:
        train = {
            "kind": "train",
            "dataset": "reviews",
            "base": "tiny",
            "model": "served",
            "config": {"mode": "finetune", "epochs": 2, "lr": 1e-3, "batch_size": 16},
        }
        job = c.post(f"{P}/jobs", headers=admin, json=train).json()
        assert job["status"] in ("queued", "running")
        done = wait_for(c, admin, job["id"])
        assert done["status"] == "succeeded", done
        assert done["metrics"]["validation"]["accuracy"] >= 0.5
        logs = c.get(f"{P}/jobs/{job['id']}/logs", headers=admin).json()
        messages = " | ".join(line["message"] for line in logs)
        assert "epoch 1/2" in messages and "checkpoint saved after epoch 2" in messages
        batch = {
            "kind": "batch-predict",
            "model": "served",
            "dataset": "reviews",
            "output": "scored",
            "split": "test",
        }
        job = c.post(f"{P}/jobs", headers=admin, json=batch).json()
        assert job["spec"]["model"] == "served@1", "the version is pinned at submission"
        done = wait_for(c, admin, job["id"])
        assert done["status"] == "succeeded", done
        scored = c.get(f"{P}/datasets/scored", headers=admin).json()
        assert scored["num_rows"] == 20 and "true_label" in scored["schema"]["extra_fields"]
        assert scored["provenance"]["model"] == "served@1"
        finished = c.get("/v1/audit", headers=admin, params={"action": "job.succeeded"}).json()
        assert {e["resource"].rsplit("/", 1)[1] for e in finished} >= {job["id"]}
        assert 'aimass_jobs{status="succeeded"}' in c.get("/metrics").text


def test_a_queued_job_is_cancelled_at_once(client, admin):
    spec = {"kind": "train", "dataset": "reviews", "base": "tiny", "model": "never"}
    job = client.post(f"{P}/jobs", headers=admin, json=spec).json()
    cancelled = client.post(f"{P}/jobs/{job['id']}:cancel", headers=admin).json()
    assert cancelled["status"] == "cancelled"
    assert any(j["id"] == job["id"] for j in client.get(f"{P}/jobs", headers=admin).json())


def test_reuse_finishes_at_once_with_the_identical_version(client, admin):
    from tests.server.conftest import SPEC

    body = {"kind": "train", "reuse": True, **SPEC.to_dict()}
    job = client.post(f"{P}/jobs", headers=admin, json=body).json()
    assert job["status"] == "succeeded" and job["result"]["reused"] is True
    assert job["result"]["version"] == 1


def test_keys_are_shown_once_and_stored_only_as_keyed_hashes(client, admin, trained_home):
    created = client.post(
        f"{P}/keys", headers=admin, json={"name": "app", "scopes": ["predict"]}
    ).json()
    listed = client.get(f"{P}/keys", headers=admin).json()
    assert created["key"] not in json.dumps(listed)
    raw = (trained_home / "aimass.db").read_bytes()
    assert created["key"].encode() not in raw
    secret = created["key"].split("_", 2)[2]  # aimass_<id>_<secret>; "_" may be in the secret
    assert secret.encode() not in raw
    assert (trained_home / "admin.key").stat().st_mode & 0o777 == 0o600
    assert (trained_home / "server.secret").stat().st_mode & 0o777 == 0o600


def test_audit_verify_over_the_api(client, admin):
    client.post(f"{P}/models/sentiment:predict", headers=admin, json={"inputs": ["good"]})
    result = client.get("/v1/audit:verify", headers=admin).json()
    assert result["ok"] and result["rows"] >= 1
    project_key = {"Authorization": admin["Authorization"]}
    assert client.get(f"{P}/audit", headers=project_key).status_code == 200


def _second_version(trained_home):
    """Register version 2 of 'sentiment' (same bundle) straight in the store."""
    from aimass.workspace import Workspace
    from tests.conftest import register_copy
    from tests.server.conftest import serve_settings

    ws = Workspace(serve_settings(trained_home))
    return ws, register_copy(ws, "sentiment@1", "sentiment", config_digest="0" * 64, metrics=False)


def _served_version(client, admin, ref):
    body = {"inputs": ["good film"]}
    r = client.post(f"{P}/models/{ref}:predict", headers=admin, json=body)
    assert r.status_code == 200, r.text
    return r.json()["version"]


def test_alias_moves_through_the_server_take_effect_at_once(client, admin, trained_home):
    ws, v2 = _second_version(trained_home)
    try:
        for target in (1, v2.version, 1):
            r = client.put(
                f"{P}/models/sentiment/aliases/canary", headers=admin, json={"version": target}
            )
            assert r.status_code == 200, r.text
            assert _served_version(client, admin, "sentiment@canary") == target
    finally:
        ws.store.registry.delete_alias("default", "sentiment", "canary")
        ws.store.registry.delete_version("default", "sentiment", v2.version)
        ws.close()


def test_alias_moves_from_another_process_are_seen_after_the_cache_ttl(
    settings_for, admin, trained_home
):
    import time

    from fastapi.testclient import TestClient

    app = create_app(settings_for(resolve_cache_seconds=0.2), job_workers=0)
    ws, v2 = _second_version(trained_home)
    try:
        with TestClient(app, base_url="http://localhost") as client:
            ws.models.set_alias("sentiment", "canary", 1)
            assert _served_version(client, admin, "sentiment@canary") == 1
            ws.models.set_alias(
                "sentiment", "canary", v2.version
            )  # out of band: not via the server
            time.sleep(0.25)
            assert _served_version(client, admin, "sentiment@canary") == v2.version
    finally:
        ws.store.registry.delete_alias("default", "sentiment", "canary")
        ws.store.registry.delete_version("default", "sentiment", v2.version)
        ws.close()


def test_uploads_can_be_deidentified_on_the_server(client, admin, trained_home):
    import pyarrow.parquet as pq

    from aimass.workspace import Workspace
    from tests.server.conftest import serve_settings

    rows = [
        {"text": f"write to ann{i}@example.org about it", "label": "ab"[i % 2]} for i in range(20)
    ]
    body = {
        "name": "clean-upload",
        "format": "jsonl",
        "content": "".join(json.dumps(r) + "\n" for r in rows),
        "deidentify": {"mode": "mask", "recognizers": ["email"]},
    }
    r = client.post(f"{P}/datasets", headers=admin, json=body)
    assert r.status_code == 201, r.text
    assert r.json()["provenance"]["deidentification"]["counts"] == {"EMAIL_ADDRESS": 20}
    ws = Workspace(serve_settings(trained_home))
    stored = pq.read_table(ws.artifacts.resolve(ws.datasets.get("clean-upload").uri)).to_pylist()
    ws.close()
    assert all("@example.org" not in row["text"] for row in stored)
    bad = {**body, "name": "x", "deidentify": {"mode": "shred"}}
    assert client.post(f"{P}/datasets", headers=admin, json=bad).status_code == 400


def test_dp_training_options_are_checked_before_a_job_exists(client, admin):
    body = {
        "kind": "train",
        "dataset": "reviews",
        "base": "tiny",
        "model": "private",
        "privacy": {"target_epsilon": -1},
    }
    r = client.post(f"{P}/jobs", headers=admin, json=body)
    assert r.status_code == 400, r.text
    assert "epsilon" in r.json()["error"]["message"]
    jobs = client.get(f"{P}/jobs", headers=admin).json()
    assert all(j["spec"]["model"] != "private" for j in jobs)
