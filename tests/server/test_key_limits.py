"""Budgets, output policies and limits kept in the store with a key or a project (issue 13):
set at creation, changed later, shown in the key's details and in the audit log, and
consulted before the settings."""

from __future__ import annotations

import asyncio

import pytest

from aimass.client import Client
from aimass.errors import InvalidArgument, PermissionDenied
from tests.server.conftest import make_key
from tests.server.test_trust_api import through

P = "/v1/projects/default"


def create(client, admin, project="default", **fields):
    body = {"name": "k", "scopes": ["predict", "read"], **fields}
    return client.post(f"/v1/projects/{project}/keys", headers=admin, json=body)


def audit(client, admin, action):
    return client.get("/v1/audit", headers=admin, params={"action": action}).json()


# -- set at creation, shown, audited -------------------------------------------------------------


def test_a_keys_budget_policy_and_limits_are_stored_shown_and_audited(client, admin):
    r = create(
        client,
        admin,
        predict_budget=5000,
        output_policy="top_k=3",
        limits={"max_streams_per_key": 2, "requests_per_key": "60/minute"},
    )
    assert r.status_code == 201, r.text
    record = r.json()["record"]
    assert record["predict_budget"] == 5000 and record["output_policy"] == "top_k=3"
    assert record["limits"] == {"max_streams_per_key": 2, "requests_per_key": "60/minute"}
    shown = client.get(f"{P}/keys/{record['id']}", headers=admin).json()
    assert shown == record
    listed = {k["id"]: k for k in client.get(f"{P}/keys", headers=admin).json()}
    assert listed[record["id"]]["output_policy"] == "top_k=3"
    created = next(e for e in audit(client, admin, "keys.create") if e["details"].get("key_id"))
    assert created["details"]["key_id"] == record["id"]
    assert created["details"]["predict_budget"] == 5000
    assert created["details"]["output_policy"] == "top_k=3"
    assert created["details"]["limits"]["max_streams_per_key"] == 2


def test_a_key_is_updated_field_by_field_and_the_update_is_audited(client, admin):
    key_id = create(client, admin, predict_budget=10, output_policy="labels").json()["record"]["id"]
    url = f"{P}/keys/{key_id}"
    r = client.patch(url, headers=admin, json={"limits": {"max_predicts_per_key": 4}})
    assert r.status_code == 200, r.text
    assert r.json()["predict_budget"] == 10 and r.json()["output_policy"] == "labels"
    assert r.json()["limits"] == {"max_predicts_per_key": 4}
    r = client.patch(
        url,
        headers=admin,
        json={
            "predict_budget": None,
            "output_policy": "round=3",
            "limits": {"max_predicts_per_key": None},
        },
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["predict_budget"] is None and body["output_policy"] == "round=3"
    assert body["limits"] == {}
    updated = audit(client, admin, "keys.update")[0]
    assert updated["details"]["key_id"] == key_id
    assert updated["details"]["changed"] == ["limits", "output_policy", "predict_budget"]
    assert updated["details"]["output_policy"] == "round=3"


def test_an_update_is_seen_by_the_keys_next_request(client, admin):
    r = create(client, admin, name="seen")
    headers = {"Authorization": f"Bearer {r.json()['key']}"}
    key_id = r.json()["record"]["id"]
    predict = f"{P}/models/sentiment@production:predict"
    first = client.post(predict, headers=headers, json={"inputs": ["good"]}).json()
    assert "probabilities" in first["predictions"][0]
    client.patch(f"{P}/keys/{key_id}", headers=admin, json={"output_policy": "labels"})
    after = client.post(predict, headers=headers, json={"inputs": ["good"]}).json()
    assert set(after["predictions"][0]) == {"label"}


def test_a_keys_stored_limits_are_read_off_the_event_loop(client, admin, monkeypatch):
    # A database read on the loop would stall every request in flight (a network round
    # trip on PostgreSQL): the server reads a key's limits in a worker thread, once.
    r = create(client, admin, name="offloop", limits={"requests_per_key": "500/minute"})
    headers = {"Authorization": f"Bearer {r.json()['key']}"}
    key_id = r.json()["record"]["id"]
    ws = client.app.state.aimass.workspace
    reads: list[bool] = []
    real = ws.store.keys.limits

    def recording(ident):
        try:
            asyncio.get_running_loop()
            reads.append(True)  # on an event loop's thread
        except RuntimeError:
            reads.append(False)
        return real(ident)

    monkeypatch.setattr(ws.store.keys, "limits", recording)
    ws.limits.forget(f"key:{key_id}")
    predict = f"{P}/models/sentiment@production:predict"
    for _ in range(3):
        assert client.post(predict, headers=headers, json={"inputs": ["good"]}).status_code == 200
    assert reads == [False]  # one read, in a worker thread; the rest from the cache


def test_a_throttled_address_is_refused_before_its_key_ids_cost_a_lookup(client_with, monkeypatch):
    client = client_with(auth_failures_per_address="1/minute")
    ws = client.app.state.aimass.workspace
    looked_up: list[str] = []
    real = ws.store.keys.limits
    monkeypatch.setattr(
        ws.store.keys, "limits", lambda ident: looked_up.append(ident) or real(ident)
    )
    wrong = "Bearer aimass_{}_" + "A" * 43
    first = client.get("/v1/whoami", headers={"Authorization": wrong.format("0" * 12)})
    assert first.status_code == 401 and looked_up == ["0" * 12]
    refused = client.get("/v1/whoami", headers={"Authorization": wrong.format("1" * 12)})
    assert refused.status_code == 429
    assert looked_up == ["0" * 12]  # the second key id was never looked up


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"limits": {"max_epochs": 3}}, ["'max_epochs'", "max_streams_per_key"]),
        ({"limits": {"max_streams_per_key": 0}}, ["max_streams_per_key", "0", ">= 1"]),
        ({"limits": {"max_streams_per_key": "many"}}, ["max_streams_per_key", "'many'"]),
        ({"limits": {"requests_per_key": "fast"}}, ["requests_per_key", "COUNT/PERIOD"]),
        ({"output_policy": "top_k=0"}, ["top_k=0", "whole number"]),
        ({"output_policy": "probabilities"}, ["'probabilities'", "labels", "top_k=N"]),
        ({"output_policy": "labels,top_k=2"}, ["labels", "top_k", "keep one"]),
    ],
)
def test_bad_limit_names_values_and_policies_are_refused_naming_them(client, admin, fields, words):
    r = create(client, admin, **fields)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "INVALID_ARGUMENT"
    for word in words:
        assert word in r.json()["error"]["message"]


def test_a_budget_below_one_is_refused(client, admin):
    r = create(client, admin, predict_budget=0)
    assert r.status_code == 400 and "predict_budget" in r.text


# -- who may set them ----------------------------------------------------------------------------


def test_a_project_admin_may_lower_limits_but_not_raise_them(client, admin):
    boss = make_key(client, admin, ["admin"], project="tenant", name="boss")
    assert (
        create(client, boss, project="tenant", limits={"max_streams_per_key": 1}).status_code == 201
    )
    r = create(client, boss, project="tenant", limits={"max_streams_per_key": 999})
    assert r.status_code == 403 and "all-projects admin" in r.json()["error"]["message"]
    r = create(client, boss, project="tenant", limits={"requests_per_key": "100000/second"})
    assert r.status_code == 403
    assert (
        create(client, admin, project="tenant", limits={"max_streams_per_key": 999}).status_code
        == 201
    )
    # Project limits are the operator's quota on the tenant: all-projects admins only.
    r = client.patch("/v1/projects/tenant", headers=boss, json={"limits": {"max_epochs": 1}})
    assert r.status_code == 403
    reader = make_key(client, admin, ["read"], project="tenant", name="reader")
    assert client.get("/v1/projects/tenant/keys", headers=reader).status_code == 403


# -- stored limits come first --------------------------------------------------------------------


def test_a_limit_stored_with_a_key_wins_over_the_settings_and_overrides(client_with, admin):
    client = client_with(requests_per_key="1000/minute")
    r = create(client, admin, name="slow", limits={"requests_per_key": "2/minute"})
    headers = {"Authorization": f"Bearer {r.json()['key']}"}
    key_id = r.json()["record"]["id"]
    for _ in range(2):
        assert client.get("/v1/whoami", headers=headers).status_code == 200
    refused = client.get("/v1/whoami", headers=headers)
    assert refused.status_code == 429 and "2/minute" in refused.json()["error"]["message"]
    # Raised through this server: seen at once (the cache is dropped).
    client.patch(
        f"{P}/keys/{key_id}", headers=admin, json={"limits": {"requests_per_key": "50/minute"}}
    )
    assert client.get("/v1/whoami", headers=headers).status_code == 200
    # The override setting applies when the store holds nothing, and loses when it does.
    other = client_with(limit_overrides={f"key:{key_id}": {"requests_per_key": "1/minute"}})
    assert (
        other.app.state.aimass.throttle._limit("requests_per_key", f"key:{key_id}") == "50/minute"
    )
    client.patch(f"{P}/keys/{key_id}", headers=admin, json={"limits": {"requests_per_key": None}})
    other.app.state.aimass.workspace.limits.forget(f"key:{key_id}")
    assert other.app.state.aimass.throttle._limit("requests_per_key", f"key:{key_id}") == "1/minute"


def test_limits_stored_with_a_project_win_over_the_settings(client_with, admin):
    client = client_with(limit_overrides={"project:capped": {"max_epochs": 50}})
    assert client.post("/v1/projects", headers=admin, json={"name": "capped"}).status_code == 201
    r = client.patch("/v1/projects/capped", headers=admin, json={"limits": {"max_epochs": 3}})
    assert r.status_code == 200 and r.json()["limits"] == {"max_epochs": 3}
    train = {"kind": "train", "dataset": "reviews", "base": "tiny", "model": "m"}
    r = client.post(
        "/v1/projects/capped/jobs", headers=admin, json={**train, "config": {"epochs": 5}}
    )
    assert r.status_code == 400 and "limit of 3 epochs" in r.json()["error"]["message"]
    assert audit(client, admin, "projects.update")[0]["details"]["limits"] == {"max_epochs": 3}
    # Removed: the override applies again.
    r = client.patch("/v1/projects/capped", headers=admin, json={"limits": {"max_epochs": None}})
    assert r.json()["limits"] == {}
    r = client.post(
        "/v1/projects/capped/jobs", headers=admin, json={**train, "config": {"epochs": 60}}
    )
    assert r.status_code == 400 and "limit of 50 epochs" in r.json()["error"]["message"]
    r = client.patch(
        "/v1/projects/capped", headers=admin, json={"limits": {"max_streams_per_key": 2}}
    )
    assert r.status_code == 400 and "max_active_jobs_per_project" in r.json()["error"]["message"]


def test_the_job_time_limit_stored_with_a_project_wins_over_the_override(workspace):
    from datetime import timedelta

    from aimass.server.deadlines import JobDeadlines
    from aimass.settings import Settings

    settings = Settings(
        home=workspace.settings.home, limit_overrides={"project:default": {"max_job_seconds": 600}}
    )
    workspace.limits.set_project_limits("default", {"max_job_seconds": "100"})
    assert workspace.store.projects.get("default").limits == {"max_job_seconds": 100}
    jobs = workspace.store.jobs
    job = jobs.claim(jobs.create("default", "train", {"model": "m"}).id)
    stopped: list = []
    deadlines = JobDeadlines(workspace.store, settings, on_stop=lambda j, s: stopped.append(s))
    assert deadlines.check(job.started_at + timedelta(seconds=90)) == []
    assert [j.id for j in deadlines.check(job.started_at + timedelta(seconds=101))] == [job.id]
    assert stopped == [100.0]


# -- the SDK -------------------------------------------------------------------------------------


def test_the_sdk_creates_shows_and_updates_keys_and_project_limits(client, admin):
    sdk = Client("http://localhost", admin["Authorization"].split()[1], transport=through(client))
    created = sdk.keys.create(
        "sdk",
        scopes=["predict"],
        predict_budget=7,
        output_policy="labels",
        limits={"max_streams_per_key": 1},
    )
    key_id = created.record.id
    assert sdk.keys.get(key_id).predict_budget == 7
    updated = sdk.keys.update(key_id, predict_budget="unlimited", output_policy="full")
    assert updated.predict_budget is None and updated.output_policy is None
    assert updated.limits == {"max_streams_per_key": 1}
    assert sdk.keys.update(key_id, limits={"max_streams_per_key": None}).limits == {}
    with pytest.raises(InvalidArgument, match="round=99"):
        sdk.keys.update(key_id, output_policy="round=99")
    sdk.projects.create("sdk-limits")
    assert sdk.projects.set_limits("sdk-limits", {"max_epochs": 4}).limits == {"max_epochs": 4}
    assert sdk.projects.get("sdk-limits").limits == {"max_epochs": 4}
    # "none" removes too, as the CLI's --predict-budget none does.
    cleared = sdk.keys.update(key_id, predict_budget="none", limits={})
    assert cleared.predict_budget is None
    again = sdk.keys.update(key_id, predict_budget=3, output_policy="none")
    assert again.predict_budget == 3 and again.output_policy is None
    assert sdk.keys.get(key_id, project="default").predict_budget == 3
    boss = make_key(client, admin, ["admin"], project="sdk-limits", name="boss")
    other = Client("http://localhost", boss["Authorization"].split()[1], transport=through(client))
    with pytest.raises(PermissionDenied):
        other.projects.set_limits("sdk-limits", {"max_epochs": 400})
