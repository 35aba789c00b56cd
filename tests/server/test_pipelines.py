"""Pipelines over HTTP: create (checked, models pinned), predict through de-identify →
route → two classifiers → threshold, linked audit entries, per-model predict scopes,
alias pinning, versions, the SDK."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from fastapi.testclient import TestClient

from aimass.client import AsyncClient
from aimass.data.deidentify import (
    create_project_key,
    key_fingerprint,
    load_project_key,
    project_key_path,
)
from aimass.errors import FailedPrecondition, InvalidArgument, PermissionDenied
from aimass.server import create_app
from aimass.settings import Settings
from aimass.workspace import Workspace
from tests.conftest import register_copy
from tests.server.conftest import make_key, serve_settings

P = "/v1/projects/default/pipelines"
SPEC = {
    "steps": [
        {"name": "clean", "type": "deidentify", "recognizers": ["email"], "next": "lang"},
        {"name": "lang", "type": "route", "routes": {"zh": "zh"}, "default": "en"},
        {"name": "zh", "type": "model", "model": "zh-sentiment@1", "next": "gate"},
        {"name": "en", "type": "model", "model": "sentiment@production", "next": "gate"},
        {"name": "gate", "type": "threshold", "min_score": 0.5},
    ]
}
TEXTS = ["good great film, write to ann@example.org", "这部电影很好", "bad awful plot"]


@pytest.fixture(scope="module")
def home(trained_home):
    """The served home plus 'zh-sentiment': the same bundle registered under a second name
    (a stand-in for a Chinese classifier; routing, not accuracy, is under test)."""
    ws = Workspace(Settings(home=trained_home, device="cpu"))
    register_copy(ws, "sentiment@1", "zh-sentiment", config_digest="zh")
    ws.close()
    return trained_home


@pytest.fixture
def api(home):
    with TestClient(
        create_app(serve_settings(home), job_workers=0), base_url="http://localhost"
    ) as c:
        yield c


@pytest.fixture
def admin(api, home):
    return {"Authorization": f"Bearer {(home / 'admin.key').read_text().strip()}"}


def create(api, admin, name="triage", spec=SPEC):
    r = api.post(P, headers=admin, json={"name": name, "spec": spec, "description": "t"})
    assert r.status_code in (200, 201), r.text
    return r.json()


def test_a_pipeline_answers_over_http_and_audits_each_step_by_request_id(api, admin):
    made = create(api, admin)
    assert made["name"] == "triage" and made["models"] == ["sentiment", "zh-sentiment"]
    en = next(s for s in made["spec"]["steps"] if s["name"] == "en")
    assert en["model"] == "sentiment@1"
    assert en["pin"]["requested"] == "sentiment@production"
    assert en["pin"]["labels"] == ["neg", "pos"]

    r = api.post(f"{P}/triage@{made['version']}:predict", headers=admin, json={"inputs": TEXTS})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["pipeline"], body["version"]) == ("triage", made["version"])
    good, chinese, bad = body["predictions"]
    assert good["label"] == "pos" and bad["label"] == "neg"
    assert good["decided_by"] == {"step": "en", "model": "sentiment@1"}
    assert chinese["decided_by"] == {"step": "zh", "model": "zh-sentiment@1"}
    assert [t["step"] for t in good["trace"]] == ["clean", "lang", "en", "gate"]
    assert good["trace"][0]["changed"] and not bad["trace"][0]["changed"]
    assert chinese["trace"][1]["language"] == "zh"
    assert not any(p["abstained"] for p in body["predictions"])

    request_id = r.headers["x-request-id"]
    events = api.get("/v1/audit", headers=admin, params={"limit": 50}).json()
    linked = [e for e in events if e["request_id"] == request_id]
    actions = sorted(e["action"] for e in linked)
    assert actions == ["pipelines.predict"] + ["pipelines.step"] * 5
    steps = {e["details"]["step"]: e["details"] for e in linked if e["action"] == "pipelines.step"}
    assert steps["en"]["model"] == "sentiment@1" and steps["en"]["inputs"] == 2
    assert steps["zh"]["inputs"] == 1 and steps["gate"]["inputs"] == 3
    call = next(e for e in linked if e["action"] == "pipelines.predict")
    assert call["details"]["steps"] == ["clean", "lang", "zh", "en", "gate"]
    assert "ann@example.org" not in str(linked)


def test_a_threshold_abstains_below_its_score(api, admin):
    strict = {"steps": [*SPEC["steps"][:4], {**SPEC["steps"][4], "min_score": 0.9999}]}
    made = create(api, admin, name="strict", spec=strict)
    r = api.post(f"{P}/strict@{made['version']}:predict", headers=admin, json={"inputs": TEXTS})
    result = r.json()["predictions"][0]
    assert result["label"] == "abstain" and result["abstained"]
    assert "below 0.9999 at step 'gate'" in result["reason"]


def test_a_key_without_predict_on_one_of_its_models_is_refused(api, admin):
    create(api, admin)
    one = make_key(api, admin, ["predict:sentiment"], name="one-model")
    r = api.post(f"{P}/triage:predict", headers=one, json={"inputs": ["good film"]})
    assert r.status_code == 403
    assert "predict on model 'zh-sentiment'" in r.json()["error"]["message"]
    both = make_key(api, admin, ["predict:sentiment", "predict:zh-sentiment"], name="both")
    assert api.post(f"{P}/triage:predict", headers=both, json={"inputs": ["x"]}).status_code == 200
    reader = make_key(api, admin, ["read"], name="reader")
    assert (
        api.post(f"{P}/triage:predict", headers=reader, json={"inputs": ["x"]}).status_code == 403
    )
    assert api.post(P, headers=both, json={"name": "x", "spec": SPEC}).status_code == 403


def test_an_output_policy_hides_scores_in_results_and_traces(api, admin):
    create(api, admin)
    r = api.post(
        "/v1/projects/default/keys",
        headers=admin,
        json={"name": "labels-only", "scopes": ["predict"], "output_policy": "labels"},
    )
    key = {"Authorization": f"Bearer {r.json()['key']}"}
    result = api.post(f"{P}/triage:predict", headers=key, json={"inputs": ["good"]}).json()
    shown = result["predictions"][0]
    assert "score" not in shown and "probabilities" not in shown
    assert all("score" not in entry for entry in shown["trace"])


def test_a_spec_with_problems_is_refused_with_all_of_them(api, admin):
    bad = {
        "steps": [*SPEC["steps"][:2], {**SPEC["steps"][2], "model": "ghost@1"}, SPEC["steps"][3]]
    }
    r = api.post(P, headers=admin, json={"name": "broken", "spec": bad})
    assert r.status_code == 400
    message = r.json()["error"]["message"]
    assert "step 'zh': next names 'gate', which is not a step" in message
    bad = {
        "steps": [*SPEC["steps"][:2], {**SPEC["steps"][2], "model": "ghost@1"}, *SPEC["steps"][3:]]
    }
    message = api.post(P, headers=admin, json={"name": "broken", "spec": bad}).json()["error"][
        "message"
    ]
    assert "step 'zh': model 'ghost' not found" in message
    r = api.post(P, headers=admin, json={"name": "Bad Name", "spec": SPEC})
    assert r.status_code in (400, 422)


def test_an_ensemble_averages_versions_of_one_model_but_not_one_version_twice(api, admin, home):
    ws = Workspace(Settings(home=home, device="cpu"))
    try:
        if ws.models.get("zh-sentiment@latest").version == 1:
            register_copy(ws, "sentiment@1", "zh-sentiment", config_digest="zh-retrained")
    finally:
        ws.close()
    versions = ["zh-sentiment@1", "zh-sentiment@2"]
    spec = {"steps": [{"name": "avg", "type": "ensemble", "models": versions}]}
    made = create(api, admin, name="two-versions", spec=spec)
    assert made["spec"]["steps"][0]["models"] == versions
    one = ["sentiment@1", "sentiment@production"]  # the alias names version 1
    same = {"steps": [{"name": "avg", "type": "ensemble", "models": one}]}
    r = api.post(P, headers=admin, json={"name": "one-version", "spec": same})
    assert r.status_code == 400
    assert "resolve to sentiment@1 more than once" in r.json()["error"]["message"]


def test_moving_a_model_alias_never_changes_a_pipeline_version(api, admin, home):
    first = create(api, admin, name="pinned")
    ws = Workspace(Settings(home=home, device="cpu"))
    register_copy(ws, "sentiment@1", "sentiment", config_digest="again")
    ws.close()
    r = api.put(
        "/v1/projects/default/models/sentiment/aliases/production",
        headers=admin,
        json={"version": 2},
    )
    assert r.status_code == 200, r.text
    try:
        shown = api.get(f"{P}/pinned/versions/{first['version']}", headers=admin).json()
        assert shown["spec"] == first["spec"]
        r = api.post(
            f"{P}/pinned@{first['version']}:predict", headers=admin, json={"inputs": ["good"]}
        )
        assert r.json()["predictions"][0]["decided_by"]["model"] == "sentiment@1"
        again = create(api, admin, name="pinned")
        assert again["version"] == first["version"] + 1 and again["created"] is True
        en = next(s for s in again["spec"]["steps"] if s["name"] == "en")
        assert en["model"] == "sentiment@2"
        same = create(api, admin, name="pinned")
        assert (same["version"], same["created"]) == (again["version"], False)
    finally:
        api.put(
            "/v1/projects/default/models/sentiment/aliases/production",
            headers=admin,
            json={"version": 1},
        )


def test_the_sdk_creates_lists_aliases_and_predicts(home):
    app = create_app(serve_settings(home), job_workers=0)
    app.state.aimass.start(workers=0)
    key = (home / "admin.key").read_text().strip()

    async def main():
        transport = httpx.ASGITransport(app=app)
        async with AsyncClient("http://localhost", key, transport=transport) as client:
            made = await client.pipelines.create(SPEC, name="sdk", description="from the SDK")
            assert made.description == "from the SDK"
            assert made.models == ["sentiment", "zh-sentiment"]
            assert "sdk" in [p.name for p in await client.pipelines.list()]
            assert [v.version for v in await client.pipelines.versions("sdk")] == [made.version]
            moved = await client.pipelines.set_alias("sdk", "production", made.version)
            assert moved.aliases == ["production"]
            assert (await client.pipelines.get("sdk@production")).version == made.version
            answer = await client.pipelines.predict("sdk@production", ["good great"], explain=True)
            result = answer.predictions[0]
            assert result["label"] == "pos"
            assert result["explanation"]["target"] == "pos"
            with pytest.raises(InvalidArgument):
                await client.pipelines.create({"steps": []}, name="empty")
            narrowed = await client.keys.create("narrow", scopes=["predict:sentiment"])
        async with AsyncClient("http://localhost", narrowed.key, transport=transport) as other:
            with pytest.raises(PermissionDenied):
                await other.pipelines.predict("sdk", ["good"])
        await app.state.aimass.stop()

    asyncio.run(main())


def test_a_moved_pipeline_alias_is_served_at_once_by_this_server(api, admin):
    lenient = create(api, admin, name="moving")
    strict = {"steps": [*SPEC["steps"][:4], {**SPEC["steps"][4], "min_score": 0.9999}]}
    harsh = create(api, admin, name="moving", spec=strict)
    url = f"{P}/moving@production:predict"
    for version, abstains in ((lenient["version"], False), (harsh["version"], True)):
        r = api.put(f"{P}/moving/aliases/production", headers=admin, json={"version": version})
        assert r.status_code == 200, r.text
        body = api.post(url, headers=admin, json={"inputs": ["good great film"]}).json()
        assert body["version"] == version
        assert body["predictions"][0]["abstained"] is abstains


def test_the_sync_sdk_and_the_remote_cli_against_a_live_server(home, monkeypatch, private_tempdir):
    import json

    from typer.testing import CliRunner

    from aimass.cli import app
    from aimass.client import Client
    from tests.conftest import live_server

    server = live_server(home, job_workers=1, serve_runners=0)
    url, key, _app = next(server)
    try:
        with Client(url, key) as client:
            made = client.pipelines.create(SPEC, name="live")
            client.pipelines.set_alias("live", "production", made.version)
            assert client.pipelines.get("live@production").version == made.version
            assert [v.version for v in client.pipelines.versions("live")] == [made.version]
            answer = client.pipelines.predict("live@production", ["good great film"])
            assert answer.predictions[0]["decided_by"]["step"] == "en"
        monkeypatch.setenv("AIMASS_URL", url)
        monkeypatch.setenv("AIMASS_API_KEY", key)
        result = CliRunner().invoke(app, ["pipelines", "predict", "live", "这部电影很好", "--json"])
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)[0]["decided_by"]["step"] == "zh"
        # Evaluating remotely: a queued job on the server, then the report fetched.
        quick = ["--robustness-sample", "20", "--explain-examples", "0", "--min-group-size", "5"]
        args = ["pipelines", "evaluate", "live", "--dataset", "reviews", *quick, "--json"]
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
        out = json.loads(result.stdout)
        assert out["document"]["model"]["name"] == "live"
        with Client(url, key) as client:
            shown = client.pipelines.get("live")
            assert list(shown.evaluations) == [out["report"]]
            page = client.pipelines.report("live", out["report"])
            assert b"<html" in page.lower()
    finally:
        next(server, None)


QUICK = {
    "robustness_sample": 20,
    "latency_runs": 2,
    "batch_runs": 1,
    "batch_size": 8,
    "n_boot": 20,
    "explain_examples": 1,
    "measure_memory": False,
}


def test_a_pipeline_is_evaluated_like_a_model_and_its_report_is_served(api, admin, home):
    import statistics

    from aimass.data.tables import read_split

    ws = Workspace(Settings(home=home, device="cpu"))
    try:
        dataset = ws.datasets.get("reviews")
        rows = read_split(ws.artifacts.resolve(dataset.uri), "test")
    finally:
        ws.close()
    # The threshold at the model's median score: about half the rows are abstained on.
    scores = api.post(
        "/v1/projects/default/models/sentiment@1:predict",
        headers=admin,
        json={"inputs": rows.texts},
    ).json()["predictions"]
    gate = {**SPEC["steps"][4], "min_score": statistics.median(p["score"] for p in scores)}
    made = create(api, admin, name="judged", spec={"steps": [*SPEC["steps"][:4], gate]})
    ref, version = f"judged@{made['version']}", f"{P}/judged/versions/{made['version']}"
    body = {"kind": "evaluate", "pipeline": ref, "dataset": "reviews", "options": QUICK}
    # A report runs the pipeline's models and is recorded on it: the standing of training.
    reader = make_key(api, admin, ["predict", "read"], name="reader")
    refused = api.post("/v1/projects/default/jobs", headers=reader, json=body)
    assert refused.status_code == 403, refused.text
    both = {**body, "model": "sentiment@1"}
    r = api.post("/v1/projects/default/jobs", headers=admin, json=both)
    assert r.status_code == 400 and "exactly one" in r.json()["error"]["message"]
    r = api.post("/v1/projects/default/jobs", headers=admin, json=body)
    assert r.status_code == 201, r.text
    assert r.json()["spec"]["pipeline"] == ref
    ws = Workspace(Settings(home=home, device="cpu"))
    try:
        done = ws.jobs.run(r.json()["id"])
    finally:
        ws.close()
    name = done.result["name"]
    summary = api.get(version, headers=admin).json()["evaluations"][name]
    assert summary["dataset"] == "reviews@1" and summary["rows"] == len(rows)

    # The accuracy is that of the pipeline's own answers (an abstention is a wrong one).
    answers = api.post(f"{P}/{ref}:predict", headers=admin, json={"inputs": rows.texts}).json()[
        "predictions"
    ]
    right = sum(a["label"] == str(t) for a, t in zip(answers, rows.labels, strict=True))
    assert summary["accuracy"] == pytest.approx(right / len(rows))

    abstained = sum(a["abstained"] for a in answers)
    assert 0 < abstained < len(rows)
    assert summary["coverage"] == pytest.approx(1 - abstained / len(rows))
    document = api.get(f"{version}/reports/{name}/report.json", headers=admin).json()
    assert document["model"]["architecture"] == "pipeline"
    assert document["model"]["labels"] == ["neg", "pos", "abstain"]
    # Macro averages are over the true classes: 'abstain' never is one.
    quality = document["sections"]["quality"]["data"]
    per_class = quality["per_class"]
    assert quality["f1_macro"] == pytest.approx(
        (per_class["neg"]["f1"] + per_class["pos"]["f1"]) / 2
    )
    assert quality["answered_accuracy"] == pytest.approx(right / (len(rows) - abstained))
    calibration = document["sections"]["calibration"]
    assert calibration["notes"] == [
        f"over the {len(rows) - abstained} answered inputs (abstentions left out)"
    ]
    assert document["sections"]["explanations"]["status"] == "ok"
    page = api.get(f"{version}/reports/{name}/report.html", headers=admin)
    assert page.status_code == 200 and "Content-Security-Policy" in page.headers
    missing = api.get(f"{version}/reports/nope/report.html", headers=admin)
    assert missing.status_code == 404 and name in missing.json()["error"]["message"]


def test_aliases_and_unaliased_versions_are_deleted_with_models_write(api, admin):
    first = create(api, admin, name="old")
    strict = {"steps": [*SPEC["steps"][:4], {**SPEC["steps"][4], "min_score": 0.9}]}
    create(api, admin, name="old", spec=strict)
    api.put(f"{P}/old/aliases/production", headers=admin, json={"version": first["version"]})
    reader = make_key(api, admin, ["predict", "read"], name="no-write")
    assert api.delete(f"{P}/old/aliases/production", headers=reader).status_code == 403
    held = api.delete(f"{P}/old/versions/{first['version']}", headers=admin)
    assert held.status_code == 409 and "production" in held.json()["error"]["message"]
    assert api.delete(f"{P}/old/aliases/production", headers=admin).status_code == 200
    # The alias is gone for this server at once (its resolved-pipeline cache is cleared).
    gone = api.post(f"{P}/old@production:predict", headers=admin, json={"inputs": ["good"]})
    assert gone.status_code == 404
    deleted = api.delete(f"{P}/old/versions/{first['version']}", headers=admin)
    assert deleted.status_code == 200 and deleted.json()["version"] == first["version"]
    versions = api.get(f"{P}/old/versions", headers=admin).json()
    assert [v["version"] for v in versions] == [first["version"] + 1]


def test_a_pseudonymizing_pipeline_pins_the_project_key_and_refuses_another(api, admin, home):
    spec = {
        "steps": [
            {
                "name": "clean",
                "type": "deidentify",
                "mode": "pseudonymize",
                "recognizers": ["email"],
                "next": "en",
            },
            {"name": "en", "type": "model", "model": "sentiment@production"},
        ]
    }
    path = project_key_path(home, "default")
    saved = path.read_bytes() if path.exists() else None
    path.unlink(missing_ok=True)
    try:
        r = api.post(P, headers=admin, json={"name": "pseudo", "spec": spec})
        assert r.status_code == 412, r.text
        assert "aimass pii key create --project default" in r.json()["error"]["message"]

        create_project_key(home, "default")
        made = create(api, admin, name="pseudo", spec=spec)
        key = load_project_key(home, "default")
        assert made["spec"]["steps"][0]["key_fingerprint"] == key_fingerprint(key)
        url = f"{P}/pseudo@{made['version']}:predict"
        r = api.post(url, headers=admin, json={"inputs": [TEXTS[0]]})
        assert r.status_code == 200, r.text
        served = r.json()["predictions"][0]
        assert served["trace"][0]["changed"] is True
        ws = Workspace(Settings(home=home, device="cpu"))
        try:  # in process, as evaluation and distillation run it: the same answer
            _, local = ws.pipelines.predict(f"pseudo@{made['version']}", [TEXTS[0]])
            assert local.results[0]["probabilities"] == pytest.approx(served["probabilities"])

            path.write_text(bytes(range(1, 33)).hex() + "\n")  # the key was replaced
            r = api.post(url, headers=admin, json={"inputs": [TEXTS[0]]})
            assert r.status_code == 412, r.text
            assert "create a new pipeline version" in r.json()["error"]["message"]
            with pytest.raises(FailedPrecondition, match="create a new pipeline version"):
                ws.pipelines.predict(f"pseudo@{made['version']}", [TEXTS[0]])
        finally:
            ws.close()
        again = create(api, admin, name="pseudo", spec=spec)
        assert again["version"] == made["version"] + 1, "a new key pins a new version"
        r = api.post(
            f"{P}/pseudo@{again['version']}:predict", headers=admin, json={"inputs": ["x"]}
        )
        assert r.status_code == 200, r.text
    finally:
        path.unlink(missing_ok=True)
        if saved is not None:
            path.write_bytes(saved)
            path.chmod(0o600)
