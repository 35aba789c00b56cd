"""The ``s3_server`` and ``s3_bucket`` fixtures: a real S3-compatible server on loopback.

``s3_server`` (one per session, per xdist worker) starts moto's server mode
(``moto_server`` from this virtualenv, not whatever is on PATH) on 127.0.0.1 and a
free port, waits until it answers, and stops it at the end; without moto the tests
that use it are skipped, saying why. ``s3_bucket`` gives each test a fresh bucket,
dummy credentials (moto accepts any) and nothing of the machine's own AWS
configuration, so no test can reach a real account.
"""

from __future__ import annotations

import importlib.util
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

__all__ = ["S3Bucket", "s3_bucket", "s3_server"]

START_TIMEOUT_S = 60
REGION = "us-east-1"


@dataclass(frozen=True)
class S3Bucket:
    """A fresh bucket on the session's S3 server."""

    endpoint: str
    """``http://127.0.0.1:PORT``."""
    bucket: str
    prefix: str
    client: Any
    """A boto3 S3 client on the server (to look at or tamper with objects)."""

    @property
    def url(self) -> str:
        """``s3://BUCKET/PREFIX``, the value of ``AIMASS_ARTIFACT_URL``."""
        return f"s3://{self.bucket}/{self.prefix}"

    @property
    def settings(self) -> dict[str, str]:
        """Keyword arguments for :class:`~aimass.settings.Settings` that point at it."""
        return {"artifact_url": self.url, "s3_endpoint_url": self.endpoint, "s3_region": REGION}

    def names(self) -> list[str]:
        """Every object name in the bucket, sorted."""
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket)
        return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


def _free_port() -> int:
    # Racy by nature, but a collision fails the start loudly (the wait below times out).
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _answers(endpoint: str) -> bool:
    try:
        with urllib.request.urlopen(f"{endpoint}/", timeout=2):
            return True
    except urllib.error.HTTPError:
        return True  # it answered, even if with an error status
    except OSError:
        return False


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A moto S3 server on loopback for the session; yields its endpoint URL."""
    executable = Path(sys.executable).parent / "moto_server"
    if importlib.util.find_spec("moto") is None or not executable.exists():
        pytest.skip(
            f"moto[server] is not installed ({executable} missing): pip install moto[server]"
        )
    port = _free_port()
    endpoint = f"http://127.0.0.1:{port}"
    log_path = tmp_path_factory.mktemp("moto") / "moto.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [str(executable), "-H", "127.0.0.1", "-p", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _answers(endpoint):
            if process.poll() is not None or time.monotonic() > deadline:
                tail = log_path.read_text(errors="replace")[-2000:]
                pytest.fail(f"moto_server did not start on {endpoint}:\n{tail}")
            time.sleep(0.2)
        yield endpoint
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def s3_bucket(s3_server: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> S3Bucket:
    """A fresh bucket (and dummy credentials in the environment) for one test."""
    import boto3

    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_CA_BUNDLE", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    # Never the machine's own AWS configuration or credentials.
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # never ask 169.254.169.254
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    client = boto3.session.Session().client("s3", endpoint_url=s3_server, region_name=REGION)
    bucket = f"aimass-test-{uuid.uuid4().hex[:16]}"
    client.create_bucket(Bucket=bucket)
    return S3Bucket(endpoint=s3_server, bucket=bucket, prefix="team/artifacts", client=client)
