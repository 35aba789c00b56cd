"""Limits before work (issue 13, findings 1 and 3): a caller without a key gets nothing read
or parsed, bodies are read with a streaming limit, a request's characters are capped
before anything tokenizes them, and tokenizing never holds up the event loop."""

from __future__ import annotations

import json
import threading
import time

import pytest

from aimass.server import create_app
from tests.security.conftest import WRONG, Body, asgi_post

P = "/v1/projects/default"
PREDICT = f"{P}/models/sentiment@production:predict"
JSON = {"Content-Type": "application/json"}


# -- finding 1: authenticate first, then read ----------------------------------------------


def test_anonymous_malformed_json_is_401_not_400(client):
    for path in (f"{P}/datasets", PREDICT, "/v1/projects", f"{P}/jobs"):
        r = client.post(path, content=b"{not json", headers=JSON)
        assert r.status_code == 401, (path, r.text)
        assert r.json()["error"]["code"] == "UNAUTHENTICATED"
    r = client.post(
        f"{P}/datasets",
        content=b"{not json",
        headers={**JSON, "Authorization": "Basic dXNlcjpwYXNz"},
    )
    assert r.status_code == 401 and "Bearer aimass_" in r.json()["error"]["message"]


def test_anonymous_wrong_keys_and_fields_are_401_not_400(client):
    """An anonymous body with the wrong keys is refused for the key, never validated."""
    for body in ({"wrong": 1}, {"inputs": "x" * 10}, [1, 2, 3]):
        r = client.post(PREDICT, json=body)
        assert r.status_code == 401, (body, r.text)
        r = client.post(PREDICT, json=body, headers=WRONG)
        assert r.status_code == 401, (body, r.text)


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_an_anonymous_large_body_is_refused_without_reading_it(app, framing):
    body = Body(chunk=1024 * 1024, chunks=30)
    headers = {"host": "localhost", "content-type": "application/json"}
    if framing == "chunked":
        headers["transfer-encoding"] = "chunked"
    else:
        headers["content-length"] = str(30 * 1024 * 1024)
    status, _ = asgi_post(app, f"{P}/datasets", headers, body)
    assert status == 401
    assert body.read == 0, "not one byte of the body was read"
    status, _ = asgi_post(
        app, f"{P}/datasets", {**headers, "authorization": WRONG["Authorization"]}, body
    )
    assert status == 401 and body.read == 0


def test_a_chunked_body_is_cut_off_once_it_crosses_the_limit(settings_for, trained_home):
    app = create_app(settings_for(max_body_bytes=3 * 1024 * 1024), job_workers=0)
    app.state.aimass.start(workers=0)
    key = (trained_home / "admin.key").read_text().strip()
    body = Body(chunk=1024 * 1024, chunks=30)
    headers = {
        "host": "localhost",
        "content-type": "application/json",
        "transfer-encoding": "chunked",
        "authorization": f"Bearer {key}",
    }
    status, _ = asgi_post(app, f"{P}/datasets", headers, body)
    assert status == 413
    assert body.read <= 4 * 1024 * 1024, "reading stopped at the limit, not at the end"


def test_a_body_that_declares_too_much_is_refused_before_a_byte_is_read(settings_for, trained_home):
    app = create_app(settings_for(max_body_bytes=1024 * 1024), job_workers=0)
    app.state.aimass.start(workers=0)
    key = (trained_home / "admin.key").read_text().strip()
    body = Body(chunk=1024 * 1024, chunks=30)
    headers = {
        "host": "localhost",
        "content-type": "application/json",
        "content-length": str(30 * 1024 * 1024),
        "authorization": f"Bearer {key}",
    }
    status, _ = asgi_post(app, PREDICT, headers, body)
    assert status == 413 and body.read == 0


def test_public_paths_read_only_a_small_body(client_with):
    client = client_with(max_anonymous_body_bytes=1000)
    r = client.post("/healthz", content=b"x" * 5000, headers=JSON)
    assert r.status_code == 413
    assert "AIMASS_MAX_ANONYMOUS_BODY_BYTES" in r.json()["error"]["message"]


def test_a_body_over_the_limit_is_413_and_changes_nothing(client_with, admin):
    c = client_with(max_body_bytes=1000)
    body = {"name": "big", "format": "jsonl", "content": '{"text": "a", "label": "x"}\n' * 100}
    r = c.post(f"{P}/datasets", headers=admin, json=body)
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"
    names = [d["name"] for d in c.get(f"{P}/datasets", headers=admin).json()]
    assert "big" not in names


# -- an authenticated caller's body is validated, with clear errors ---------------------------


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
    r = client.post(f"{P}/models/sentiment:predict", headers=admin, json=body)
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code


def test_malformed_json_is_400(client, admin):
    r = client.post(f"{P}/models/sentiment:predict", headers={**admin, **JSON}, content=b'{"in')
    assert r.status_code == 400 and r.json()["error"]["code"] == "INVALID_ARGUMENT"


# -- finding 3: the loop stays free -----------------------------------------------------------


def test_a_call_over_the_total_characters_is_refused_before_tokenizing(
    client_with, admin, monkeypatch
):
    from aimass.serving import batching

    counted: list[int] = []
    original = batching.InProcessBackend.lengths

    def spy(self, texts):
        counted.append(len(texts))
        return original(self, texts)

    monkeypatch.setattr(batching.InProcessBackend, "lengths", spy)
    client = client_with(max_request_chars=1000)
    r = client.post(PREDICT, headers=admin, json={"inputs": ["word " * 150, "word " * 150]})
    assert r.status_code == 413 and "AIMASS_MAX_REQUEST_CHARS" in r.text
    assert r.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"
    assert counted == [], "nothing was tokenized"
    assert client.post(PREDICT, headers=admin, json={"inputs": ["good"]}).status_code == 200


def test_healthz_answers_while_a_heavy_predict_is_tokenized(client, admin, monkeypatch):
    """A long request's tokens are counted off the event loop: /healthz is not held up."""
    from aimass.serving import batching

    counting = threading.Event()
    release = threading.Event()
    original = batching.InProcessBackend.lengths

    def slow_lengths(self, texts):
        if sum(map(len, texts)) > batching.INLINE_COUNT_CHARS:
            counting.set()
            release.wait(30)  # stands in for seconds of tokenizing
        return original(self, texts)

    monkeypatch.setattr(batching.InProcessBackend, "lengths", slow_lengths)
    assert client.post(PREDICT, headers=admin, json={"inputs": ["warm"]}).status_code == 200
    heavy: dict[str, object] = {}

    def send_heavy():
        texts = ["good film " * 2000] * 4
        heavy["response"] = client.post(PREDICT, headers=admin, json={"inputs": texts})
        heavy["done"] = time.monotonic()

    worker = threading.Thread(target=send_heavy)
    worker.start()
    try:
        assert counting.wait(30), "the heavy request reached token counting"
        assert client.get("/healthz").status_code == 200
        assert "done" not in heavy, "/healthz answered while the heavy call was still counting"
    finally:
        release.set()
        worker.join(60)
    assert heavy["response"].status_code == 200  # type: ignore[attr-defined]


def test_the_character_cap_counts_every_input_of_a_request(client_with, admin):
    """Many inputs each under the per-input limit still hit the per-request cap."""
    client = client_with(max_request_chars=5000)
    texts = ["good " * 100] * 20  # 500 characters each, 10,000 in all
    r = client.post(PREDICT, headers={**admin, **JSON}, content=json.dumps({"inputs": texts}))
    assert r.status_code == 413, r.text
