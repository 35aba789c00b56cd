"""Servers that share one database share the server secret: keys made on one work on all."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from aimass.errors import Unauthenticated
from aimass.settings import Settings
from aimass.workspace import Workspace


def _workspace(tmp_path: Path, name: str, **settings: object) -> Workspace:
    return Workspace(
        Settings(
            home=tmp_path / name,
            store_uri=f"sqlite:///{tmp_path / 'shared.db'}",
            artifact_root=tmp_path / "artifacts",
            # One database, one master key (its key is wrapped by it), as for artifacts.
            master_key_file=tmp_path / "master.json",
            **settings,
        )
    )


def test_a_shared_server_secret_lets_another_home_check_the_keys(tmp_path: Path) -> None:
    secret = secrets.token_hex(32)
    first = _workspace(tmp_path, "a", server_secret=secret)
    second = _workspace(tmp_path, "b", server_secret=secret)
    _, key = first.keys.create("ci", project="default", scopes=["predict"])
    assert second.keys.authenticate(key).key_id == first.keys.authenticate(key).key_id
    # Neither home wrote a secret file: the secret came from the setting.
    assert not (tmp_path / "a" / "server.secret").exists()
    assert not (tmp_path / "b" / "server.secret").exists()
    first.close()
    second.close()


def test_homes_with_their_own_secret_files_do_not_accept_each_others_keys(
    tmp_path: Path,
) -> None:
    first = _workspace(tmp_path, "a")
    second = _workspace(tmp_path, "b")
    _, key = first.keys.create("ci", project="default", scopes=["predict"])
    with pytest.raises(Unauthenticated):
        second.keys.authenticate(key)
    first.close()
    second.close()


def test_a_shared_secret_file_is_one_secret(tmp_path: Path) -> None:
    shared = tmp_path / "secrets" / "server.secret"
    first = _workspace(tmp_path, "a", server_secret_file=shared)
    second = _workspace(tmp_path, "b", server_secret_file=shared)
    _, key = first.keys.create("ci", project="default", scopes=["predict"])
    second.keys.authenticate(key)
    assert shared.stat().st_mode & 0o777 == 0o600
    first.close()
    second.close()


def test_a_malformed_server_secret_is_refused_with_the_fix() -> None:
    with pytest.raises(ValueError, match="openssl rand -hex 32"):
        Settings(server_secret="not-hex")


def test_a_recently_verified_key_authenticates_without_the_database(tmp_path: Path) -> None:
    ws = _workspace(tmp_path, "a")
    created, key = ws.keys.create("ci", project="default", scopes=["predict"])
    assert ws.keys.authenticate_cached(key) is None  # never verified: the caller must ask
    assert ws.keys.authenticate(key).key_id == created.id
    ws.store.keys.lookup = None  # type: ignore[assignment]  # any database read would fail
    assert ws.keys.authenticate_cached(key).key_id == created.id  # type: ignore[union-attr]
    assert ws.keys.authenticate_cached(key + "x") is None
    ws.close()


def test_a_revoked_key_is_refused_on_the_cached_path_too(tmp_path: Path) -> None:
    ws = _workspace(tmp_path, "a")
    created, key = ws.keys.create("ci", project="default", scopes=["predict"])
    ws.keys.authenticate(key)
    ws.keys.revoke(created.id)
    assert ws.keys.authenticate_cached(key) is None
    with pytest.raises(Unauthenticated, match=r"not valid|revoked"):
        ws.keys.authenticate(key)
    ws.close()
