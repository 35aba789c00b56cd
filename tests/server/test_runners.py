"""The server with runner processes: warm-up, predict, metrics, and no runner left behind."""

from __future__ import annotations

import os
import time

import pytest
from fastapi.testclient import TestClient

from aimass.server import create_app

# Real runner processes: the make test suite, not the fast one.
pytestmark = pytest.mark.subprocess

URL = "/v1/projects/default/models/sentiment@production:predict"


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_predict_is_served_by_warm_runner_processes(settings_for, admin, trained_home):
    settings = settings_for(serve_runners=2, warm_models=["sentiment@production"])
    app = create_app(settings, job_workers=0)
    key = (trained_home / "admin.key").read_text().strip()
    headers = {"Authorization": f"Bearer {key}"}
    with TestClient(app, base_url="http://localhost") as client:
        assert client.get("/readyz").status_code == 200
        (pids,) = app.state.aimass.runner_pids().values()
        assert len(pids) == 2 and os.getpid() not in pids
        texts = ["good great film", "bad awful movie", "it was fine"]
        r = client.post(URL, headers=headers, json={"inputs": texts})
        assert r.status_code == 200, r.text
        assert [p["label"] for p in r.json()["predictions"]][:2] == ["pos", "neg"]
        # The same answers as the in-process path of the same server code.
        local = app.state.aimass.workspace.serving.load_version(
            app.state.aimass.workspace.models.get("sentiment@production")
        )
        expected = local.predict(texts)
        for got, want in zip(r.json()["predictions"], expected, strict=True):
            assert got["label"] == want["label"]
            assert abs(got["score"] - want["score"]) < 1e-5
        metrics = client.get("/metrics", headers=headers).text
        assert 'aimass_model_runners{model="default/sentiment@1"} 2.0' in metrics
        assert 'aimass_model_runner_restarts{model="default/sentiment@1"} 0.0' in metrics
    deadline = time.monotonic() + 20
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(alive(p) for p in pids), "runners outlived the app"


def test_a_model_that_cannot_load_in_a_runner_is_a_clear_error(settings_for, admin, trained_home):
    """A version whose bundle was damaged on disk: 422 BUNDLE_INVALID, the server stays up."""
    import shutil

    app = create_app(settings_for(serve_runners=1), job_workers=0)
    key = (trained_home / "admin.key").read_text().strip()
    headers = {"Authorization": f"Bearer {key}"}
    with TestClient(app, base_url="http://localhost") as client:
        ws = app.state.aimass.workspace
        directory = ws.artifacts.resolve(ws.models.get("sentiment@production").uri)
        saved = directory.parent / "config.saved"
        shutil.copy(directory / "config.json", saved)
        try:
            (directory / "config.json").write_text("{}")
            r = client.post(URL, headers=headers, json={"inputs": ["good"]})
            assert r.status_code == 422 and r.json()["error"]["code"] == "BUNDLE_INVALID"
        finally:
            shutil.copy(saved, directory / "config.json")
            saved.unlink()
        assert app.state.aimass.runner_pids() == {}
        r = client.post(URL, headers=headers, json={"inputs": ["good great film"]})
        assert r.status_code == 200, r.text
