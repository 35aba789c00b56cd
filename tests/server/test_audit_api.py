"""The membership-inference audit as a job: over the API, the SDK and the remote CLI."""

from __future__ import annotations

import functools
import json

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from aimass.client import Client
from aimass.errors import NotFound
from aimass.server import create_app
from tests.server.conftest import make_key, serve_settings
from tests.server.test_trust_api import through

P = "/v1/projects/default"


@pytest.fixture
def working(trained_home):
    """A TestClient on an app whose one job worker runs what is queued."""
    app = create_app(serve_settings(trained_home), job_workers=1)
    with TestClient(app, base_url="http://localhost") as client:
        yield client


@pytest.fixture
def admin_key(trained_home):
    return (trained_home / "admin.key").read_text().strip()


def test_an_audit_job_attaches_its_report_to_the_version(working, admin_key):
    with Client("http://localhost", admin_key, transport=through(working)) as sdk:
        job = sdk.jobs.submit_audit(
            model="sentiment@production", dataset="reviews", max_examples=20
        )
        assert job.kind == "audit-privacy" and job.spec["model"] == "sentiment@1", "alias pinned"
        done = sdk.jobs.wait(job.id, poll=0.2, timeout=300)
        assert done.status == "succeeded", done.error
        report = done.result["report"]
        assert report["members"] == report["non_members"] == 20
        assert set(report["attacks"]) == {"loss_threshold", "calibrated"}
        [attached] = sdk.models.attachments("sentiment@1", kind="privacy-audit")
        assert attached.summary["auc"] == report["attacks"]["loss_threshold"]["auc"]
        with pytest.raises(NotFound, match="no version 9"):
            sdk.jobs.submit_audit(model="sentiment@1", dataset="reviews@9")


def test_auditing_needs_the_standing_of_training_the_model(working, trained_home):
    admin = {"Authorization": f"Bearer {(trained_home / 'admin.key').read_text().strip()}"}
    reader = make_key(working, admin, ["read", "predict"], name="audit-reader")
    body = {"kind": "audit-privacy", "model": "sentiment@1", "dataset": "reviews"}
    before = working.get(f"{P}/jobs", headers=admin).json()
    assert working.post(f"{P}/jobs", headers=reader, json=body).status_code == 403
    few = working.post(f"{P}/jobs", headers=admin, json={**body, "max_examples": 5})
    assert few.status_code == 400
    assert working.get(f"{P}/jobs", headers=admin).json() == before, "nothing was queued"


def test_the_remote_cli_audits_through_the_server(working, admin_key, monkeypatch):
    from aimass.cli import app as cli

    monkeypatch.setattr(
        "aimass.client.Client", functools.partial(Client, transport=through(working))
    )
    env = {"AIMASS_URL": "http://localhost", "AIMASS_API_KEY": admin_key}
    args = ["audit-privacy", "sentiment@1", "--dataset", "reviews", "--max-examples", "20"]
    result = CliRunner().invoke(cli, [*args, "--no-calibrated", "--json"], env=env)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["model"] == "sentiment@1" and set(report["attacks"]) == {"loss_threshold"}
