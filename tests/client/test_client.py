"""The SDK against the real app: in process (ASGITransport) and against 'aimass serve'."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

import aimass
from aimass.client import AsyncClient, Client
from aimass.errors import InvalidName, NotFound, PermissionDenied, Unauthenticated, Unavailable
from aimass.server import create_app
from tests.server.conftest import make_key, serve_settings, trained_home  # noqa: F401


def test_public_surface():
    import aimass.client as sdk

    assert sdk.__all__ == ["AsyncClient", "Client"]
    assert aimass.Client is Client and aimass.AsyncClient is AsyncClient


def test_async_client_in_process_predicts_and_raises_the_servers_error_classes(trained_home):  # noqa: F811
    app = create_app(serve_settings(trained_home), job_workers=0)
    app.state.aimass.start(workers=0)
    key = (trained_home / "admin.key").read_text().strip()

    async def main():
        transport = httpx.ASGITransport(app=app)
        async with AsyncClient("http://localhost", key, transport=transport) as client:
            preds = await asyncio.gather(
                *(client.predict("sentiment@production", ["good great film"]) for _ in range(20))
            )
            assert all(p[0]["label"] == "pos" for p in preds)
            assert (await client.whoami()).project is None
            with pytest.raises(NotFound) as info:
                await client.predict("ghost", ["x"])
            assert "ghost" in info.value.message
            with pytest.raises(InvalidName):
                await client.predict("Bad..Name", ["x"])
        async with AsyncClient("http://localhost", "aimass_nope", transport=transport) as anon:
            with pytest.raises(Unauthenticated):
                await anon.whoami()
        await app.state.aimass.stop()

    asyncio.run(main())


def test_the_async_client_has_the_namespaces_of_the_sync_one(trained_home, tmp_path):  # noqa: F811
    app = create_app(serve_settings(trained_home), job_workers=0)
    app.state.aimass.start(workers=0)
    key = (trained_home / "admin.key").read_text().strip()

    async def main():
        transport = httpx.ASGITransport(app=app)
        async with AsyncClient("http://localhost", key, transport=transport) as c:
            assert [m.name for m in await c.models.list()] == ["sentiment"]
            version = await c.models.get("sentiment@production")
            assert [v.version for v in await c.models.versions("sentiment")] == [version.version]
            assert [d.name for d in await c.datasets.list()] == ["reviews"]
            assert (await c.datasets.get("reviews@1")).num_rows == 200
            assert (await c.bases.get("tiny")).name == "tiny"
            assert "sentiment" in await c.models.card("sentiment@production")
            assert (await c.models.verify("sentiment@production")).trusted
            written = await c.models.export("sentiment@production", tmp_path / "export")
            assert "config.json" in written and (tmp_path / "export" / "config.json").is_file()
            made = await c.keys.create("async", scopes=["predict"], predict_budget=3)
            assert (await c.keys.get(made.record.id)).predict_budget == 3
            changed = await c.keys.update(made.record.id, predict_budget="unlimited")
            assert changed.predict_budget is None
            assert (await c.keys.revoke(made.record.id)).revoked
            assert "default" in [p.name for p in await c.projects.list()]
            assert (await c.audit.verify()).ok
            assert (await c.audit.list(action="keys.create", limit=1))[0].action == "keys.create"
            full = await c.predict_full("sentiment@production", ["good great film"])
            assert full.version == version.version and full.predictions[0]["label"] == "pos"
            assert [j.kind for j in await c.jobs.list()] == ["train"]
            with pytest.warns(DeprecationWarning, match="jobs.get"), pytest.raises(NotFound):
                await c.job("0" * 32)
        await app.state.aimass.stop()

    asyncio.run(main())


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def runner_children(parent: int) -> list[int]:
    """Process ids of the model runners that ``parent`` started (read from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            command = (entry / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue
        if ppid == parent and b"aimass.serving.runner" in command:
            found.append(int(entry.name))
    return found


@pytest.mark.subprocess
def test_aimass_serve_as_a_real_process_with_the_sync_client(trained_home, tmp_path):  # noqa: F811
    port = free_port()
    env = {**os.environ, "AIMASS_HOME": str(trained_home), "AIMASS_DEVICE": "cpu"}
    log = tmp_path / "serve.log"
    handle = open(log, "w")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "aimass.cli", "serve", "--port", str(port), "--job-threads", "1"],
        env=env,
        stdout=handle,
        stderr=subprocess.STDOUT,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        else:
            raise AssertionError(log.read_text())
        listening = subprocess.run(["ss", "-ltn"], capture_output=True, text=True).stdout
        if listening:
            assert f"127.0.0.1:{port}" in listening and f"0.0.0.0:{port}" not in listening
        key = (trained_home / "admin.key").read_text().strip()
        with Client(url, key) as client:
            assert client.predict("sentiment@production", ["bad awful movie"])[0]["label"] == "neg"
            assert [m.name for m in client.models.list()] == ["sentiment"]
            created = client.keys.create("reader", scopes=["read"])
            with Client(url, created.key) as reader:
                assert reader.models.get("sentiment@production").version == 1
                with pytest.raises(PermissionDenied):
                    reader.predict("sentiment", ["x"])
            job = client.jobs.submit_batch_predict(
                model="sentiment@production",
                dataset="reviews",
                output="served-scores",
                split="test",
            )
            done = client.jobs.wait(job.id, poll=0.2, timeout=120)
            assert done.result["rows"] == 20
            assert client.audit.verify().ok
        cli_against_the_server(url, key, tmp_path)
        # The default serving path: predict ran in runner processes, children of the server.
        runners = runner_children(proc.pid)
        assert len(runners) == 2, log.read_text()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        handle.close()
    for pid in runners:
        deadline = time.monotonic() + 20
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not Path(f"/proc/{pid}").exists(), "a runner outlived the server"
    assert f"http://127.0.0.1:{port}" in log.read_text()
    with pytest.raises(Unavailable):
        Client(f"http://127.0.0.1:{port}", "k").whoami()


def cli_against_the_server(url, key, tmp_path):
    """The existing CLI commands, remote: the same commands with --url and AIMASS_API_KEY."""
    import json

    from typer.testing import CliRunner

    from aimass.cli import app

    runner = CliRunner(env={"AIMASS_API_KEY": key})

    def run(*args):
        result = runner.invoke(app, ["--url", url, *args])
        assert result.exit_code == 0, result.output
        return result.stdout

    assert json.loads(run("models", "list", "--json"))[0]["name"] == "sentiment"
    assert json.loads(run("datasets", "show", "served-scores", "--json"))["num_rows"] == 20
    preds = json.loads(run("predict", "sentiment@production", "good great film", "--json"))
    assert preds[0]["label"] == "pos"
    assert "audit log intact" in run("audit", "verify")
    assert "served-scores" in run("datasets", "list")
    run("models", "export", "sentiment", str(tmp_path / "exported"))
    assert {"aimass.json", "aimass.sig", "model.safetensors"} <= {
        p.name for p in (tmp_path / "exported").iterdir()
    }
