"""What the Ray executor sends to a Ray worker (no secrets), and its errors; no cluster."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from pydantic import SecretStr

from aimass.cluster import opener_name, settings_from_json, settings_to_json
from aimass.errors import FailedPrecondition, InvalidArgument
from aimass.jobs.pool import WorkerPool
from aimass.jobs.ray_executor import _parse_actor_name, actor_name
from aimass.settings import Settings
from aimass.workspace.secrets import open_artifact_store

MASTER = "q" * 43 + "="  # the value only has to be recognisable, not valid


def test_the_settings_sent_to_ray_carry_no_secret_only_the_names_a_job_needs(tmp_path: Path):
    settings = Settings(
        home=tmp_path,
        master_key=SecretStr(MASTER),
        api_key=SecretStr("client-key"),
        server_secret=SecretStr("ab" * 32),
        metrics_token=SecretStr("metrics-token"),
        max_epochs=7,
        executor="ray",
    )
    text = settings_to_json(settings)
    for secret in (MASTER, "client-key", "ab" * 32, "metrics-token"):
        assert secret not in text
    payload = json.loads(text)
    assert payload["needs"] == ["master_key"]
    assert payload["settings"]["max_epochs"] == 7
    assert payload["settings"]["server_secret"] is None  # server-only: sent as unset


def test_a_ray_node_without_the_servers_master_key_refuses_saying_which(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    text = settings_to_json(Settings(home=tmp_path, master_key=SecretStr(MASTER), max_epochs=7))
    with pytest.raises(FailedPrecondition, match="lacks AIMASS_MASTER_KEY, which the server has"):
        settings_from_json(text)
    monkeypatch.setenv("AIMASS_MASTER_KEY", MASTER)
    # A server-only secret in the node's environment is not picked up: sent as unset.
    monkeypatch.setenv("AIMASS_SERVER_SECRET", "cd" * 32)
    rebuilt = settings_from_json(text)
    assert rebuilt.master_key is not None and rebuilt.master_key.get_secret_value() == MASTER
    assert rebuilt.server_secret is None
    assert rebuilt.max_epochs == 7 and rebuilt.home == tmp_path


def test_actor_names_round_trip_and_foreign_names_are_ignored():
    assert _parse_actor_name(actor_name("0123abcd", 12)) == ("0123abcd", 12)
    assert _parse_actor_name("aimass-job-x") is None
    assert _parse_actor_name("SERVE_CONTROLLER_ACTOR") is None


def test_the_artifact_opener_must_be_importable_by_name():
    assert opener_name(open_artifact_store) == "aimass.workspace.secrets:open_artifact_store"
    with pytest.raises(InvalidArgument, match="not a module-level function"):
        opener_name(lambda settings: open_artifact_store(settings))


def test_a_ray_pool_needs_an_artifact_opener(workspace):
    pool = WorkerPool(
        store=workspace.store,
        artifacts=workspace.artifacts,
        settings=workspace.settings.model_copy(update={"executor": "ray"}),
        workers=1,
    )
    with pytest.raises(InvalidArgument, match="needs the pool's open_artifacts"):
        pool.start()


@pytest.mark.subprocess
def test_an_unreachable_ray_cluster_fails_the_start_at_once_saying_where(tmp_path: Path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # free, and nothing will listen on it
    # A fresh process: connect() reuses a connection this one may hold already.
    code = textwrap.dedent(
        f"""
        from aimass.errors import Unavailable
        from aimass.settings import Settings
        from aimass.workspace import Workspace

        ws = Workspace(Settings(home={str(tmp_path / "home")!r}, executor="ray",
                                ray_address="127.0.0.1:{port}"))
        try:
            ws.jobs.start_workers(1)
        except Unavailable as exc:
            print("UNAVAILABLE", exc.message)
        print("RUNNING", ws.jobs.workers_running)
        """
    )
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert time.monotonic() - started < 60  # not Ray's minutes of retries
    assert (
        f"UNAVAILABLE no Ray cluster answers at AIMASS_RAY_ADDRESS=127.0.0.1:{port}" in done.stdout
    )
    assert "RUNNING False" in done.stdout
