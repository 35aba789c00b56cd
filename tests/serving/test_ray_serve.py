"""Serving on Ray Serve replicas (``serve_with=ray``) on a real two-node Ray cluster.

A real server (uvicorn in a thread, :func:`tests.conftest.live_server`) serves a tiny
trained classifier through Ray Serve; the tests call it over HTTP and read what an
operator reads: predictions, ``/metrics`` and the audit log.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from aimass.cluster import opener_name, settings_from_json, settings_to_json
from aimass.errors import FailedPrecondition, InvalidArgument
from aimass.serving import ray_serve
from aimass.serving.ray_serve import app_name, replica_actor_options
from aimass.settings import Settings
from aimass.workspace import Workspace
from aimass.workspace.secrets import open_artifact_store
from tests.conftest import live_server, trained_workspace

# Ray Serve's own pydantic models warn as Ray Serve is imported (a third-party deprecation).
pytestmark = [
    pytest.mark.filterwarnings(
        "ignore:Using extra keyword arguments on `Field`:DeprecationWarning"
    ),
    # The scaling test's short metrics interval: deprecated in Ray's config, still obeyed.
    pytest.mark.filterwarnings("ignore:The `metrics_interval_s` field:DeprecationWarning"),
]

TEXTS = ["good great film", "bad awful movie", "the plot was fine", "boring and sad", "lovely"]
DIGEST = "4e2a6ca019950a7f8974354c6f847e70d5882dc3e2c2068ab90a107464adbd54"


def test_application_names_are_validated_and_unambiguous():
    assert app_name("default", "m", 3, DIGEST) == "aimass:default:m:v3:4e2a6ca01995"
    onnx = app_name("default", "m", 3, DIGEST, "onnx-int8")
    assert onnx == "aimass:default:m:v3:4e2a6ca01995:onnx-int8"
    with pytest.raises(InvalidArgument, match="unknown serving backend"):
        app_name("default", "m", 3, DIGEST, "tensorrt")
    for project, model in [("Default", "m"), ("p", "m:x"), ("p", "../m"), ("p", "")]:
        with pytest.raises(InvalidArgument, match="cannot name a Ray Serve application"):
            app_name(project, model, 1, DIGEST)
    with pytest.raises(InvalidArgument, match="malformed"):
        app_name("p", "m", 0, DIGEST)


def test_a_replica_reserves_the_cpus_set_else_one_per_runner_thread(tmp_path):
    def options(**settings: Any) -> dict[str, Any]:
        return replica_actor_options(Settings(home=tmp_path, **settings))

    assert options() == {"num_cpus": 1}
    assert options(serve_runner_threads=4) == {"num_cpus": 4}
    assert options(serve_runner_threads=4, ray_replica_cpus=0.5) == {"num_cpus": 0.5}
    assert options(device="cuda") == {"num_cpus": 1, "num_gpus": 1}
    with pytest.raises(ValueError, match="ray_replica_cpus"):
        Settings(home=tmp_path, ray_replica_cpus=0)


def test_replicas_get_settings_without_secret_values(tmp_path, monkeypatch):
    secret = "ab" * 32
    settings = Settings(
        home=tmp_path, master_key="c2VjcmV0", server_secret=secret, metrics_token="t0ken"
    )
    sent = settings_to_json(settings)
    for value in ("c2VjcmV0", secret, "t0ken", "**********"):
        assert value not in sent
    # A replica takes the secret it needs from its own environment, or says which it lacks.
    with pytest.raises(FailedPrecondition, match="AIMASS_MASTER_KEY"):
        settings_from_json(sent)
    monkeypatch.setenv("AIMASS_MASTER_KEY", "c2VjcmV0")
    received = settings_from_json(sent)
    assert received.master_key is not None and received.home == settings.home
    assert received.server_secret is None


def test_the_artifact_opener_goes_to_ray_by_name():
    assert opener_name(open_artifact_store) == "aimass.workspace.secrets:open_artifact_store"
    with pytest.raises(InvalidArgument, match="not a module-level function"):
        opener_name(lambda settings: None)


@pytest.fixture(scope="module")
def home(tmp_path_factory, tiny_bert_dir):
    """A home with the tiny classifiers ``m@1`` and ``m@2`` (trained once for the module)."""
    from aimass.jobs.train import TrainSpec

    root = tmp_path_factory.mktemp("ray-serve")
    ws = trained_workspace(root / "home", tiny_bert_dir, root / "data")
    ws.jobs.train(TrainSpec(dataset="s", base="tiny", model="m", config={"epochs": 1}))
    ws.close()
    return root / "home"


@pytest.fixture(scope="module")
def cluster(ray_cluster):
    """The Ray cluster; after the module, Serve is shut down on it and this process
    disconnected (before the session's cluster stops, so no handle of this process
    keeps reporting to a controller that is gone)."""
    yield ray_cluster
    import ray
    from ray import serve

    if ray.is_initialized():
        serve.shutdown()
        ray.shutdown()


@contextlib.contextmanager
def _serving(home: Path, **settings: Any) -> Iterator[tuple[str, str, Any]]:
    """``(url, admin key, app)`` of a live server until the block ends (then stopped).

    Replicas take half a CPU: the cluster's two CPUs then hold four, so a new replica never
    waits for one that is stopping (with one CPU each, a CI run saw a replica stopped
    mid-scale-up, STOPPING 1, RUNNING 1, STARTING 1, keep the new one off the cluster for
    180 s).
    """
    settings.setdefault("ray_replica_cpus", 0.5)
    server = live_server(home, **settings)
    try:
        yield next(server)
    finally:
        for _ in server:  # runs live_server's teardown: the server stops
            pass


def _predict(url: str, key: str, texts: list[str], model: str = "m@1") -> list[dict[str, Any]]:
    r = httpx.post(
        f"{url}/v1/projects/default/models/{model}:predict",
        headers={"Authorization": f"Bearer {key}"},
        json={"inputs": texts},
        timeout=120,
    )
    assert r.status_code == 200, r.text
    predictions: list[dict[str, Any]] = r.json()["predictions"]
    return predictions


def _scale_events(url: str, key: str) -> list[dict[str, Any]]:
    r = httpx.get(
        f"{url}/v1/audit",
        headers={"Authorization": f"Bearer {key}"},
        params={"action": "serving.scale"},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    return [e["details"] for e in r.json()]


def _replicas_gauge(url: str, key: str) -> float | None:
    text = httpx.get(f"{url}/metrics", headers={"Authorization": f"Bearer {key}"}).text
    for line in text.splitlines():
        if line.startswith('aimass_serve_replicas{model="m@1",project="default"}'):
            return float(line.split()[-1])
    return None


def _wait_for(what: str, check: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            import ray
            from ray import serve

            status = {name: app.deployments for name, app in serve.status().applications.items()}
            free = ray.available_resources()
            raise AssertionError(
                f"{what} did not happen within {timeout:g} s; Serve: {status}; "
                f"free on the cluster: {free}"
            )
        time.sleep(0.5)


def _backend(app: Any) -> Any:
    return _backend_named(app, "default/m@1")


def _backend_named(app: Any, name: str) -> Any:
    backends = app.state.aimass._backends()
    assert list(backends) == [name]
    return backends[name]


@pytest.mark.services
@pytest.mark.subprocess
def test_two_replicas_serve_what_the_runners_serve(home, cluster):
    with _serving(home, serve_runners=1) as (url, key, _app):
        expected = _predict(url, key, TEXTS)
    with _serving(
        home,
        serve_with="ray",
        ray_address=cluster.address,
        ray_min_replicas=2,
        ray_max_replicas=2,
    ) as (url, key, app):
        got = _predict(url, key, TEXTS)
        assert [p["label"] for p in got] == [p["label"] for p in expected]
        for mine, theirs in zip(got, expected, strict=True):
            assert mine["probabilities"] == pytest.approx(theirs["probabilities"], abs=1e-5)
        # Concurrent single-input calls: Ray Serve routes them over both replicas.
        with ThreadPoolExecutor(8) as pool:
            singles = list(pool.map(lambda t: _predict(url, key, [t])[0], TEXTS * 6))
        assert [p["label"] for p in singles] == [p["label"] for p in expected] * 6
        # Errors raised in a replica come back as the same error, with its status.
        not_lm = httpx.post(
            f"{url}/v1/projects/default/models/m@1:generate",
            headers={"Authorization": f"Bearer {key}"},
            json={"prompt": "hi"},
            timeout=60,
        )
        assert not_lm.status_code == 422, not_lm.text
        assert not_lm.json()["error"]["code"] == "UNSUPPORTED_MODEL"
        backend = _backend(app)
        assert len(backend.served_by) == 2, backend.served_by
        assert backend.replicas == 2
        assert _replicas_gauge(url, key) == 2.0
        assert {"from": 0, "to": 2, "reason": "deployed"}.items() <= _scale_events(url, key)[
            0
        ].items()
        # Another server sharing the cluster unloads the version: this one deploys it again.
        from ray import serve

        serve.delete(backend.app)
        assert _predict(url, key, TEXTS) == got
        assert backend.replicas == 2 and backend.app in serve.status().applications
    # Stopping the server deletes the application and says so.
    assert backend.app not in serve.status().applications
    ws = Workspace(Settings(home=home, device="cpu"))
    try:
        deleted = ws.audit.list(action="serving.scale")[0].details
    finally:
        ws.close()
    assert (deleted["from"], deleted["to"], deleted["reason"]) == (2, 0, "deleted")


@pytest.mark.services
@pytest.mark.subprocess
def test_replicas_scale_up_under_load_and_back_down(home, cluster, monkeypatch):
    # Short delays and a queue length reported twice a second, so the autoscaler decides
    # within seconds (production: 5 s up, 60 s down, reported every 10 s).
    monkeypatch.setitem(ray_serve.AUTOSCALING, "upscale_delay_s", 1.0)
    # Ten seconds down: a short lull while the new replica starts does not stop it.
    monkeypatch.setitem(ray_serve.AUTOSCALING, "downscale_delay_s", 10.0)
    monkeypatch.setitem(ray_serve.AUTOSCALING, "metrics_interval_s", 0.5)
    monkeypatch.setitem(ray_serve.AUTOSCALING, "look_back_period_s", 2.0)
    monkeypatch.setattr(ray_serve, "POLL_SECONDS", 0.5)
    with _serving(
        home,
        serve_with="ray",
        ray_address=cluster.address,
        ray_min_replicas=1,
        ray_max_replicas=2,
        # A quarter of a request in flight per replica: any steady load is over it, so the
        # test does not depend on how fast this machine pushes requests through.
        ray_target_ongoing_requests=0.25,
    ) as (url, key, app):
        _predict(url, key, TEXTS)
        backend = _backend(app)
        assert backend.replicas == 1 and _replicas_gauge(url, key) == 1.0
        stop = threading.Event()

        # Light load: two callers with a short pause keep about one request in flight, four
        # times the target, and leave CPU for the new replica to import torch and load the
        # model (under twelve heavy callers a CI run's new replica was still starting after
        # 180 s on two shared cores).
        def load() -> None:
            while not stop.is_set():
                _predict(url, key, TEXTS[:2])
                time.sleep(0.02)

        workers = [threading.Thread(target=load, daemon=True) for _ in range(2)]
        for worker in workers:
            worker.start()
        try:
            # A new replica is a new Ray worker importing torch and loading the model:
            # tens of seconds on two shared cores (a CI run saw one take over 30 s).
            _wait_for("scale-up to 2 replicas", lambda: backend.replicas == 2, timeout=180)
        finally:
            stop.set()
            for worker in workers:
                worker.join(timeout=120)
        assert _replicas_gauge(url, key) == 2.0
        _wait_for("scale-down to 1 replica", lambda: backend.replicas == 1, timeout=180)
        assert _replicas_gauge(url, key) == 1.0
        events = [(e["from"], e["to"], e["reason"]) for e in _scale_events(url, key)]
        # Newest first: up, then down, both by the autoscaler.
        assert (1, 2, "autoscaled") in events and (2, 1, "autoscaled") in events
        assert events.index((2, 1, "autoscaled")) < events.index((1, 2, "autoscaled"))


@pytest.mark.services
@pytest.mark.subprocess
def test_a_version_evicted_from_the_model_cache_is_deleted_from_ray_serve(home, cluster):
    from ray import serve

    with _serving(home, serve_with="ray", ray_address=cluster.address, model_cache_size=1) as (
        url,
        key,
        app,
    ):
        _predict(url, key, TEXTS[:1])
        first = _backend(app).app

        def deleted() -> list[dict[str, Any]]:
            return [e for e in _scale_events(url, key) if e["reason"] == "deleted"]

        before = len(deleted())  # the home's audit log holds the other tests' events too
        _predict(url, key, TEXTS[:1], "m@2")

        # m@1 was the least recently used of two versions in a cache of one.
        _wait_for("m@1's deletion to be audited", lambda: len(deleted()) > before, 30)
        assert deleted()[0]["application"] == first and deleted()[0]["to"] == 0
        assert first not in serve.status().applications
        assert list(app.state.aimass._backends()) == ["default/m@2"]


@pytest.mark.services
@pytest.mark.subprocess
def test_a_replica_serves_the_onnx_graph_the_parity_run_recommends(home, cluster):
    from aimass.jobs.optimize import OptimizeSpec

    ws = Workspace(Settings(home=home, device="cpu"))
    try:
        ws.jobs.optimize(OptimizeSpec(model="m@2"))
        recommended = ws.models.get("m@2").metrics["serving"]["recommended"]
        expected = ws.serving.load("m@2").predict(TEXTS)  # in process, on the same graph
    finally:
        ws.close()
    assert recommended in ("onnx", "onnx-int8")
    with _serving(home, serve_with="ray", ray_address=cluster.address) as (url, key, app):
        for mine, theirs in zip(_predict(url, key, TEXTS, "m@2"), expected, strict=True):
            assert mine["probabilities"] == pytest.approx(theirs["probabilities"], abs=1e-5)
        backend = _backend_named(app, "default/m@2")
        assert backend.backend == recommended and backend.app.endswith(f":{recommended}")
        text = httpx.get(f"{url}/metrics", headers={"Authorization": f"Bearer {key}"}).text
        gauge = f'aimass_serve_backend{{backend="{recommended}",model="m@2",project="default"}}'
        assert f"{gauge} 1.0" in text


def _sse(text: str) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        found.append((lines["event"], json.loads(lines["data"])))
    return found


@pytest.mark.services
@pytest.mark.subprocess
def test_generation_streams_from_a_replica(gen_home, cluster):
    # Sampling with a seed: reproducible, and (for this tiny model) runs to max_new_tokens
    # where greedy decoding stops at once.
    options = {"max_new_tokens": 8, "temperature": 1.0, "seed": 1}
    with _serving(gen_home, serve_with="ray", ray_address=cluster.address, ray_max_replicas=1) as (
        url,
        key,
        app,
    ):
        r = httpx.post(
            f"{url}/v1/projects/default/models/echo@1:generate",
            headers={"Authorization": f"Bearer {key}"},
            json={"prompt": "repeat dog", "stream": True, **options},
            timeout=120,
        )
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("text/event-stream")
        events = _sse(r.text)
        names = [name for name, _ in events]
        assert names[-1] == "done" and set(names[:-1]) <= {"token"}
        final = events[-1][1]
        tokens = [data["text"] for name, data in events if name == "token"]
        assert len(tokens) > 1 and "".join(tokens) == final["text"]
        # The same pieces, one event each, as the model decodes them in this process.
        local = list(
            app.state.aimass.workspace.serving.generate_stream("echo@1", "repeat dog", **options)
        )
        assert tokens == [e["text"] for e in local if not e.get("done")]
        assert final["usage"] == local[-1]["usage"]
        assert _backend_named(app, "default/echo@1").busy == 0
