"""Secure by default: every route needs a key, JSON only, limits, host/origin, tenancy."""

from __future__ import annotations

import os
import pickle
import re

import pytest
from fastapi.testclient import TestClient

from aimass.server import UNAUTHENTICATED_PATHS, create_app, iter_routes
from tests.server.conftest import make_key

PICKLE_TYPES = [
    "application/vnd.bentoml+pickle",
    "application/octet-stream",
    "application/x-python-pickle",
    "text/plain",
    "multipart/form-data; boundary=x",
]


def concrete(path: str) -> str:
    """A request path for a route template: every parameter gets a harmless value."""
    values = {"project": "default", "ref": "sentiment@production", "version": "1"}
    return re.sub(r"\{(\w+)(:\w+)?\}", lambda m: values.get(m.group(1), "x"), path)


def api_routes(app):
    for method, path, _ in iter_routes(app.routes):
        if method != "HEAD":
            yield method, path


@pytest.fixture
def unthrottled(settings_for):
    """An app whose failed-authentication throttle lets one wrong key try every route."""
    app = create_app(
        settings_for(auth_failures_per_key="1000/minute", auth_failures_per_address="1000/minute"),
        job_workers=0,
    )
    with TestClient(app, base_url="http://localhost") as client:
        yield app, client


def test_every_route_but_health_metrics_and_openapi_answers_401_without_a_key(unthrottled):
    app, client = unthrottled
    routes = list(api_routes(app))
    assert len(routes) > 25, "the route table is enumerated, not hand-listed"
    for method, path in routes:
        url = concrete(path)
        answer = client.request(method, url, json={} if method in ("POST", "PUT") else None)
        if path in UNAUTHENTICATED_PATHS:
            continue
        assert answer.status_code == 401, (method, path, answer.status_code, answer.text)
        assert answer.json()["error"]["code"] == "UNAUTHENTICATED"
        bad = client.request(
            method, url, headers={"Authorization": "Bearer aimass_000000000000_" + "A" * 43}
        )
        assert bad.status_code == 401, (method, path)
    for open_path in ("/healthz", "/readyz", "/metrics", "/v1/openapi.json"):
        assert client.get(open_path).status_code == 200


class WritesMarker:
    """Unpickling this creates a file: proof that something unpickled it."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickle_and_other_non_json_bodies_are_refused_on_every_route(app, client, admin, tmp_path):
    marker = tmp_path / "unpickled.marker"
    payload = pickle.dumps(WritesMarker(marker))
    for method, path in api_routes(app):
        if method == "GET":
            continue
        for content_type in PICKLE_TYPES:
            answer = client.request(
                method,
                concrete(path),
                content=payload,
                headers={**admin, "Content-Type": content_type},
            )
            assert answer.status_code == 415, (method, path, content_type, answer.text)
            assert answer.json()["error"]["code"] == "UNSUPPORTED_MEDIA_TYPE"
    assert not marker.exists()
    assert not os.path.exists(marker)


def test_a_body_over_the_limit_is_413_and_changes_nothing(settings_for, admin):
    from fastapi.testclient import TestClient

    from aimass.server import create_app

    app = create_app(settings_for(max_body_bytes=1000), job_workers=0)
    with TestClient(app, base_url="http://localhost") as c:
        body = {"name": "big", "format": "jsonl", "content": '{"text": "a", "label": "x"}\n' * 100}
        r = c.post("/v1/projects/default/datasets", headers=admin, json=body)
        assert r.status_code == 413
        assert r.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"
        names = [d["name"] for d in c.get("/v1/projects/default/datasets", headers=admin).json()]
        assert "big" not in names


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({"Host": "evil.example"}, "PERMISSION_DENIED"),
        ({"Origin": "http://evil.example"}, "PERMISSION_DENIED"),
    ],
)
def test_foreign_hosts_and_browser_origins_are_refused(client, admin, headers, code):
    r = client.get("/v1/projects", headers={**admin, **headers})
    assert r.status_code == 403
    assert r.json()["error"]["code"] == code


def test_own_origin_and_loopback_hosts_are_served(client, admin):
    for host in ("localhost:8600", "127.0.0.1:8600", "[::1]:8600"):
        assert client.get("/v1/projects", headers={**admin, "Host": host}).status_code == 200
    own = {"Host": "localhost:8600", "Origin": "http://localhost:8600"}
    assert client.get("/v1/projects", headers={**admin, **own}).status_code == 200


def test_another_projects_resources_answer_404_not_403(client, admin):
    team = make_key(client, admin, ["admin"], project="team-b")
    for url in (
        "/v1/projects/default/models",
        "/v1/projects/default/datasets/reviews",
        "/v1/projects/default/models/sentiment/versions/1",
        "/v1/projects/default/keys",
    ):
        r = client.get(url, headers=team)
        assert r.status_code == 404, url
        assert r.json()["error"]["code"] == "NOT_FOUND"
    r = client.post(
        "/v1/projects/default/models/sentiment@production:predict",
        headers=team,
        json={"inputs": ["good"]},
    )
    assert r.status_code == 404
    assert [p["name"] for p in client.get("/v1/projects", headers=team).json()] == ["team-b"]


def test_scopes_are_enforced_per_project_and_per_model(client, admin):
    reader = make_key(client, admin, ["read"])
    assert client.get("/v1/projects/default/models", headers=reader).status_code == 200
    r = client.post(
        "/v1/projects/default/models/sentiment:predict", headers=reader, json={"inputs": ["good"]}
    )
    assert r.status_code == 403 and r.json()["error"]["code"] == "PERMISSION_DENIED"
    other_model = make_key(client, admin, ["predict:other"])
    r = client.post(
        "/v1/projects/default/models/sentiment:predict", headers=other_model, json={"inputs": ["x"]}
    )
    assert r.status_code == 403
    this_model = make_key(client, admin, ["predict:sentiment"])
    r = client.post(
        "/v1/projects/default/models/sentiment:predict", headers=this_model, json={"inputs": ["x"]}
    )
    assert r.status_code == 200


def test_protected_alias_needs_models_write_and_every_move_is_audited(client, admin):
    trainer = make_key(client, admin, ["read", "train"])
    writer = make_key(client, admin, ["read", "models:write:sentiment"])
    url = "/v1/projects/default/models/sentiment/aliases/{}"
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
    r = client.get("/v1/projects/default/models", headers={"Authorization": f"Bearer {expired}"})
    assert r.status_code == 401 and "expired" in r.json()["error"]["message"]
    created = client.post(
        "/v1/projects/default/keys", headers=admin, json={"name": "tmp", "scopes": ["read"]}
    ).json()
    key = {"Authorization": f"Bearer {created['key']}"}
    assert client.get("/v1/projects/default/models", headers=key).status_code == 200
    revoked = client.delete(f"/v1/projects/default/keys/{created['record']['id']}", headers=admin)
    assert revoked.json()["revoked"] is True
    r = client.get("/v1/projects/default/models", headers=key)
    assert r.status_code == 401 and "revoked" in r.json()["error"]["message"]


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"inputs": ["a"], "extra": 1}, 400, "INVALID_ARGUMENT"),
        ({"inputs": "not a list"}, 400, "INVALID_ARGUMENT"),
        ({"inputs": []}, 400, "INVALID_ARGUMENT"),
        ({"inputs": [""]}, 400, "INVALID_ARGUMENT"),
        ({"inputs": ["x"] * 300}, 429, "RESOURCE_EXHAUSTED"),
    ],
)
def test_bad_predict_bodies_get_clear_errors(client, admin, body, status, code):
    r = client.post("/v1/projects/default/models/sentiment:predict", headers=admin, json=body)
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code


@pytest.mark.parametrize(
    ("url", "status", "code"),
    [
        ("/v1/projects/default/models/ghost:predict", 404, "NOT_FOUND"),
        ("/v1/projects/default/models/sentiment@9:predict", 404, "NOT_FOUND"),
        ("/v1/projects/default/models/sentiment@nope:predict", 404, "NOT_FOUND"),
        ("/v1/projects/default/models/..%2F..%2Fetc:predict", 404, "NOT_FOUND"),
        ("/v1/projects/default/models/bad..name:predict", 400, "INVALID_ARGUMENT"),
        ("/v1/projects/default/models/Upper%5Cx:predict", 400, "INVALID_ARGUMENT"),
        ("/v1/projects/Bad%00Name/models/sentiment:predict", 400, "INVALID_ARGUMENT"),
        ("/v1/projects/" + "a" * 300 + "/models/sentiment:predict", 400, "INVALID_ARGUMENT"),
    ],
)
def test_unknown_or_invalid_names(client, admin, url, status, code):
    r = client.post(url, headers=admin, json={"inputs": ["good"]})
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code


def test_malformed_json_is_400(client, admin):
    r = client.post(
        "/v1/projects/default/models/sentiment:predict",
        headers={**admin, "Content-Type": "application/json"},
        content=b'{"inputs": [',
    )
    assert r.status_code == 400 and r.json()["error"]["code"] == "INVALID_ARGUMENT"


def test_imports_by_path_are_confined_to_the_import_dirs(settings_for, admin, tmp_path):
    from fastapi.testclient import TestClient

    from aimass.server import create_app
    from tests.conftest import sentiment_rows, write_jsonl

    allowed = tmp_path / "in"
    allowed.mkdir()
    write_jsonl(allowed / "ok.jsonl", sentiment_rows(40))
    outside = write_jsonl(tmp_path / "secret.jsonl", sentiment_rows(40))
    (allowed / "link.jsonl").symlink_to(outside)
    app = create_app(settings_for(import_dirs=[allowed]), job_workers=0)
    with TestClient(app, base_url="http://localhost") as c:
        url = "/v1/projects/default/datasets:import"
        ok = c.post(url, headers=admin, json={"name": "in-dir", "path": "ok.jsonl"})
        assert ok.status_code == 201, ok.text
        for path in (
            str(outside),
            "../secret.jsonl",
            "link.jsonl",
            "/etc/passwd",
            "file:///etc/passwd",
        ):
            r = c.post(url, headers=admin, json={"name": "escape", "path": path})
            assert r.status_code in (403, 404), (path, r.text)
        names = [d["name"] for d in c.get("/v1/projects/default/datasets", headers=admin).json()]
        assert "escape" not in names


def test_no_endpoint_takes_a_url_command_or_code(app):
    schema = app.openapi()
    words = re.compile(r"\b(url|uri|command|entrypoint|script|code|exec)\b", re.I)
    for name, component in schema["components"]["schemas"].items():
        if name.endswith("Out") or name in (
            "ErrorBody",
            "ErrorDetail",
            "WhoAmI",
            "HTTPValidationError",
            "ValidationError",
        ):
            continue
        for field in component.get("properties", {}):
            assert not words.search(field.replace("_", " ")), (name, field)
