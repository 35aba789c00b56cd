"""Limits before work (issue 13): authenticate first, throttle guessing, cap load and quotas."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import pytest
from fastapi.testclient import TestClient

from aimass.errors import RateLimited
from aimass.server import create_app
from aimass.server.throttle import Decision, Throttle
from aimass.settings import Settings
from aimass.workspace.access import parse_key

P = "/v1/projects/default"
WRONG = {"Authorization": "Bearer aimass_000000000000_" + "A" * 43}


@pytest.fixture
def client_with(settings_for):
    """``client_with(**settings)``: a started TestClient on an app with those settings."""
    opened = []

    def make(**overrides):
        app = create_app(settings_for(**overrides), job_workers=0)
        client = TestClient(app, base_url="http://localhost")
        client.__enter__()
        opened.append(client)
        return client

    yield make
    for client in opened:
        client.__exit__(None, None, None)


def throttled_decisions(client, admin):
    return client.get("/v1/audit", headers=admin, params={"action": "limit.throttled"}).json()


# -- authenticate first, then read -----------------------------------------------------------


def test_anonymous_malformed_json_is_401_not_400(client):
    r = client.post(
        f"{P}/datasets", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 401, r.text
    assert r.json()["error"]["code"] == "UNAUTHENTICATED"
    r = client.post(
        f"{P}/datasets",
        content=b"{not json",
        headers={"Content-Type": "application/json", "Authorization": "Basic dXNlcjpwYXNz"},
    )
    assert r.status_code == 401 and "Bearer aimass_" in r.json()["error"]["message"]


class Body:
    """An ASGI ``receive`` that hands out a body in chunks and counts what was read."""

    def __init__(self, chunk: int, chunks: int) -> None:
        self.chunk, self.left, self.read = chunk, chunks, 0

    async def __call__(self):
        if self.left == 0:
            return {"type": "http.disconnect"}
        self.left -= 1
        self.read += self.chunk
        return {"type": "http.request", "body": b" " * self.chunk, "more_body": self.left > 0}


def call(app, path, headers, body: Body) -> tuple[int, dict[str, str]]:
    """One POST straight through the ASGI app: ``(status, response headers)``."""
    sent = []

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http",
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 5000),
        "server": ("localhost", 80),
    }
    asyncio.run(app(scope, body, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    return start["status"], {k.decode(): v.decode() for k, v in start["headers"]}


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_an_anonymous_large_body_is_refused_without_reading_it(app, framing):
    body = Body(chunk=1024 * 1024, chunks=30)
    headers = {"host": "localhost", "content-type": "application/json"}
    if framing == "chunked":
        headers["transfer-encoding"] = "chunked"
    else:
        headers["content-length"] = str(30 * 1024 * 1024)
    status, _ = call(app, f"{P}/datasets", headers, body)
    assert status == 401
    assert body.read == 0, "not one byte of the body was read"
    status, _ = call(
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
    status, _ = call(app, f"{P}/datasets", headers, body)
    assert status == 413
    assert body.read <= 4 * 1024 * 1024, "reading stopped at the limit, not at the end"


def test_public_paths_read_only_a_small_body(client_with):
    client = client_with(max_anonymous_body_bytes=1000)
    r = client.post("/healthz", content=b"x" * 5000, headers={"Content-Type": "application/json"})
    assert r.status_code == 413
    assert "AIMASS_MAX_ANONYMOUS_BODY_BYTES" in r.json()["error"]["message"]


# -- failed-authentication throttling ----------------------------------------------------------


def test_guessing_keys_is_throttled_per_address_and_audited_once(client_with, admin):
    client = client_with(auth_failures_per_address="3/minute", auth_failures_per_key="100/minute")
    for _ in range(3):
        assert client.get("/v1/whoami", headers=WRONG).status_code == 401
    for _ in range(5):
        r = client.get("/v1/whoami", headers=WRONG)
        assert r.status_code == 429, r.text
        assert int(r.headers["retry-after"]) >= 1
        assert r.json()["error"]["type"] == "RateLimited"
        assert "AIMASS_AUTH_FAILURES_PER_ADDRESS" in r.json()["error"]["message"]
    # The address is refused before its key is looked at, even a valid one.
    assert client.get("/v1/whoami", headers=admin).status_code == 429
    # A malformed header counts as a failure too.
    assert client.post(f"{P}/datasets", headers={"Authorization": "Bearer nope"}).status_code == 429
    other = client_with(auth_failures_per_address="3/minute")
    decisions = throttled_decisions(other, admin)
    assert len(decisions) == 1, "one audit entry for the decision, not one per refusal"
    assert decisions[0]["resource"] == "address:testclient"
    assert decisions[0]["details"]["limit"] == "auth_failures_per_address"


def test_guessing_one_key_ids_secret_is_throttled_per_key_id(client_with, admin):
    client = client_with(auth_failures_per_key="2/minute", auth_failures_per_address="100/minute")
    for _ in range(2):
        assert client.get("/v1/whoami", headers=WRONG).status_code == 401
    r = client.get("/v1/whoami", headers=WRONG)
    assert r.status_code == 429 and "AIMASS_AUTH_FAILURES_PER_KEY" in r.text
    # Other keys from the same address still work.
    assert client.get("/v1/whoami", headers=admin).status_code == 200


def test_a_wrong_key_on_a_public_path_is_anonymous_but_still_counted(client_with, admin):
    client = client_with(auth_failures_per_key="2/minute")
    assert client.get("/healthz", headers=WRONG).status_code == 200
    assert client.get("/metrics", headers=WRONG).status_code == 200
    assert client.get("/v1/whoami", headers=WRONG).status_code == 429, "two failures counted"
    assert client.get("/healthz", headers=WRONG).status_code == 200
    url = f"{P}/models/sentiment@production:predict"
    assert client.post(url, headers=admin, json={"inputs": ["good"]}).status_code == 200
    assert 'project="' in client.get("/metrics", headers=admin).text
    assert 'project="' not in client.get("/metrics", headers=WRONG).text


def test_requests_per_key(client_with, admin):
    client = client_with(requests_per_key="3/minute")
    for _ in range(3):
        assert client.get("/v1/whoami", headers=admin).status_code == 200
    r = client.get("/v1/whoami", headers=admin)
    assert r.status_code == 429
    assert r.json()["error"]["details"]["limit"] == "requests_per_key"
    assert 1 <= int(r.headers["retry-after"]) <= 60


# -- concurrency ---------------------------------------------------------------------------------


def test_concurrent_calls_per_key_and_in_total():
    decisions: list[Decision] = []
    throttle = Throttle(
        Settings(max_streams_per_key=2, max_streams=3), on_decision=decisions.append
    )
    throttle.acquire_stream("a", "generate")
    throttle.acquire_stream("a", "generate")
    with pytest.raises(RateLimited) as info:
        throttle.acquire_stream("a", "generate")
    assert "AIMASS_MAX_STREAMS_PER_KEY" in info.value.message and info.value.retry_after == 1
    throttle.acquire_stream("b", "generate")
    with pytest.raises(RateLimited, match="AIMASS_MAX_STREAMS"):
        throttle.acquire_stream("c", "generate")
    with throttle.stream("c"):  # predict slots are counted apart from generate streams
        assert throttle.in_flight("predict") == 1
    throttle.release_stream("a", "generate")
    throttle.acquire_stream("c", "generate")
    assert throttle.in_flight("generate") == 3 and throttle.in_flight("predict") == 0
    assert [d.limit for d in decisions] == ["max_streams_per_key", "max_streams"]


def test_a_key_over_its_predict_slots_gets_429(client_with, admin, monkeypatch):
    client = client_with(max_predicts_per_key=1)
    state = client.app.state.aimass
    state.throttle.acquire_stream("admin-held", "predict")  # another key's call: no effect
    key_id = client.get("/v1/whoami", headers=admin).json()["key_id"]
    with state.throttle.stream(key_id, "predict"):  # as if one call were in flight
        r = client.post(
            f"{P}/models/sentiment@production:predict", headers=admin, json={"inputs": ["good"]}
        )
        assert r.status_code == 429 and r.headers["retry-after"] == "1"
        assert "AIMASS_MAX_PREDICTS_PER_KEY" in r.json()["error"]["message"]
    r = client.post(
        f"{P}/models/sentiment@production:predict", headers=admin, json={"inputs": ["good"]}
    )
    assert r.status_code == 200
    assert state.throttle.in_flight("predict", key_id) == 0, "the slot is given back"


# -- jobs --------------------------------------------------------------------------------------


TRAIN = {"kind": "train", "dataset": "reviews", "base": "tiny", "model": "quota"}


@pytest.fixture
def no_active_jobs(client, admin):
    """No queued job of the shared home counts against the quota, before or after the test."""

    def cancel_all():
        for job in client.get(f"{P}/jobs", headers=admin, params={"status": "queued"}).json():
            client.post(f"{P}/jobs/{job['id']}:cancel", headers=admin)

    cancel_all()
    yield
    cancel_all()


def test_queued_and_running_jobs_per_project_are_capped(client_with, admin, no_active_jobs):
    client = client_with(max_active_jobs_per_project=1)
    first = client.post(f"{P}/jobs", headers=admin, json=TRAIN)
    assert first.status_code == 201, first.text
    r = client.post(f"{P}/jobs", headers=admin, json={**TRAIN, "model": "quota2"})
    assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
    assert "AIMASS_MAX_ACTIVE_JOBS_PER_PROJECT" in r.json()["error"]["message"]
    client.post(f"{P}/jobs/{first.json()['id']}:cancel", headers=admin)
    assert client.post(f"{P}/jobs", headers=admin, json=TRAIN).status_code == 201


def test_a_job_asking_for_too_many_epochs_is_refused(client_with, admin):
    client = client_with(max_epochs=5)
    r = client.post(f"{P}/jobs", headers=admin, json={**TRAIN, "config": {"epochs": 10_000}})
    assert r.status_code == 400
    assert r.json()["error"]["details"]["field"] == "config.epochs"
    assert "AIMASS_MAX_EPOCHS" in r.json()["error"]["message"]


# -- the event loop stays free ---------------------------------------------------------------


def test_a_call_over_the_total_characters_is_refused_before_tokenizing(client_with, admin):
    client = client_with(max_request_chars=1000)
    r = client.post(
        f"{P}/models/sentiment@production:predict",
        headers=admin,
        json={"inputs": ["word " * 150, "word " * 150]},
    )
    assert r.status_code == 413 and "AIMASS_MAX_REQUEST_CHARS" in r.text


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
    url = f"{P}/models/sentiment@production:predict"
    assert client.post(url, headers=admin, json={"inputs": ["warm"]}).status_code == 200
    heavy: dict[str, object] = {}

    def send_heavy():
        texts = ["good film " * 2000] * 4
        heavy["response"] = client.post(url, headers=admin, json={"inputs": texts})
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


# -- text hygiene --------------------------------------------------------------------------------


def test_a_lone_surrogate_in_a_predict_input_is_a_400_naming_it(client, admin):
    raw = b'{"inputs": ["fine", "bad \\ud800 text"]}'
    r = client.post(
        f"{P}/models/sentiment@production:predict",
        headers={**admin, "Content-Type": "application/json"},
        content=raw,
    )
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["code"] == "INVALID_ARGUMENT"
    assert error["details"] == {"field": "inputs[1]", "position": 4}
    assert "'inputs[1]'" in error["message"] and "U+D800" in error["message"]
    # Emoji sent as escaped surrogate pairs are valid text.
    pair = b'{"inputs": ["great \\ud83d\\ude00"]}'
    r = client.post(
        f"{P}/models/sentiment@production:predict",
        headers={**admin, "Content-Type": "application/json"},
        content=pair,
    )
    assert r.status_code == 200, r.text


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/projects", b'{"name": "\\udfff"}'),
        (f"{P}/keys", b'{"name": "k\\ud800", "scopes": ["read"]}'),
        (f"{P}/models/sentiment@production:generate", b'{"prompt": "\\ud800"}'),
        (f"{P}/datasets", b'{"name": "d", "format": "jsonl", "content": "\\ud800"}'),
    ],
)
def test_a_lone_surrogate_anywhere_in_a_body_is_a_400(client, admin, path, body):
    r = client.post(path, headers={**admin, "Content-Type": "application/json"}, content=body)
    assert r.status_code == 400, r.text
    assert "unpaired UTF-16 surrogate" in r.json()["error"]["message"]


def test_the_predict_check_refuses_a_lone_surrogate_without_http(app):
    from aimass.errors import InvalidArgument

    with pytest.raises(InvalidArgument) as info:
        app.state.aimass.workspace.check_inputs(["fine", "bad \ud800 text"])
    assert info.value.details == {"index": 1, "position": 4}
    assert "input 1" in info.value.message


def test_a_lone_surrogate_in_an_uploaded_row_is_a_400_naming_the_line(client, admin):
    rows = '{"text": "ok", "label": "pos"}\n{"text": "x\\udc00", "label": "neg"}\n'
    body = json.dumps({"name": "surrogates", "format": "jsonl", "content": rows})
    r = client.post(
        f"{P}/datasets", headers={**admin, "Content-Type": "application/json"}, content=body
    )
    assert r.status_code == 400, r.text
    assert r.json()["error"]["details"]["line"] == 2
    assert "field 'text'" in r.json()["error"]["message"]


def test_a_500_is_logged_with_its_traceback_and_request_id(client, admin, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise ZeroDivisionError("planted")

    monkeypatch.setattr(client.app.state.aimass.workspace, "check_inputs", broken)
    r = client.post(
        f"{P}/models/sentiment@production:predict", headers=admin, json={"inputs": ["x"]}
    )
    assert r.status_code == 500
    record = next(r for r in caplog.records if r.getMessage() == "unhandled error")
    assert record.exc_info is not None and record.exc_info[0] is ZeroDivisionError
    assert record.request_id == r.headers["x-request-id"]


# -- per-key and per-project values ----------------------------------------------------------


def test_limit_overrides_give_one_key_and_one_project_their_own_values(
    client_with, admin, no_active_jobs
):
    key_id = parse_key(admin["Authorization"].removeprefix("Bearer "))
    client = client_with(
        requests_per_key="2/minute",
        max_active_jobs_per_project=1,
        limit_overrides={
            f"key:{key_id}": {"requests_per_key": "4/minute"},
            "project:default": {"max_active_jobs_per_project": 2, "max_epochs": 3},
        },
    )
    assert [client.get("/v1/whoami", headers=admin).status_code for _ in range(5)] == [
        200,
        200,
        200,
        200,
        429,
    ]
    other = client_with(
        max_active_jobs_per_project=1,
        limit_overrides={"project:default": {"max_active_jobs_per_project": 2, "max_epochs": 3}},
    )
    assert other.post(f"{P}/jobs", headers=admin, json=TRAIN).status_code == 201
    assert other.post(f"{P}/jobs", headers=admin, json={**TRAIN, "model": "q2"}).status_code == 201
    r = other.post(f"{P}/jobs", headers=admin, json={**TRAIN, "model": "q3"})
    assert r.status_code == 429
    r = other.post(f"{P}/jobs", headers=admin, json={**TRAIN, "config": {"epochs": 4}})
    assert r.status_code == 400 and r.json()["error"]["details"]["limit"] == 3


def test_a_limit_override_for_an_unknown_limit_is_refused_at_start():
    with pytest.raises(ValueError, match="max_epochs' cannot be set for 'key:abc'"):
        Settings(limit_overrides={"key:abc": {"max_epochs": 5}})


def test_a_job_running_past_its_time_limit_is_asked_to_stop(workspace):
    from datetime import timedelta

    from aimass.server.deadlines import JobDeadlines

    settings = Settings(
        home=workspace.settings.home,
        max_job_seconds=60,
        limit_overrides={"project:default": {"max_job_seconds": 600}},
    )
    jobs = workspace.store.jobs
    job = jobs.claim(jobs.create("default", "train", {"model": "m"}).id)
    stopped: list = []
    deadlines = JobDeadlines(workspace.store, settings, on_stop=lambda j, s: stopped.append(s))
    assert deadlines.check(job.started_at + timedelta(seconds=300)) == [], "project limit: 600 s"
    later = job.started_at + timedelta(seconds=601)
    assert [j.id for j in deadlines.check(later)] == [job.id]
    assert jobs.get(job.id).cancel_requested and stopped == [600.0]
    assert "AIMASS_MAX_JOB_SECONDS" in jobs.logs(job.id)[-1].message
    assert deadlines.check(later) == [], "asked once"
