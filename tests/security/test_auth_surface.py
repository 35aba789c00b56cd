"""The attack surface of the API (field notes rows 5 and 9): ShadowRay-style open job APIs,
DNS rebinding and cross-site requests, CORS, default credentials.

Every route but the public ones refuses a caller without a key (the route table is
enumerated, so a new route is covered the day it is added); no route takes a
command, script or URL; a browser ``Origin`` or an unknown ``Host`` is refused; no
response allows every origin; and no well-known default credential opens anything.
"""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest

from aimass.server import UNAUTHENTICATED_PATHS, create_app
from aimass.server.console.urls import is_console_path
from aimass.server.docs_ui import STATIC_PATHS
from aimass.settings import Settings
from tests.security.conftest import WRONG, api_routes, concrete

PUBLIC = {"/healthz", "/readyz", "/metrics", "/v1/openapi.json"}


# -- row 5 (a): every route but the public ones needs a key ---------------------------------


def test_every_route_but_health_metrics_and_openapi_answers_401_without_a_key(unthrottled):
    client = unthrottled
    routes = list(api_routes(client.app))
    assert len(routes) > 25, "the route table is enumerated, not hand-listed"
    for method, path in routes:
        if path in UNAUTHENTICATED_PATHS:
            continue
        if is_console_path(path):
            check_console_route(client, method, path)
            continue
        url = concrete(path)
        answer = client.request(method, url, json={} if method in ("POST", "PUT") else None)
        assert answer.status_code == 401, (method, path, answer.status_code, answer.text)
        assert answer.json()["error"]["code"] == "UNAUTHENTICATED"
        bad = client.request(method, url, headers=WRONG)
        assert bad.status_code == 401, (method, path)
    for open_path in PUBLIC:
        assert client.get(open_path).status_code == 200


# The console's own sign-in, and ``/`` (a redirect to it), are the pages without a session.
CONSOLE_PUBLIC = {("GET", "/"), ("GET", "/console/sign-in"), ("POST", "/console/sign-in")}


def check_console_route(client, method, path):
    """A console route without a session (or with a forged one) sends the browser to
    sign-in and shows nothing; its forms take form posts only."""
    if (method, path) in CONSOLE_PUBLIC:
        return
    url = concrete(path)
    for cookies in ({}, {"aimass_session": "e30.forged"}):
        client.cookies.clear()
        client.cookies.update(cookies)
        data = {"csrf": "x"} if method == "POST" else None
        answer = client.request(method, url, data=data, follow_redirects=False)
        assert answer.status_code == 303, (method, path, answer.status_code, answer.text[:200])
        assert answer.headers["location"].startswith("/console/sign-in"), (method, path)
    client.cookies.clear()
    if method == "POST":
        assert client.request(method, url, json={}).status_code == 415, (method, path)


def test_the_public_paths_are_only_health_readiness_metrics_and_the_api_document():
    # The docs pages and their vendored assets (tests/server/test_docs_ui.py: files only).
    documents = {"/v1/docs", "/v1/redoc"} | STATIC_PATHS
    assert set(UNAUTHENTICATED_PATHS) == PUBLIC | documents


# -- row 5 (b): no endpoint accepts a command, entrypoint, script, code or URL ---------------


def test_no_endpoint_takes_a_url_command_or_code(app):
    schema = app.openapi()
    words = re.compile(r"\b(url|uri|command|entrypoint|script|code|exec|handler)\b", re.I)
    inputs = [
        (name, component)
        for name, component in schema["components"]["schemas"].items()
        if not name.endswith("Out")
        and name
        not in ("ErrorBody", "ErrorDetail", "WhoAmI", "HTTPValidationError", "ValidationError")
    ]
    assert len(inputs) > 5, "the request schemas were found"
    for name, component in inputs:
        for field in component.get("properties", {}):
            assert not words.search(field.replace("_", " ")), (name, field)


def test_a_job_with_an_entrypoint_is_refused_and_nothing_runs(client, admin, tmp_path):
    """The ShadowRay request itself: ``POST`` a job whose entrypoint is a shell command."""
    marker = tmp_path / "shadowray"
    for body in (
        {"entrypoint": f"touch {marker}"},
        {"kind": "train", "entrypoint": f"touch {marker}", "dataset": "reviews", "model": "m"},
        {"kind": "shell", "command": f"touch {marker}"},
    ):
        r = client.post("/v1/projects/default/jobs", headers=admin, json=body)
        assert r.status_code == 400, (body, r.text)
        assert r.json()["error"]["code"] == "INVALID_ARGUMENT"
    assert not marker.exists()


def test_aimass_drives_ray_only_with_token_auth_on():
    """Row 5 (c): Ray is imported only inside functions, after ``aimass.cluster.connect``
    has set ``RAY_AUTH_MODE=token`` (Ray reads it once, on import). That a client without
    the token is refused by a real cluster is tested in tests/jobs/test_ray_cluster.py."""
    import aimass
    from aimass import cluster

    importers = []
    for path in Path(aimass.__file__).parent.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        # A module-level import would run before connect() could set the mode.
        assert not re.search(r"^(import ray|from ray)\b", text, re.M), path
        if re.search(r"^\s+(import ray|from ray)\b", text, re.M):
            importers.append(path.name)
    assert "cluster.py" in importers
    source = Path(cluster.__file__).read_text(encoding="utf-8")
    body = source[source.index("def import_ray(") :]
    assert body.index('os.environ.setdefault("RAY_AUTH_MODE", "token")') < body.index("import ray")


# -- row 5 (d): DNS rebinding and cross-site requests -----------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {"Host": "evil.example"},
        {"Host": "evil.example:8600"},
        {"Host": "127.0.0.1.evil.example"},
        {"Origin": "http://evil.example"},
        {"Origin": "null"},
        {"Host": "localhost:8600", "Origin": "http://localhost.evil.example:8600"},
    ],
)
def test_foreign_hosts_and_browser_origins_are_refused(client, admin, headers):
    for method, url, body in (
        ("GET", "/v1/projects", None),
        ("POST", "/v1/projects", {"name": "rebound"}),
    ):
        r = client.request(method, url, headers={**admin, **headers}, json=body)
        assert r.status_code == 403, (method, headers, r.text)
        assert r.json()["error"]["code"] == "PERMISSION_DENIED"
    names = [p["name"] for p in client.get("/v1/projects", headers=admin).json()]
    assert "rebound" not in names


def test_own_origin_and_loopback_hosts_are_served(client, admin):
    for host in ("localhost:8600", "127.0.0.1:8600", "[::1]:8600"):
        assert client.get("/v1/projects", headers={**admin, "Host": host}).status_code == 200
    own = {"Host": "localhost:8600", "Origin": "http://localhost:8600"}
    assert client.get("/v1/projects", headers={**admin, **own}).status_code == 200


def test_cors_never_allows_every_origin(client, admin):
    preflight = {
        "Origin": "http://evil.example",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type",
    }
    answers = [
        client.options("/v1/projects", headers=preflight),
        client.options("/v1/projects/default/models/sentiment:predict", headers=preflight),
        client.get("/v1/projects", headers={**admin, "Origin": "http://evil.example"}),
        client.get("/healthz", headers={"Origin": "http://evil.example"}),
        client.get("/v1/projects", headers={**admin, "Origin": "http://localhost"}),
    ]
    for r in answers:
        allowed = r.headers.get("access-control-allow-origin")
        assert allowed in (None, "http://localhost"), (r.request.url, allowed)
    assert answers[0].status_code in (401, 403, 405), "a foreign preflight is not served"


# -- row 9: no default credentials ------------------------------------------------------------


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


DEFAULTS = [
    _basic("admin", "password1234"),  # MLflow basic-auth's default
    _basic("admin", "admin"),
    _basic("admin", ""),
    "Bearer admin",
    "Bearer password",
    "Bearer changeme",
    "Bearer aimass_admin_admin",
    "Bearer aimass_000000000000_" + "0" * 43,
    "Token admin",
    "",
]


def test_no_well_known_default_credential_opens_anything(unthrottled):
    client = unthrottled
    for credential in DEFAULTS:
        for method, url in (
            ("GET", "/v1/projects"),
            ("GET", "/v1/whoami"),
            ("GET", "/v1/audit"),
            ("POST", "/v1/projects"),
        ):
            r = client.request(
                method,
                url,
                headers={"Authorization": credential},
                json={"name": "owned"} if method == "POST" else None,
            )
            assert r.status_code == 401, (credential, url, r.status_code)


def test_first_start_makes_a_random_admin_key_in_a_private_file(tmp_path):
    """No shipped default: each home's first start writes its own random key, mode 0600."""
    keys = []
    for name in ("one", "two"):
        home = tmp_path / name
        state = create_app(Settings(home=home, device="cpu"), job_workers=0).state.aimass
        state.start(workers=0)
        path = home / "admin.key"
        assert path.stat().st_mode & 0o777 == 0o600
        keys.append(path.read_text().strip())
        state.workspace.close()
    assert keys[0] != keys[1]
    for key in keys:
        prefix, key_id, secret = key.split("_", 2)  # aimass_<id>_<secret>
        assert prefix == "aimass" and len(key_id) >= 12
        assert len(secret) >= 32 and len(set(secret)) > 16, "a random secret, not a word"
