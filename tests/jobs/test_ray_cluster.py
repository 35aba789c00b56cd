"""The ``ray_cluster`` fixture itself: two nodes, token authentication, its own processes."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from aimass.cluster import connect
from aimass.settings import Settings
from tests.plugins.ray_cluster import cluster_processes

pytestmark = [pytest.mark.services, pytest.mark.subprocess]


def test_the_cluster_has_a_head_and_a_worker_and_its_processes_are_tracked(ray_cluster):
    ray = connect(Settings(ray_address=ray_cluster.address))
    alive = [n for n in ray.nodes() if n["Alive"]]
    assert len(alive) == 2
    assert sum(n["Resources"].get("CPU", 0) for n in alive) == 2
    commands = list(cluster_processes(ray_cluster).values())
    # What teardown will stop: one GCS and a raylet per node, nothing of other clusters.
    assert sum("gcs_server" in c for c in commands) == 1
    assert sum("/raylet " in c for c in commands) == 2
    assert all(
        str(ray_cluster.temp_dirs[0]) in c or str(ray_cluster.temp_dirs[1]) in c
        for c in commands
        if "gcs_server" in c or "/raylet " in c
    )


def test_a_client_without_the_token_is_refused(ray_cluster):
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")}
    code = f"import ray; ray.init(address={ray_cluster.address!r}); print('connected')"
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=180
    )
    assert done.returncode != 0 and "connected" not in done.stdout
    assert "Authentication token is missing or incorrect" in done.stderr
