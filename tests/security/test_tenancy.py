"""Tenant isolation: no cross-project reads, scopes per project and model, names hidden
(404 not 403), revoked and expired keys refused, and anonymous ``/metrics`` naming no
tenant (issue 13, finding 5)."""

from __future__ import annotations

from tests.security.conftest import WRONG, make_key

P = "/v1/projects/default"


def test_another_projects_resources_answer_404_not_403(client, admin):
    team = make_key(client, admin, ["admin"], project="team-b")
    for url in (
        f"{P}/models",
        f"{P}/datasets/reviews",
        f"{P}/models/sentiment/versions/1",
        f"{P}/keys",
    ):
        r = client.get(url, headers=team)
        assert r.status_code == 404, url
        assert r.json()["error"]["code"] == "NOT_FOUND"
    r = client.post(
        f"{P}/models/sentiment@production:predict", headers=team, json={"inputs": ["good"]}
    )
    assert r.status_code == 404
    assert [p["name"] for p in client.get("/v1/projects", headers=team).json()] == ["team-b"]


def test_scopes_are_enforced_per_project_and_per_model(client, admin):
    reader = make_key(client, admin, ["read"])
    assert client.get(f"{P}/models", headers=reader).status_code == 200
    r = client.post(f"{P}/models/sentiment:predict", headers=reader, json={"inputs": ["good"]})
    assert r.status_code == 403 and r.json()["error"]["code"] == "PERMISSION_DENIED"
    other_model = make_key(client, admin, ["predict:other"])
    r = client.post(f"{P}/models/sentiment:predict", headers=other_model, json={"inputs": ["x"]})
    assert r.status_code == 403
    this_model = make_key(client, admin, ["predict:sentiment"])
    r = client.post(f"{P}/models/sentiment:predict", headers=this_model, json={"inputs": ["x"]})
    assert r.status_code == 200


def test_protected_alias_needs_models_write_and_every_move_is_audited(client, admin):
    trainer = make_key(client, admin, ["read", "train"])
    writer = make_key(client, admin, ["read", "models:write:sentiment"])
    url = f"{P}/models/sentiment/aliases/{{}}"
    assert (
        client.put(url.format("staging"), headers=trainer, json={"version": 1}).status_code == 200
    )
    denied = client.put(url.format("production"), headers=trainer, json={"version": 1})
    assert denied.status_code == 403
    assert (
        client.put(url.format("production"), headers=writer, json={"version": 1}).status_code == 200
    )
    moves = client.get("/v1/audit", headers=admin, params={"action": "models.set_alias"}).json()
    outcomes = [(e["resource"].rsplit("/", 1)[1], e["outcome"]) for e in moves]
    assert ("production", "PERMISSION_DENIED") in outcomes
    assert ("production", "ok") in outcomes and ("staging", "ok") in outcomes


def test_expired_and_revoked_keys_are_refused(client, admin, trained_home):
    from aimass.workspace import Workspace
    from tests.server.conftest import serve_settings

    ws = Workspace(serve_settings(trained_home))
    _, expired = ws.keys.create("old", project="default", scopes=["read"], expires_in_days=1e-9)
    ws.close()
    r = client.get(f"{P}/models", headers={"Authorization": f"Bearer {expired}"})
    assert r.status_code == 401 and "expired" in r.json()["error"]["message"]
    created = client.post(
        f"{P}/keys", headers=admin, json={"name": "tmp", "scopes": ["read"]}
    ).json()
    key = {"Authorization": f"Bearer {created['key']}"}
    assert client.get(f"{P}/models", headers=key).status_code == 200
    revoked = client.delete(f"{P}/keys/{created['record']['id']}", headers=admin)
    assert revoked.json()["revoked"] is True
    r = client.get(f"{P}/models", headers=key)
    assert r.status_code == 401 and "revoked" in r.json()["error"]["message"]


# -- finding 5: /metrics names no tenant to a caller without an admin key -------------------


def test_anonymous_metrics_carry_no_tenant_labels(client, admin):
    r = client.post(
        f"{P}/models/sentiment@production:predict", headers=admin, json={"inputs": ["good"]}
    )
    assert r.status_code == 200, r.text
    team = make_key(client, admin, ["admin"], project="metrics-team")
    reader = make_key(client, admin, ["read"])
    full = client.get("/metrics", headers=admin).text
    assert 'project="default"' in full and 'model="sentiment"' in full, "the labels exist"
    for who, headers in (
        ("anonymous", {}),
        ("wrong key", WRONG),
        ("another project's admin", team),
        ("a reader", reader),
    ):
        scraped = client.get("/metrics", headers=headers)
        assert scraped.status_code in (200, 401, 403), who
        text = scraped.text
        assert "sentiment" not in text and 'project="' not in text, who
        assert 'model="' not in text and "metrics-team" not in text, who
