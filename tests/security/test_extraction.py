"""Model extraction: many queries, each read to the last digit, train a copy of the model.

The defences a key can carry (issue 13): a query budget (inputs per UTC day, kept
in the store) and an output policy (labels only, top-k, rounded scores), applied
by the server to everything that key is answered.
"""

from __future__ import annotations

import time

from fastapi.testclient import TestClient

from aimass.client import Client
from aimass.server import create_app
from aimass.settings import Settings
from tests.security.conftest import P
from tests.server.test_trust_api import through

PREDICT = f"{P}/models/sentiment@production:predict"


def key_with(client, admin, *, name, **fields):
    """Headers and id of a new ``predict`` + ``data:write`` key of project default."""
    body = {"name": name, "scopes": ["predict", "read", "data:write"], **fields}
    r = client.post(f"{P}/keys", headers=admin, json=body)
    assert r.status_code == 201, r.text
    created = r.json()
    return {"Authorization": f"Bearer {created['key']}"}, created["record"]["id"]


def predict(client, headers, inputs, **extra):
    return client.post(PREDICT, headers=headers, json={"inputs": inputs, **extra})


def budget_decisions(client, admin, key_id):
    events = client.get("/v1/audit", headers=admin, params={"action": "limit.throttled"}).json()
    return [e for e in events if e["resource"] == f"key:{key_id}"]


# -- query budget ----------------------------------------------------------------------------


def test_a_flood_of_queries_stops_at_the_keys_daily_budget(client, admin):
    headers, key_id = key_with(client, admin, name="scraper", predict_budget=10)
    assert predict(client, headers, ["good film"] * 8).status_code == 200
    # A call that would pass what is left is refused whole, naming what is left.
    r = predict(client, headers, ["good film"] * 3)
    assert r.status_code == 429, r.text
    error = r.json()["error"]
    assert error["code"] == "RESOURCE_EXHAUSTED" and error["type"] == "RateLimited"
    assert error["details"]["limit"] == "predict_budget"
    assert "2 left" in error["message"] and "--predict-budget" in error["message"]
    assert 1 <= int(r.headers["retry-after"]) <= 24 * 3600 + 1
    assert predict(client, headers, ["good film"] * 2).status_code == 200
    for _ in range(20):  # the attacker keeps going
        r = predict(client, headers, ["good film"])
        assert r.status_code == 429 and "0 left" in r.json()["error"]["message"]
    decisions = budget_decisions(client, admin, key_id)
    assert len(decisions) == 1, "one audit entry for the decision, not one per refusal"
    assert decisions[0]["details"]["limit"] == "predict_budget"
    assert decisions[0]["details"]["value"] == "10"
    # Refused calls are not in the audit log one by one either.
    refused = client.get("/v1/audit", headers=admin, params={"action": "models.predict"}).json()
    assert not [e for e in refused if e["key_id"] == key_id and e["status"] == 429]


def test_the_budget_survives_a_server_restart(settings_for, admin, trained_home):
    with TestClient(create_app(settings_for(), job_workers=0), base_url="http://localhost") as c:
        headers, _ = key_with(c, admin, name="restarts", predict_budget=3)
        assert predict(c, headers, ["a", "b", "c"]).status_code == 200
    # A new server process on the same home (fresh memory, fresh workspace).
    with TestClient(create_app(settings_for(), job_workers=0), base_url="http://localhost") as c:
        r = predict(c, headers, ["again"])
        assert r.status_code == 429 and "0 left" in r.json()["error"]["message"]


def test_explanations_count_too_and_keys_without_budget_write_nothing(client, admin):
    headers, key_id = key_with(client, admin, name="explainer", predict_budget=2)
    assert predict(client, headers, ["good", "bad"], explain="attention").status_code == 200
    assert predict(client, headers, ["one more"], explain="attention").status_code == 429
    state = client.app.state.aimass
    assert state.workspace.limits.used_today(key_id) == 2
    free, free_id = key_with(client, admin, name="unbudgeted")
    assert predict(client, free, ["good"] * 5).status_code == 200
    assert state.workspace.limits.used_today(free_id) == 0, "no counter row for free keys"


def test_a_batch_prediction_spends_one_input_per_row(client, admin):
    headers, _ = key_with(client, admin, name="batcher", predict_budget=15)
    batch = {
        "kind": "batch-predict",
        "model": "sentiment",
        "dataset": "reviews",
        "output": "copied",
        "split": "test",  # 20 rows
    }
    r = client.post(f"{P}/jobs", headers=headers, json=batch)
    assert r.status_code == 429 and "20 inputs" in r.json()["error"]["message"]
    assert client.get(f"{P}/datasets/copied", headers=admin).status_code == 404


def test_each_generate_call_spends_one_input(gen_home):
    settings = Settings(home=gen_home, device="cpu", serve_runners=0, max_new_tokens=8)
    with TestClient(create_app(settings, job_workers=0), base_url="http://localhost") as c:
        admin = {"Authorization": f"Bearer {(gen_home / 'admin.key').read_text().strip()}"}
        headers, _ = key_with(c, admin, name="talker", predict_budget=2)
        url = f"{P}/models/echo@production:generate"
        body = {"prompt": "hello", "max_new_tokens": 2}
        for _ in range(2):
            assert c.post(url, headers=headers, json=body).status_code == 200
        r = c.post(url, headers=headers, json={**body, "stream": True})
        assert r.status_code == 429 and r.json()["error"]["details"]["limit"] == "predict_budget"


# -- output policy ---------------------------------------------------------------------------


def test_labels_policy_hides_every_score_and_refuses_explanations(client, admin):
    headers, key_id = key_with(client, admin, name="labels-only", output_policy="labels")
    r = predict(client, headers, ["good great film", "awful bad film"])
    assert r.status_code == 200, r.text
    for prediction in r.json()["predictions"]:
        assert set(prediction) == {"label"}, prediction
    # The SDK reads the same cut-down answer.
    sdk = Client("http://localhost", headers["Authorization"].split()[1], transport=through(client))
    assert sdk.predict("sentiment@production", ["good film"]) == [{"label": "pos"}]
    r = predict(client, headers, ["good film"], explain=True)
    assert r.status_code == 403, r.text
    error = r.json()["error"]
    assert error["code"] == "PERMISSION_DENIED" and "'labels'" in error["message"]
    assert key_id in error["message"]


def test_top_k_and_round_cut_the_probabilities(client, admin):
    full = predict(client, admin, ["good film"]).json()["predictions"][0]
    assert len(full["probabilities"]) == 2
    headers, _ = key_with(client, admin, name="top1", output_policy="round=2, top_k=1")
    assert client.get(f"{P}/keys", headers=admin).json()[-1]["output_policy"] == "top_k=1,round=2"
    cut = predict(client, headers, ["good film"]).json()["predictions"][0]
    assert cut["label"] == full["label"]
    assert list(cut["probabilities"]) == [full["label"]]
    assert cut["score"] == round(full["score"], 2)
    assert cut["probabilities"][full["label"]] == round(full["score"], 2)


def test_a_batch_prediction_stores_only_what_the_policy_shows(settings_for, admin):
    app = create_app(settings_for(), job_workers=1)
    with TestClient(app, base_url="http://localhost") as c:
        headers, _ = key_with(c, admin, name="batch-labels", output_policy="labels")
        batch = {
            "kind": "batch-predict",
            "model": "sentiment",
            "dataset": "reviews",
            "output": "labels-only",
            "split": "test",
        }
        r = c.post(f"{P}/jobs", headers=headers, json=batch)
        assert r.status_code == 201, r.text
        assert r.json()["spec"]["output_policy"] == "labels"
        deadline = time.monotonic() + 120
        job = r.json()
        while job["status"] not in ("succeeded", "failed", "cancelled"):
            assert time.monotonic() < deadline, "the batch job did not finish"
            time.sleep(0.1)
            job = c.get(f"{P}/jobs/{job['id']}", headers=admin).json()
        assert job["status"] == "succeeded", job
        scored = c.get(f"{P}/datasets/labels-only", headers=admin).json()
        extras = set(scored["schema"]["extra_fields"])
        assert scored["num_rows"] == 20 and not extras & {"score", "probabilities"}, extras
