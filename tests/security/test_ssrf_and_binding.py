"""ShellTorch (field notes row 4: TorchServe CVE-2023-43654 SSRF, SnakeYAML CVE-2022-1471,
a management API on 0.0.0.0; CVE-2024-35198).

(a) ``aimass serve`` binds loopback unless told otherwise (read from the listening
socket of a real server); (b) nothing is registered or imported from a URL: a
listener on loopback and the cloud metadata address are never contacted; (c) YAML is
only ever read with ``yaml.safe_load``; (d) no handler code from a user runs (see
``test_deserialization.py::test_remote_code_is_never_trusted`` and
``test_auth_surface.py::test_no_endpoint_takes_a_url_command_or_code``).
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import httpx
import pytest

import aimass

P = "/v1/projects/default"


# -- (a) loopback by default ------------------------------------------------------------------


def test_serve_binds_loopback_by_default(monkeypatch, tmp_path):
    import uvicorn
    from typer.testing import CliRunner

    from aimass.cli import app as cli

    calls = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: calls.append(options))
    monkeypatch.setenv("AIMASS_HOME", str(tmp_path / "home"))
    result = CliRunner().invoke(cli, ["serve", "--port", "8612"])
    assert result.exit_code == 0, result.output
    [options] = calls
    assert options["host"] == "127.0.0.1"


def _listening(port: int) -> list[str]:
    """Local addresses of the sockets listening on ``port`` (from /proc/net/tcp and tcp6)."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not Path(table).exists():
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            local, _remote, state = line.split()[1:4]
            address, hex_port = local.split(":")
            if int(hex_port, 16) == port and state == "0A":  # 0A: LISTEN
                raw = bytes.fromhex(address)
                if len(raw) == 4:
                    found.append(socket.inet_ntop(socket.AF_INET, raw[::-1]))
                else:  # four little-endian 32-bit words
                    words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
                    found.append(socket.inet_ntop(socket.AF_INET6, words))
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.subprocess
def test_a_real_server_listens_on_loopback_only(tmp_path):
    port = free_port()
    env = {**os.environ, "AIMASS_HOME": str(tmp_path / "home"), "AIMASS_DEVICE": "cpu"}
    log = tmp_path / "serve.log"
    with open(log, "w") as handle:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "aimass.cli",
                "serve",
                "--port",
                str(port),
                "--job-threads",
                "0",
            ],
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 90
            while not _listening(port):
                assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
            assert _listening(port) == ["127.0.0.1"], _listening(port)
            assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10).status_code == 200
        finally:
            proc.terminate()
            proc.wait(timeout=30)


# -- (b) never from a URL ---------------------------------------------------------------------


class _Recorder(BaseHTTPRequestHandler):
    """Records every request; ``/redirect`` sends the client on to the metadata address."""

    seen: ClassVar[list[str]] = []

    def do_GET(self):
        self.seen.append(self.path)
        if self.path.startswith("/redirect"):
            self.send_response(302)
            self.send_header("Location", "http://169.254.169.254/latest/meta-data/")
        else:
            self.send_response(200)
        self.end_headers()

    do_POST = do_HEAD = do_GET

    def log_message(self, *args):
        pass


@pytest.fixture
def listener():
    """``(base url, requests seen)`` of an HTTP server on loopback that records every hit."""
    _Recorder.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", _Recorder.seen
    server.shutdown()
    server.server_close()


def test_nothing_is_imported_or_registered_from_a_url(client_with, admin, listener, tmp_path):
    base, seen = listener
    (tmp_path / "in").mkdir()
    client = client_with(import_dirs=[tmp_path / "in"])
    urls = [
        f"{base}/model",
        f"{base}/redirect",
        f"{base}/data.jsonl",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/x",
        "https://huggingface.co/bert-base-uncased",
        "file:///etc/passwd",
        "hf://bert-base-uncased",
        f"{base.replace('http', 'ftp')}/x",
    ]
    for url in urls:
        for path, body in (
            (f"{P}/bases", {"source": url, "name": "ssrf"}),
            (f"{P}/bases", {"path": url, "name": "ssrf"}),
            (f"{P}/datasets:import", {"path": url, "name": "ssrf"}),
            (f"{P}/datasets:import-sample", {"sample": url, "name": "ssrf"}),
        ):
            r = client.post(path, headers=admin, json=body)
            assert 400 <= r.status_code < 500, (path, body, r.status_code, r.text)
        r = client.post(
            f"{P}/jobs",
            headers=admin,
            json={"kind": "train", "dataset": url, "base": url, "model": "ssrf"},
        )
        assert 400 <= r.status_code < 500, (url, r.text)
    assert seen == [], "the server contacted a URL it was given"
    assert client.get(f"{P}/bases/ssrf", headers=admin).status_code == 404
    assert client.get(f"{P}/datasets/ssrf", headers=admin).status_code == 404


def test_the_hub_is_off_for_every_process_aimass_starts(tmp_path):
    """Row 4 / DESIGN rule 5: aimass turns the hub off (HF_HUB_OFFLINE, TRANSFORMERS_OFFLINE)
    unless the operator has set them."""
    env = {k: v for k, v in os.environ.items() if "OFFLINE" not in k}
    code = (
        "import os, aimass.models.hf as hf\n"
        "hf.quiet_transformers()\n"
        "print(os.environ.get('HF_HUB_OFFLINE'), os.environ.get('TRANSFORMERS_OFFLINE'))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["1", "1"], out.stdout + out.stderr[-1000:]


# -- (c) YAML ---------------------------------------------------------------------------------


def test_yaml_is_only_read_with_safe_load(tmp_path):
    import yaml

    source = Path(aimass.__file__).parent
    unsafe = re.compile(
        r"yaml\.(load|unsafe_load|full_load|load_all|unsafe_load_all|full_load_all)\(|"
        r"yaml\.(Unsafe|Full)?Loader\b"
    )
    offenders = [
        f"{path.relative_to(source)}: {m.group(0)}"
        for path in source.rglob("*.py")
        for m in unsafe.finditer(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []
    marker = tmp_path / "PWNED"
    payload = f"!!python/object/apply:os.system ['touch {marker}']"
    with pytest.raises(yaml.YAMLError):
        yaml.safe_load(payload)
    assert not marker.exists()
