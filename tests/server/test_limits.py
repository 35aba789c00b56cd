"""Limits on load (issue 13): request rate per key, concurrent calls, job quotas and time,
per-key and per-project values. The attacks they answer (work before authentication, key
guessing, oversized requests, lone surrogates) are proved in tests/security/."""

from __future__ import annotations

import pytest

from aimass.errors import RateLimited
from aimass.server.throttle import Decision, Throttle
from aimass.settings import Settings
from aimass.workspace.access import parse_key

P = "/v1/projects/default"


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
