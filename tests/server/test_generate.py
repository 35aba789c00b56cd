"""``POST .../models/{ref}:generate``: whole and streamed (SSE), limits, auth, audit, disconnect."""

from __future__ import annotations

import asyncio
import hashlib
import json

import pytest
from fastapi.testclient import TestClient

from aimass.server import create_app, iter_routes
from aimass.settings import Settings
from tests.server.conftest import make_key

URL = "/v1/projects/default/models/{ref}:generate"


def gen_settings(home, **overrides):
    # Generation runs where predictions run: in this process here (runner processes are
    # the subprocess tests' business, see tests/serving/test_runner.py).
    overrides.setdefault("serve_runners", 0)
    return Settings(home=home, device="cpu", **overrides)


@pytest.fixture
def gen_app(gen_home):
    return create_app(gen_settings(gen_home, max_new_tokens=64), job_workers=0)


@pytest.fixture
def gen_client(gen_app):
    with TestClient(gen_app, base_url="http://localhost") as c:
        yield c


@pytest.fixture
def gen_admin(gen_client, gen_home):
    return {"Authorization": f"Bearer {(gen_home / 'admin.key').read_text().strip()}"}


def sse(text: str) -> list[tuple[str, dict]]:
    """``(event, data)`` pairs of a ``text/event-stream`` body."""
    found = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        found.append((lines["event"], json.loads(lines["data"])))
    return found


def test_generate_returns_the_same_as_the_workspace(gen_client, gen_admin, gen_app):
    body = {"prompt": "repeat cat", "max_new_tokens": 6}
    r = gen_client.post(URL.format(ref="echo@production"), headers=gen_admin, json=body)
    assert r.status_code == 200, r.text
    got = r.json()
    assert set(got) == {"text", "finish_reason", "usage", "timing"}
    assert r.headers["x-aimass-model"] == "echo" and r.headers["x-aimass-version"] == "1"
    local = gen_app.state.aimass.workspace.serving.generate(
        "echo@1", "repeat cat", max_new_tokens=6
    )
    assert got["text"] == local["text"] and got["usage"] == local["usage"]
    assert got["usage"]["completion_tokens"] <= 6
    metrics = gen_client.get("/metrics", headers=gen_admin).text
    assert 'aimass_generated_tokens_total{model="echo",project="default"}' in metrics
    assert "aimass_generate_first_token_seconds_bucket" in metrics


def test_generate_streams_server_sent_events(gen_client, gen_admin):
    body = {"prompt": "repeat dog", "max_new_tokens": 8, "stream": True}
    r = gen_client.post(URL.format(ref="echo"), headers=gen_admin, json=body)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/event-stream")
    events = sse(r.text)
    names = [name for name, _ in events]
    assert names[-1] == "done" and set(names[:-1]) <= {"token"}
    final = events[-1][1]
    assert final["done"] is True and final["finish_reason"] in ("stop", "length")
    assert "".join(data["text"] for name, data in events if name == "token") == final["text"]
    whole = gen_client.post(
        URL.format(ref="echo"), headers=gen_admin, json={**body, "stream": False}
    ).json()
    assert whole["text"] == final["text"]
    # Accept: text/event-stream asks for the stream too.
    accept = {**gen_admin, "Accept": "text/event-stream"}
    r = gen_client.post(URL.format(ref="echo"), headers=accept, json={**body, "stream": False})
    assert sse(r.text)[-1][0] == "done"


@pytest.mark.parametrize("stream", [False, True])
def test_errors_before_the_stream_are_json_with_their_status(gen_client, gen_admin, stream):
    post = lambda ref, **body: gen_client.post(  # noqa: E731
        URL.format(ref=ref), headers=gen_admin, json={"stream": stream, **body}
    )
    too_long = post("echo", prompt="cat " * 300)
    assert too_long.status_code == 400 and too_long.headers["content-type"] == "application/json"
    assert "context" in too_long.json()["error"]["message"]
    over_cap = post("echo", prompt="hi", max_new_tokens=65)
    assert over_cap.status_code == 400
    assert "AIMASS_MAX_NEW_TOKENS" in over_cap.json()["error"]["message"]
    chars = post("echo", prompt="x" * 100_001)
    assert chars.status_code == 400 and "AIMASS_MAX_TEXT_CHARS" in chars.text
    bad = post("echo", prompt="hi", top_p=0)
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "INVALID_ARGUMENT"
    assert "top_p" in bad.json()["error"]["message"]
    unknown = post("echo", prompt="hi", beams=4)
    assert unknown.status_code == 400 and "beams" in unknown.text
    not_lm = post("mlm@1", prompt="hi")
    assert not_lm.status_code == 422
    assert not_lm.json()["error"]["code"] == "UNSUPPORTED_MODEL"
    assert "does not generate text" in not_lm.json()["error"]["message"]
    missing = post("ghost", prompt="hi")
    assert missing.status_code == 404


def test_generate_needs_a_key_with_predict_in_the_project(gen_client, gen_admin):
    url = URL.format(ref="echo")
    body = {"prompt": "repeat cat", "max_new_tokens": 2}
    assert gen_client.post(url, json=body).status_code == 401
    reader = make_key(gen_client, gen_admin, ["read"], name="reader")
    denied = gen_client.post(url, headers=reader, json=body)
    assert denied.status_code == 403 and denied.json()["error"]["code"] == "PERMISSION_DENIED"
    narrowed = make_key(gen_client, gen_admin, ["predict:other"], name="narrow")
    assert gen_client.post(url, headers=narrowed, json=body).status_code == 403
    allowed = make_key(gen_client, gen_admin, ["predict:echo"], name="echo-only")
    assert gen_client.post(url, headers=allowed, json=body).status_code == 200
    elsewhere = make_key(gen_client, gen_admin, ["predict"], project="team-b", name="b")
    assert gen_client.post(url, headers=elsewhere, json=body).status_code == 404
    other = "/v1/projects/team-b/models/echo:generate"
    assert gen_client.post(other, headers=elsewhere, json=body).status_code == 404


def test_the_route_table_includes_generate(gen_app):
    assert ("POST", "/v1/projects/{project}/models/{ref}:generate") in {
        (m, p) for m, p, _ in iter_routes(gen_app.routes)
    }


def test_audit_keeps_a_hash_of_the_request_never_the_prompt(gen_client, gen_admin, gen_app):
    secret = "repeat cat patient-id-4711"
    raw = json.dumps({"prompt": secret, "max_new_tokens": 3}).encode()
    headers = {**gen_admin, "Content-Type": "application/json", "X-Request-Id": "gen-audit-1"}
    r = gen_client.post(URL.format(ref="echo"), headers=headers, content=raw)
    assert r.status_code == 200
    events = gen_app.state.aimass.workspace.audit.list(action="models.generate", limit=10)
    [row] = [e for e in events if e.request_id == "gen-audit-1"]
    assert row.outcome == "ok" and row.input_hash == hashlib.sha256(raw).hexdigest()
    database = (gen_app.state.aimass.settings.home / "aimass.db").read_bytes()
    assert b"patient-id-4711" not in database


def failing_after(pieces, exc):
    def stream(prompt, **options):
        yield from ({"text": p} for p in pieces)
        raise exc

    return stream


def test_a_failure_mid_stream_is_an_error_event_and_an_audited_failure(
    gen_client, gen_admin, gen_app, monkeypatch
):
    from aimass.errors import ResourceExhausted

    ws = gen_app.state.aimass.workspace
    predictor = ws.serving.generator(ws.models.get("echo@1"))
    monkeypatch.setattr(
        predictor, "generate_stream", failing_after(["a", "b"], ResourceExhausted("out of memory"))
    )
    headers = {**gen_admin, "X-Request-Id": "gen-fail-1"}
    r = gen_client.post(
        URL.format(ref="echo@1"), headers=headers, json={"prompt": "hi", "stream": True}
    )
    assert r.status_code == 200
    events = sse(r.text)
    assert [name for name, _ in events] == ["token", "token", "error"]
    error = events[-1][1]
    assert error["code"] == "RESOURCE_EXHAUSTED" and error["message"] == "out of memory"
    assert error["request_id"] == "gen-fail-1"
    rows = [e for e in ws.audit.list(action="models.generate") if e.request_id == "gen-fail-1"]
    assert sorted(e.outcome for e in rows) == ["RESOURCE_EXHAUSTED", "ok"]
    assert ws.audit.verify().ok
    monkeypatch.setattr(predictor, "generate_stream", failing_after(["a"], RuntimeError("boom")))
    r = gen_client.post(URL.format(ref="echo@1"), headers=gen_admin, json={"prompt": "hi"})
    # Not streamed: nothing was sent yet, so the failure is an ordinary JSON 500.
    assert r.status_code == 500 and r.json()["error"]["code"] == "INTERNAL"
    assert "boom" not in r.text


@pytest.mark.parametrize("spec_version", ["2.3", "2.4"])
def test_a_client_that_goes_away_stops_the_generation(gen_app, gen_home, monkeypatch, spec_version):
    """Raw ASGI: the client disconnects after the first token; the generator is closed."""
    ws = gen_app.state.aimass.workspace
    gen_app.state.aimass.start(workers=0)
    predictor = ws.serving.generator(ws.models.get("echo@1"))
    produced, closed = [], []

    def endless(prompt, **options):
        try:
            while True:
                produced.append(1)
                yield {"text": "x"}
        finally:
            closed.append(True)

    monkeypatch.setattr(predictor, "generate_stream", endless)
    key = (gen_home / "admin.key").read_text().strip()
    body = json.dumps({"prompt": "hi", "stream": True}).encode()

    async def main():
        gone = asyncio.Event()
        sent = []

        async def receive():
            if not sent:
                sent.append(True)
                return {"type": "http.request", "body": body, "more_body": False}
            await gone.wait()
            return {"type": "http.disconnect"}

        async def send(message):
            if gone.is_set() and spec_version == "2.4":
                raise OSError("connection closed")
            if message["type"] == "http.response.body" and b"event: token" in message["body"]:
                gone.set()

        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": spec_version},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/v1/projects/default/models/echo@1:generate",
            "raw_path": b"/v1/projects/default/models/echo@1:generate",
            "query_string": b"",
            "root_path": "",
            "headers": [
                (b"host", b"localhost"),
                (b"authorization", f"Bearer {key}".encode()),
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
            "client": ("127.0.0.1", 1),
            "server": ("localhost", 80),
        }
        await asyncio.wait_for(gen_app(scope, receive, send), timeout=30)
        # Closed by the time the request is over (not later, by garbage collection).
        assert closed == [True]
        assert len(produced) < 100  # a bounded buffer ahead of the reader, then nothing
        assert gen_app.state.aimass.throttle.in_flight("generate") == 0  # slot given back
        await gen_app.state.aimass.stop()

    asyncio.run(main())


def test_the_console_streams_a_generation_with_the_sessions_rights(gen_client, gen_home):
    """The playground's generate form: the API's generate call, signed in by session."""
    import re

    key = (gen_home / "admin.key").read_text().strip()
    gen_client.post("/console/sign-in", data={"key": key}, follow_redirects=False)
    page = gen_client.get("/console/p/default/playground")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    form = {"csrf": token, "model": "echo@1", "prompt": "repeat cat", "max_new_tokens": "6"}
    with gen_client.stream("POST", "/console/p/default/generate", data=form) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        events = sse("\n".join(stream.iter_lines()) + "\n")
    assert events[-1][0] == "done" and events[-1][1]["finish_reason"] in ("stop", "length")
    direct = gen_client.post(
        URL.format(ref="echo@1"),
        headers={"Authorization": f"Bearer {key}"},
        json={"prompt": "repeat cat", "max_new_tokens": 6},
    )
    assert events[-1][1]["text"] == direct.json()["text"]  # the same call as the API's
    refused = gen_client.post("/console/p/default/generate", data={**form, "model": "mlm@1"})
    assert refused.status_code == 422 and "does not generate text" in refused.text
    forged = gen_client.post("/console/p/default/generate", data={**form, "csrf": "x"})
    assert forged.status_code == 403
    typo = gen_client.post("/console/p/default/generate", data={**form, "temperature": "warm"})
    assert typo.status_code == 400 and "the generation form is not valid" in typo.text
    assert "temperature" in typo.text
    gen_client.cookies.clear()
