"""A private PostgreSQL server on loopback for the tests that need a real one.

``postgres_server`` (session) runs ``initdb`` into a fresh directory under /tmp and
starts ``postgres`` on 127.0.0.1 on a free port, with password (SCRAM) authentication
and a generated password; ``postgres_url`` (function) gives each test its own empty
database and drops it afterwards. Tests using them skip, saying why, when the server
binaries are missing (``scripts/install-postgres`` installs them; ``make test`` runs it).

As root, ``initdb`` and ``postgres`` refuse to run, so they run as the ``postgres``
OS user (``runuser``), which then owns the directory. ``AIMASS_TEST_STORE=postgresql``
runs whole test directories on PostgreSQL (see ``_test_store``). A developer can start one by
hand: ``python -m tests.plugins.postgres DIR`` prints the URL and leaves it running
(stop it with ``pg_ctl stop -D DIR/data``).
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

__all__ = ["PostgresServer", "find_binaries", "postgres_server", "postgres_url", "start", "stop"]

USER = "aimass_test"
# A zone far from UTC with an odd offset: a timestamp read back in the server's zone
# instead of UTC changes the audit chain's hashes, so such a bug cannot hide.
TIMEZONE = "Pacific/Chatham"


@dataclass(frozen=True)
class PostgresServer:
    """A running private server: where it lives and how to reach it."""

    directory: Path
    bindir: Path
    port: int
    password: str

    def url(self, database: str = "postgres") -> str:
        """The SQLAlchemy URL of ``database`` on this server."""
        return f"postgresql+psycopg://{USER}:{self.password}@127.0.0.1:{self.port}/{database}"

    def connect(self, database: str = "postgres") -> Any:
        """An autocommit psycopg connection to ``database`` (for CREATE/DROP DATABASE)."""
        import psycopg

        return psycopg.connect(
            host="127.0.0.1",
            port=self.port,
            user=USER,
            password=self.password,
            dbname=database,
            autocommit=True,
        )


def find_binaries() -> Path | None:
    """The newest ``/usr/lib/postgresql/*/bin`` (or the PATH's) holding initdb and pg_ctl."""
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(Path(on_path).parent)
    for bindir in candidates:
        if (bindir / "initdb").is_file() and (bindir / "pg_ctl").is_file():
            return bindir
    return None


def _as_owner(args: list[str]) -> list[str]:
    # initdb and postgres refuse to run as root: run them as the postgres OS user.
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *args]
    return args


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run(args: list[str]) -> None:
    done = subprocess.run(_as_owner(args), capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:1])} failed ({done.returncode}): {done.stderr}")


def start(directory: Path, bindir: Path) -> PostgresServer:
    """Initialise a cluster in ``directory`` and start it on a free loopback port."""
    password = secrets.token_hex(16)
    if os.geteuid() == 0:
        owner = pwd.getpwnam("postgres")
        os.chown(directory, owner.pw_uid, owner.pw_gid)
    pwfile = directory / "pwfile"
    pwfile.write_text(password + "\n")
    if os.geteuid() == 0:
        os.chown(pwfile, owner.pw_uid, owner.pw_gid)
    pwfile.chmod(0o600)
    data = directory / "data"
    _run(
        [
            str(bindir / "initdb"),
            f"--pgdata={data}",
            f"--username={USER}",
            f"--pwfile={pwfile}",
            "--auth=scram-sha-256",
            "--encoding=UTF8",
            "--no-locale",
            "--no-sync",
        ]
    )
    pwfile.unlink()
    last = ""
    for _ in range(3):  # the free port may be taken between choosing and binding it
        port = _free_port()
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={directory} "
            f"-c timezone={TIMEZONE} -c max_connections=200 "
            # A throwaway server: durability buys nothing and costs the tests time.
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        done = subprocess.run(
            _as_owner(
                [
                    str(bindir / "pg_ctl"),
                    "start",
                    "--wait",
                    "--timeout=60",
                    f"--pgdata={data}",
                    f"--log={directory / 'server.log'}",
                    f"--options={options}",
                ]
            ),
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode == 0:
            return PostgresServer(directory=directory, bindir=bindir, port=port, password=password)
        log = directory / "server.log"
        last = log.read_text() if log.exists() else done.stderr
    raise RuntimeError(f"PostgreSQL in {directory} did not start: {last[-2000:]}")


def stop(server: PostgresServer) -> None:
    """Stop the server (fast shutdown: open connections are cut)."""
    subprocess.run(
        _as_owner(
            [
                str(server.bindir / "pg_ctl"),
                "stop",
                "--mode=fast",
                "--wait",
                f"--pgdata={server.directory / 'data'}",
            ]
        ),
        capture_output=True,
        check=False,
    )


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A private PostgreSQL server for this test session (or xdist worker)."""
    bindir = find_binaries()
    if bindir is None:
        pytest.skip(
            "PostgreSQL server binaries (initdb, pg_ctl) not found in /usr/lib/postgresql/*/bin "
            "or on PATH; run scripts/install-postgres (make services)"
        )
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.skip("psycopg is not installed; pip install 'aimass[postgres]'")
    directory = Path(tempfile.mkdtemp(prefix="aimass-pg-"))
    try:
        server = start(directory, bindir)
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise
    try:
        yield server
    finally:
        stop(server)
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """The ``postgresql+psycopg://`` URL of a fresh, empty database, dropped after the test."""
    name = f"test_{secrets.token_hex(6)}"
    with postgres_server.connect() as connection:
        connection.execute(f"CREATE DATABASE {name}")
    yield postgres_server.url(name)
    with postgres_server.connect() as connection:
        # FORCE: a test that failed may leave connections (or a killed server's) open.
        connection.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


# ``AIMASS_TEST_STORE=postgresql pytest tests/jobs tests/server ...`` runs those tests with
# every Settings built in a test (not in module- or session-scoped fixtures) on a fresh
# PostgreSQL database. Read at import: the autouse ``clean_environ`` removes AIMASS_*.
TEST_STORE = os.environ.get("AIMASS_TEST_STORE", "sqlite")


@pytest.fixture(autouse=True)
def _test_store(request: pytest.FixtureRequest) -> None:
    if TEST_STORE == "sqlite":
        return
    if TEST_STORE != "postgresql":
        raise pytest.UsageError(f"AIMASS_TEST_STORE={TEST_STORE!r}: use sqlite or postgresql")
    request.getfixturevalue("clean_environ")  # runs first: it clears AIMASS_* variables
    url = request.getfixturevalue("postgres_url")
    request.getfixturevalue("monkeypatch").setenv("AIMASS_DATABASE_URL", url)


def main(argv: list[str]) -> int:
    """``python -m tests.plugins.postgres DIR``: start a server in DIR and print its URL."""
    if len(argv) != 1:
        print("usage: python -m tests.plugins.postgres DIR", file=sys.stderr)
        return 2
    bindir = find_binaries()
    if bindir is None:
        print("no PostgreSQL server binaries: run scripts/install-postgres", file=sys.stderr)
        return 1
    directory = Path(argv[0]).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    server = start(directory, bindir)
    print(server.url())
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
