"""The ``ray_cluster`` fixture: a real local Ray cluster (a head and one worker node).

Both nodes are started with ``ray start`` from this virtualenv, with Ray's token
authentication on (a fresh ``secrets.token_hex(32)`` token per session), no dashboard,
no usage stats, one CPU each, free ports and their own short temporary directories.
The test process gets ``RAY_AUTH_MODE=token`` and ``RAY_AUTH_TOKEN`` in ``os.environ``
for the session so ``aimass.cluster.connect(Settings(ray_address=cluster.address))``
authenticates.

What binds where: ``ray start`` turns ``--node-ip-address 127.0.0.1`` into the machine's
own IP (``ray._private.services.resolve_ip_for_localhost``), so the nodes register under
that IP; the GCS, raylets and object managers listen on all interfaces (Ray's choice,
there is no flag), the Ray client server on the node IP and loopback. Every one of them
needs the token; the dashboard's HTTP server is not started at all.

Teardown stops only this cluster: never ``ray stop``, which stops every Ray on the
machine (other xdist workers' clusters, other sessions'). Both ``ray start`` commands
run in their own session, so every daemon they start shares its process group; the
teardown signals those groups, anything whose command line names one of the temporary
directories, and the children of all of these (``ray::DashboardAgent``, task workers),
then checks that nothing is left.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

__all__ = ["RayCluster", "ray_cluster"]

START_TIMEOUT_S = 180
STOP_GRACE_S = 3


@dataclass(frozen=True)
class RayCluster:
    """A running local Ray cluster: where it is and what a client needs to reach it."""

    address: str
    """``127.0.0.1:PORT``, the GCS address for ``ray.init(address=...)``."""
    env: dict[str, str]
    """``RAY_AUTH_MODE`` and ``RAY_AUTH_TOKEN``: add to a subprocess's environment."""
    temp_dirs: tuple[Path, ...]
    """The head's and the worker's ``--temp-dir`` (their logs are under ``session_*/logs``)."""
    process_groups: tuple[int, ...] = field(default=())
    """The process groups of the two ``ray start`` commands (all their daemons)."""


def _free_port() -> int:
    # Racy by nature (another process may take it before Ray binds it), but the window is
    # short and a collision fails the start loudly rather than joining a wrong cluster.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ray_executable() -> Path:
    """``ray`` next to this interpreter (the virtualenv's), not whatever is on PATH."""
    return Path(sys.executable).parent / "ray"


def _proc_table() -> dict[int, tuple[int, int, str]]:
    """pid → (parent pid, process group, command line) for every live, non-zombie process."""
    table: dict[int, tuple[int, int, str]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue  # it exited while we looked
        # The command name (field 2) may hold spaces and parentheses: split after it.
        fields = stat[stat.rfind(")") + 2 :].split()
        state, ppid, pgid = fields[0], int(fields[1]), int(fields[2])
        if state in ("Z", "X"):
            continue
        table[int(entry)] = (ppid, pgid, cmdline.replace(b"\0", b" ").decode(errors="replace"))
    return table


def cluster_processes(cluster: RayCluster, known: set[int] | None = None) -> dict[int, str]:
    """pid → command line of every live process that belongs to ``cluster``.

    ``known`` (updated in place) carries pids found by earlier calls: a task worker
    renames itself (``ray::IDLE``) and starts its own process group, so once its raylet
    has gone, only an earlier look ties it to this cluster.
    """
    table = _proc_table()
    marks = [str(d) for d in cluster.temp_dirs]
    found = {
        pid
        for pid, (_, pgid, cmd) in table.items()
        if pgid in cluster.process_groups or any(m in cmd for m in marks)
    }
    if known is not None:
        found |= known & table.keys()
    # Children of found processes (raylet's agents and task workers), to a fixed point.
    grew = True
    while grew:
        children = {pid for pid, (ppid, _, _) in table.items() if ppid in found} - found
        found |= children
        grew = bool(children)
    found.discard(os.getpid())  # the test process itself is never Ray's to stop
    if known is not None:
        known |= found
    return {pid: table[pid][2] for pid in found}


def _signal_all(pids: dict[int, str], sig: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def stop_cluster(cluster: RayCluster) -> None:
    """Stop every process of ``cluster`` (TERM, then KILL after a grace period)."""
    # The test process's own connection first, so its core worker does not spin on a
    # vanished GCS for the rest of the session.
    if "ray" in sys.modules:
        import ray

        if ray.is_initialized():
            ray.shutdown()
    known: set[int] = set()
    deadline = time.monotonic() + STOP_GRACE_S
    _signal_all(cluster_processes(cluster, known), signal.SIGTERM)
    while time.monotonic() < deadline and cluster_processes(cluster, known):
        time.sleep(0.2)
    # gcs_server and raylet often ignore TERM while their peers are going away.
    for _ in range(5):
        left = cluster_processes(cluster, known)
        if not left:
            break
        _signal_all(left, signal.SIGKILL)
        time.sleep(0.5)
    left = cluster_processes(cluster, known)
    for directory in cluster.temp_dirs:
        shutil.rmtree(directory, ignore_errors=True)
    if left:
        raise RuntimeError(
            f"the test Ray cluster at {cluster.address} left processes behind: {left}; "
            "kill them by pid (never `ray stop`, it stops every Ray on the machine)"
        )


def _ray_start(args: list[str], env: dict[str, str], temp_dir: Path) -> int:
    """Run ``ray start ARGS`` in a new session; its process group id (= its pid)."""
    proc = subprocess.Popen(
        [str(_ray_executable()), "start", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        output, _ = proc.communicate(timeout=START_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        output, _ = proc.communicate()
    if proc.returncode != 0:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)  # what this attempt started, nothing else
        tail = output.decode(errors="replace")[-3000:]
        raise RuntimeError(
            f"`ray start {' '.join(args)}` failed (exit {proc.returncode}); logs under "
            f"{temp_dir}:\n{tail}"
        )
    return proc.pid


def start_cluster() -> RayCluster:
    """Start a head and one worker node on this machine; the caller must stop it."""
    token = secrets.token_hex(32)
    env = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token}
    # No AIMASS_* setting of the test process leaks into the cluster's workers: a job's
    # settings reach them with the job, as in production.
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("AIMASS_")}
    full_env.update(env, RAY_USAGE_STATS_ENABLED="0")
    # Short paths: Ray puts unix sockets under the temp dir (108-byte limit).
    head_dir = Path(tempfile.mkdtemp(prefix="aimray-h-", dir="/tmp"))
    worker_dir = Path(tempfile.mkdtemp(prefix="aimray-w-", dir="/tmp"))
    port = _free_port()
    cluster = RayCluster(address=f"127.0.0.1:{port}", env=env, temp_dirs=(head_dir, worker_dir))
    common = ["--node-ip-address", "127.0.0.1", "--disable-usage-stats", "--num-cpus", "1"]
    groups: list[int] = []
    try:
        groups.append(
            _ray_start(
                [
                    "--head",
                    "--port",
                    str(port),
                    "--temp-dir",
                    str(head_dir),
                    "--include-dashboard",
                    "false",
                    # The default 10001 and 52365 collide between clusters on one machine.
                    "--ray-client-server-port",
                    str(_free_port()),
                    "--dashboard-agent-listen-port",
                    str(_free_port()),
                    *common,
                ],
                full_env,
                head_dir,
            )
        )
        # A worker node that does not register within Ray's own 30 s (loaded cores: a
        # clean-clone make test saw it) is started once more before the fixture fails.
        for attempt in (1, 2):
            try:
                groups.append(
                    _ray_start(
                        [
                            "--address",
                            cluster.address,
                            "--temp-dir",
                            str(worker_dir),
                            "--dashboard-agent-listen-port",
                            str(_free_port()),
                            *common,
                        ],
                        full_env,
                        worker_dir,
                    )
                )
                break
            except RuntimeError:
                if attempt == 2:
                    raise
    except BaseException:
        stop_cluster(RayCluster(cluster.address, env, cluster.temp_dirs, tuple(groups)))
        raise
    return RayCluster(cluster.address, env, cluster.temp_dirs, tuple(groups))


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[RayCluster]:
    """A real two-node Ray cluster on this machine, token-authenticated, for the session.

    Tests connect with ``aimass.cluster.connect(Settings(ray_address=ray_cluster.address))``;
    the token is in ``os.environ`` for as long as the cluster runs. Skipped, saying why,
    where Ray is not installed.
    """
    if importlib.util.find_spec("ray") is None:
        pytest.skip("ray_cluster: Ray is not installed (pip install 'aimass[ray]')")
    if not _ray_executable().exists():
        pytest.skip(f"ray_cluster: no `ray` command at {_ray_executable()}")
    cluster = start_cluster()
    saved = {k: os.environ.get(k) for k in cluster.env}
    # Before this process imports Ray (it reads RAY_AUTH_MODE then), or, where it already
    # has, with its cached token dropped.
    os.environ.update(cluster.env)
    _reset_ray_token_cache()
    try:
        yield cluster
    finally:
        try:
            stop_cluster(cluster)
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
            _reset_ray_token_cache()


def _reset_ray_token_cache() -> None:
    """Forget a token Ray cached earlier in this process (another test's local Ray)."""
    if "ray" not in sys.modules:
        return
    with contextlib.suppress(ImportError, AttributeError):
        from ray._raylet import AuthenticationTokenLoader  # type: ignore[attr-defined]

        AuthenticationTokenLoader.instance().reset_cache()
