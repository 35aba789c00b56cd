"""``scripts/dev-cluster``: every engine on one machine, two servers sharing them.

Starts the script as a reader of docs/scale-out.md would, checks that the two
servers (each with its own home and artifact cache) serve the same projects from
one PostgreSQL and one bucket, then stops it and checks nothing of it is left.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

from aimass import Client

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "dev-cluster"

pytestmark = [pytest.mark.subprocess, pytest.mark.services]


def _free_base() -> int:
    """A port base below 10000 (Ray's workers take 10002 and up) with 16 free ports."""
    for base in range(7100, 9900, 37):
        free = True
        for port in range(base, base + 16):
            with socket.socket() as probe:
                try:
                    probe.bind(("127.0.0.1", port))
                except OSError:
                    free = False
                    break
        if free:
            return base
    raise RuntimeError("no 16 free ports below 10000")


def _marked(state: Path) -> list[int]:
    """Processes that inherited this cluster's marker (what `stop` must end)."""
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            text = environ.read_bytes()
        except OSError:
            continue
        if f"AIMASS_DEV_CLUSTER_MARK={state}".encode() in text.split(b"\0"):
            found.append(int(environ.parent.name))
    return found


def test_dev_cluster_runs_two_servers_on_one_database_and_bucket(tmp_path: Path) -> None:
    if not list(Path("/usr/lib/postgresql").glob("*/bin/initdb")):
        pytest.skip("PostgreSQL server binaries not found; run scripts/install-postgres")
    pytest.importorskip("ray")
    pytest.importorskip("moto")
    # A short path: Ray's unix sockets live under it (107 characters at most).
    state = Path(tempfile.mkdtemp(prefix="aimass-dc-", dir="/tmp"))
    shutil.rmtree(state)
    base = _free_base()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AIMASS_", "RAY_", "AWS_"))
    }
    env.update(AIMASS_DEV_CLUSTER=str(state), AIMASS_DEV_PORT=str(base))
    try:
        started = subprocess.run(
            [str(SCRIPT), "start"], env=env, capture_output=True, text=True, timeout=300
        )
        assert started.returncode == 0, started.stdout + started.stderr
        assert f"http://127.0.0.1:{base + 1} (up)" in started.stdout
        exported = (state / "env").read_text()
        assert "AIMASS_DATABASE_URL='postgresql+psycopg://" in exported
        assert (state / "env").stat().st_mode & 0o777 == 0o600
        key = (state / "home-0" / "admin.key").read_text().strip()
        first = Client(f"http://127.0.0.1:{base}", key)
        second = Client(f"http://127.0.0.1:{base + 1}", key)
        data = tmp_path / "reviews.jsonl"
        data.write_text(
            "\n".join(
                json.dumps({"text": f"review {i} {'good' if i % 2 else 'bad'}", "label": i % 2})
                for i in range(20)
            )
        )
        made = first.datasets.upload(data, name="reviews")
        # The other server, with another home and an empty cache, serves it.
        seen = second.datasets.get("reviews")
        assert (seen.name, seen.version, seen.digest) == (made.name, made.version, made.digest)
        # The artifact went to the bucket (its index is written last), not only to the
        # first server's cache.
        import boto3

        values = dict(
            item.split("=", 1)
            for line in exported.splitlines()
            for item in line.removeprefix("export ").split(" ")
            if "=" in item
        )
        bucket = boto3.client(
            "s3",
            endpoint_url=values["AIMASS_S3_ENDPOINT_URL"],
            region_name="us-east-1",
            aws_access_key_id=values["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=values["AWS_SECRET_ACCESS_KEY"],
        )
        listed = bucket.list_objects_v2(Bucket="aimass", Prefix="dev/_index/")
        indexes = [entry["Key"] for entry in listed.get("Contents", [])]
        assert any(made.digest in index for index in indexes), indexes
        first.close()
        second.close()
    finally:
        subprocess.run([str(SCRIPT), "stop"], env=env, capture_output=True, timeout=120)
    assert _marked(state) == []
    assert not state.exists()
