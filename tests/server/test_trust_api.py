"""Explanations on the predict endpoint; evaluate jobs; reports listed and downloaded."""

from __future__ import annotations

import json

import httpx
from fastapi.testclient import TestClient

from aimass.cli import _flows as flows
from aimass.client import Client
from aimass.server import create_app
from tests.evaluation.conftest import QUICK
from tests.server.test_api import P, wait_for


def through(test_client: TestClient) -> httpx.MockTransport:
    """An httpx transport for the SDK that sends every request through ``test_client``."""

    def handle(request: httpx.Request) -> httpx.Response:
        r = test_client.request(
            request.method, str(request.url), headers=dict(request.headers), content=request.content
        )
        return httpx.Response(r.status_code, headers=r.headers, content=r.content)

    return httpx.MockTransport(handle)


def test_predict_with_explanations(client, admin):
    body = {"inputs": ["good great film", "bad awful movie"], "explain": True}
    r = client.post(f"{P}/models/sentiment@production:predict", headers=admin, json=body)
    assert r.status_code == 200, r.text
    for text, prediction in zip(body["inputs"], r.json()["predictions"], strict=True):
        explanation = prediction["explanation"]
        assert explanation["method"] == "integrated-gradients"
        for word in explanation["words"]:
            assert text[word["start"] : word["end"]] == word["word"]
    occlusion = {"inputs": ["good film"], "explain": "occlusion"}
    r = client.post(f"{P}/models/sentiment:predict", headers=admin, json=occlusion)
    assert r.json()["predictions"][0]["explanation"]["method"] == "occlusion"


def test_explanations_are_bounded_and_methods_checked(client, admin):
    many = {"inputs": ["good film"] * 17, "explain": True}
    r = client.post(f"{P}/models/sentiment:predict", headers=admin, json=many)
    assert r.status_code == 429 and "AIMASS_MAX_EXPLAIN_BATCH" in r.json()["error"]["message"]
    bad = {"inputs": ["good film"], "explain": "shap"}
    assert client.post(f"{P}/models/sentiment:predict", headers=admin, json=bad).status_code == 400


def test_evaluate_job_attaches_a_report_served_as_html_and_json(
    settings_for, admin, private_tempdir
):
    app = create_app(settings_for(), job_workers=1)
    with TestClient(app, base_url="http://localhost") as c:
        job = c.post(
            f"{P}/jobs",
            headers=admin,
            json={
                "kind": "evaluate",
                "model": "sentiment@production",
                "dataset": "reviews",
                "group_field": "group",
                "options": {**QUICK, "measure_memory": False},
            },
        ).json()
        assert job["spec"]["model"] == "sentiment@1", "the alias is pinned at submission"
        done = wait_for(c, admin, job["id"])
        assert done["status"] == "succeeded", done
        listed = c.get(
            f"{P}/models/sentiment/versions/1/attachments",
            headers=admin,
            params={"kind": "evaluation"},
        ).json()
        assert [a["name"] for a in listed] == [done["result"]["attachment"]]
        base = f"{P}/models/sentiment/versions/1/reports/{listed[0]['name']}"
        page = c.get(f"{base}/report.html", headers=admin)
        assert (
            page.status_code == 200
            and "default-src 'none'" in page.headers["content-security-policy"]
        )
        assert "<html" in page.text.lower()
        numbers = c.get(f"{base}/report.json", headers=admin).json()
        assert numbers["sections"]["quality"]["data"]["accuracy"] >= 0.5
        assert c.get(f"{base}/report.exe", headers=admin).status_code == 404
        assert (
            c.get(
                f"{P}/models/sentiment/versions/1/reports/nope/report.html", headers=admin
            ).status_code
            == 404
        )

        # What the CLI does against a server, over the same API.
        remote = Client("http://localhost", admin["Authorization"].split()[1], transport=through(c))
        html, report_json = flows.report_files(remote, "sentiment@1", None, project="default")
        assert html.read_text().lower().count("<html") == 1
        assert json.loads(report_json.read_text())["model"]["version"] == 1
        preds = remote.predict("sentiment", ["good film"], explain="attention")
        assert preds[0]["explanation"]["method"] == "attention"


def test_reading_reports_needs_a_key(client):
    r = client.get(f"{P}/models/sentiment/versions/1/attachments")
    assert r.status_code == 401
