"""A served home with a tiny trained model, and helpers to call the app in process."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from aimass.jobs.train import TrainSpec
from aimass.server import create_app
from aimass.settings import Settings
from aimass.workspace import Workspace
from tests.conftest import sentiment_rows, write_jsonl

SPEC = TrainSpec(
    dataset="reviews",
    base="tiny",
    model="sentiment",
    config={"mode": "finetune", "epochs": 2, "lr": 1e-3, "batch_size": 16},
    alias="production",
)


@pytest.fixture(scope="module")
def trained_home(tmp_path_factory, tiny_bert_dir):
    """A home (shared by a test module) with dataset 'reviews', base 'tiny', model 'sentiment'."""
    home = tmp_path_factory.mktemp("served") / "home"
    ws = Workspace(Settings(home=home, device="cpu"))
    data = write_jsonl(home.parent / "reviews.jsonl", sentiment_rows(200))
    ws.datasets.import_file(data, name="reviews")
    ws.bases.import_(str(tiny_bert_dir), name="tiny")
    ws.jobs.train(SPEC)
    ws.close()
    return home


def serve_settings(home, **overrides) -> Settings:
    """Server settings for tests: batches run in process unless a test asks for runners
    (starting runner processes per app would cost seconds each; tests/serving/test_runner.py,
    the load test and the real-process test in tests/client cover them)."""
    overrides.setdefault("serve_runners", 0)
    return Settings(home=home, device="cpu", job_heartbeat_seconds=0.2, **overrides)


@pytest.fixture
def settings_for(trained_home):
    def make(**overrides):
        return serve_settings(trained_home, **overrides)

    return make


@pytest.fixture
def client_with(settings_for):
    """``client_with(**settings)``: a started TestClient on an app with those settings."""
    opened = []

    def make(**overrides):
        app = create_app(settings_for(**overrides), job_workers=0)
        client = TestClient(app, base_url="http://localhost")
        client.__enter__()
        opened.append(client)
        return client

    yield make
    for client in opened:
        client.__exit__(None, None, None)


@pytest.fixture
def app(settings_for):
    return create_app(settings_for(), job_workers=0)


@pytest.fixture
def client(app):
    with TestClient(app, base_url="http://localhost") as c:
        yield c


@pytest.fixture
def admin(client, trained_home):
    """Headers with the all-projects admin key the server wrote at start."""
    key = (trained_home / "admin.key").read_text().strip()
    return {"Authorization": f"Bearer {key}"}


def make_key(client, admin, scopes, *, project="default", name="k"):
    """Headers with a new key of ``project`` holding ``scopes``."""
    if (
        project != "default"
        and client.get(f"/v1/projects/{project}", headers=admin).status_code == 404
    ):
        assert client.post("/v1/projects", headers=admin, json={"name": project}).status_code == 201
    r = client.post(
        f"/v1/projects/{project}/keys", headers=admin, json={"name": name, "scopes": scopes}
    )
    assert r.status_code == 201, r.text
    return {"Authorization": f"Bearer {r.json()['key']}"}
