"""TLS for ``aimass serve`` (issue 13): plain HTTP beyond loopback is refused unless
``--insecure``, the TLS files are checked before anything starts, and the SDK and
CLI speak HTTPS to a self-signed server when given its certificate to trust."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from typer.testing import CliRunner

from aimass.cli import app as cli
from aimass.cli._common import reset
from aimass.client import AsyncClient, Client
from aimass.errors import ErrorCode, FailedPrecondition, InvalidArgument, Unavailable
from aimass.server import create_app
from aimass.server.listen import check_listen, check_tls_files, uvicorn_options
from aimass.settings import Settings

runner = CliRunner()


def self_signed(directory: Path, *, name: str = "aimass-test") -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost, and its key (mode 0600)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return cert_path, key_path


@pytest.fixture
def tls_files(tmp_path) -> tuple[Path, Path]:
    return self_signed(tmp_path / "tls")


@pytest.fixture
def no_uvicorn(monkeypatch) -> list[tuple[Any, dict[str, Any]]]:
    """``uvicorn.run`` recorded instead of run: ``[(app, options)]`` once serve gets there."""
    calls: list[tuple[Any, dict[str, Any]]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: calls.append((app, options)))
    return calls


def serve(*args: object):
    return runner.invoke(cli, ["serve", *[str(a) for a in args]])


# -- the refusal to serve plain HTTP beyond loopback -----------------------------------------


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "example.internal"])
def test_serve_refuses_plain_http_beyond_loopback(host, no_uvicorn, tmp_path, monkeypatch):
    monkeypatch.setenv("AIMASS_HOME", str(tmp_path / "home"))
    result = serve("--host", host)
    assert result.exit_code == 1
    out = " ".join(result.output.split())
    assert "INVALID_ARGUMENT" in out and f"plain HTTP on {host}" in out
    assert "--tls-cert" in out and "--tls-key" in out and "--insecure" in out
    assert no_uvicorn == [], "nothing may listen"
    assert not (tmp_path / "home" / "admin.key").exists(), "refused before anything started"


def test_check_listen_allows_loopback_tls_or_insecure():
    check_listen("127.0.0.1", tls=False, insecure=False)
    check_listen("localhost", tls=False, insecure=False)
    check_listen("0.0.0.0", tls=True, insecure=False)
    check_listen("0.0.0.0", tls=False, insecure=True)
    with pytest.raises(InvalidArgument) as caught:
        check_listen("0.0.0.0", tls=False, insecure=False)
    assert caught.value.code == ErrorCode.INVALID_ARGUMENT
    assert caught.value.details == {"host": "0.0.0.0"}


def test_insecure_serves_plain_http_beyond_loopback_with_a_warning(
    no_uvicorn, tmp_path, monkeypatch
):
    monkeypatch.setenv("AIMASS_HOME", str(tmp_path / "home"))
    result = serve("--host", "0.0.0.0", "--port", "8611", "--insecure")
    assert result.exit_code == 0, result.output
    assert "warning" in result.output and "plain HTTP on 0.0.0.0 (--insecure)" in result.output
    assert "http://0.0.0.0:8611" in result.output
    [(app, options)] = no_uvicorn
    assert options["host"] == "0.0.0.0" and options["port"] == 8611
    assert "ssl_certfile" not in options
    assert options["proxy_headers"] is False, "proxy headers are trusted from no one by default"
    # The app knows it listens beyond loopback (so /metrics needs credentials).
    assert app.state.aimass.settings.bind_host == "0.0.0.0"


def test_serve_passes_tls_and_trusted_proxies_to_uvicorn(
    no_uvicorn, tls_files, tmp_path, monkeypatch
):
    cert, key = tls_files
    monkeypatch.setenv("AIMASS_HOME", str(tmp_path / "home"))
    result = serve(
        "--host", "0.0.0.0", "--tls-cert", cert, "--tls-key", key,
        "--forwarded-allow-ips", "10.0.0.5",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "https://0.0.0.0:8600" in result.output and "--insecure" not in result.output
    [(_, options)] = no_uvicorn
    assert options["ssl_certfile"] == str(cert) and options["ssl_keyfile"] == str(key)
    assert options["proxy_headers"] is True and options["forwarded_allow_ips"] == "10.0.0.5"


def test_tls_files_come_from_the_settings_too(no_uvicorn, tls_files, tmp_path, monkeypatch):
    cert, key = tls_files
    monkeypatch.setenv("AIMASS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("AIMASS_TLS_CERT", str(cert))
    monkeypatch.setenv("AIMASS_TLS_KEY", str(key))
    result = serve("--host", "0.0.0.0")
    assert result.exit_code == 0, result.output
    [(_, options)] = no_uvicorn
    assert options["ssl_certfile"] == str(cert)


# -- the TLS files, checked before anything starts -------------------------------------------


@pytest.mark.parametrize("mode", [0o640, 0o644, 0o604, 0o660])
def test_a_key_file_open_to_others_is_refused(mode, tls_files, no_uvicorn, tmp_path, monkeypatch):
    cert, key = tls_files
    key.chmod(mode)
    with pytest.raises(FailedPrecondition) as caught:
        check_tls_files(cert, key)
    assert f"mode {mode:o}" in caught.value.message and f"chmod 600 {key}" in caught.value.message
    monkeypatch.setenv("AIMASS_HOME", str(tmp_path / "home"))
    result = serve("--tls-cert", cert, "--tls-key", key)
    out = "".join(result.output.split())
    assert result.exit_code == 1 and "FAILED_PRECONDITION" in out
    assert str(key).replace(" ", "") in out and f"chmod600{key}" in out
    assert no_uvicorn == []


def test_tls_files_missing_alone_or_mismatched_are_refused(tmp_path, tls_files):
    cert, key = tls_files
    with pytest.raises(InvalidArgument, match="go together"):
        check_tls_files(cert, None)
    with pytest.raises(InvalidArgument, match="go together"):
        check_tls_files(None, key)
    with pytest.raises(InvalidArgument, match=r"--tls-cert .*nowhere\.crt"):
        check_tls_files(tmp_path / "nowhere.crt", key)
    with pytest.raises(InvalidArgument, match=r"--tls-key .*nowhere\.key"):
        check_tls_files(cert, tmp_path / "nowhere.key")
    _, other_key = self_signed(tmp_path / "other", name="other")
    with pytest.raises(InvalidArgument, match="matching the certificate"):
        check_tls_files(cert, other_key)
    check_tls_files(cert, key)
    check_tls_files(None, None)


def test_uvicorn_options_without_tls_or_proxies():
    options = uvicorn_options("127.0.0.1", 8600)
    assert options["proxy_headers"] is False
    assert "ssl_certfile" not in options and "forwarded_allow_ips" not in options


async def _noop_app(scope: Any, receive: Any, send: Any) -> None:
    return None


def test_serve_runs_on_the_c_http_stack_unless_told_otherwise():
    """httptools + uvloop (the server extra) keep /healthz answering under a flood of
    refused requests (bench/flood.py); h11 + asyncio remain selectable."""
    config = uvicorn.Config(_noop_app, **uvicorn_options("127.0.0.1", 8600))
    config.load()
    assert config.http_protocol_class.__name__ == "HttpToolsProtocol"
    assert config.get_loop_factory().__module__.startswith("uvloop")
    plain = uvicorn.Config(
        _noop_app, **uvicorn_options("127.0.0.1", 8600, http="h11", loop="asyncio")
    )
    plain.load()
    assert plain.http_protocol_class.__name__ == "H11Protocol"


# -- a real HTTPS round trip -----------------------------------------------------------------


@pytest.fixture
def https_server(tmp_path, tls_files) -> Iterator[tuple[str, str, Path]]:
    """``(url, admin key, certificate)`` of a real uvicorn HTTPS server on 127.0.0.1,
    started with the options ``aimass serve --tls-cert/--tls-key`` passes (in a thread)."""
    cert, key = tls_files
    home = tmp_path / "home"
    app = create_app(Settings(home=home, device="cpu", serve_runners=0), job_workers=0)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    options = uvicorn_options("127.0.0.1", port, tls_cert=cert, tls_key=key)
    server = uvicorn.Server(uvicorn.Config(app, lifespan="on", **options))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"https://127.0.0.1:{port}", (home / "admin.key").read_text().strip(), cert
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def test_https_round_trip_through_the_sdk_with_the_ca_bundle(https_server, monkeypatch):
    url, key, cert = https_server
    with Client(url, key, verify=cert) as client:
        assert client.whoami().actor.startswith("key:")
        assert [p.name for p in client.projects.list()] == ["default"]
    monkeypatch.setenv("AIMASS_CA_BUNDLE", str(cert))
    with Client(url, key) as client:
        assert client.whoami().project is None

    async def whoami() -> str:
        async with AsyncClient(url, key) as client:
            return (await client.whoami()).actor

    import asyncio

    assert asyncio.run(whoami()).startswith("key:")


def test_https_is_refused_without_the_ca_bundle(https_server):
    url, key, _ = https_server
    with Client(url, key) as client, pytest.raises(Unavailable) as caught:
        client.whoami()
    assert "not trusted" in caught.value.message and "AIMASS_CA_BUNDLE" in caught.value.message
    with pytest.raises(InvalidArgument, match="cannot read the CA bundle"):
        Client(url, key, verify="/nonexistent/ca.pem")


def test_the_cli_speaks_https_with_aimass_ca_bundle(https_server, monkeypatch):
    url, key, cert = https_server
    monkeypatch.setenv("AIMASS_API_KEY", key)
    refused = runner.invoke(cli, ["--url", url, "projects", "list", "--json"])
    assert refused.exit_code == 1 and "AIMASS_CA_BUNDLE" in refused.output
    monkeypatch.setenv("AIMASS_CA_BUNDLE", str(cert))
    result = runner.invoke(cli, ["--url", url, "projects", "list", "--json"])
    reset()  # close the CLI's client: its keep-alive connection would hold the server open
    assert result.exit_code == 0, result.output
    assert [p["name"] for p in json.loads(result.stdout)] == ["default"]


@pytest.mark.subprocess
def test_aimass_serve_with_tls_as_a_real_process(tmp_path, tls_files):
    import os
    import subprocess
    import sys

    import httpx

    cert, key = tls_files
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    home = tmp_path / "home"
    env = {**os.environ, "AIMASS_HOME": str(home), "AIMASS_DEVICE": "cpu"}
    command = [
        sys.executable,
        "-m",
        "aimass.cli",
        "serve",
        "--port",
        str(port),
        "--job-threads",
        "0",
    ]
    log = tmp_path / "serve.log"
    with open(log, "w") as handle:
        proc = subprocess.Popen(
            [*command, "--tls-cert", str(cert), "--tls-key", str(key)],
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
        try:
            url = f"https://127.0.0.1:{port}"
            deadline = time.monotonic() + 60
            while True:
                assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
                try:
                    if httpx.get(f"{url}/readyz", verify=False, timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.2)
            admin = (home / "admin.key").read_text().strip()
            with Client(url, admin, verify=cert) as client:
                assert client.whoami().project is None
            with pytest.raises(httpx.TransportError):
                httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5)  # HTTPS only
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    assert f"https://127.0.0.1:{port}" in log.read_text()
