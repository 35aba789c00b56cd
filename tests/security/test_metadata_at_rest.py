"""The SQLite metadata database encrypted at rest (``AIMASS_ENCRYPT_METADATA``): no page of
the database or its write-ahead log holds a name in plaintext, the key is wrapped by the
master key and follows its rotation, a plaintext home is converted in place (and an
interrupted conversion finished), backups stay encrypted, and every way the key can go
missing or wrong is an error that says what to restore."""

from __future__ import annotations

import json
import os

import pytest
from typer.testing import CliRunner

from aimass.artifacts import database_key as dbkey
from aimass.artifacts.database_key import (
    backup_database,
    database_key,
    encrypt_database,
    key_file,
)
from aimass.artifacts.envelope import MasterKeys
from aimass.cli import app
from aimass.errors import FailedPrecondition, InvalidArgument
from aimass.settings import Settings
from aimass.workspace import Workspace
from aimass.workspace.secrets import rotate_master_key, secrets_status
from tests.conftest import sentiment_rows, write_jsonl

runner = CliRunner()
NAME = "oncology-ward-7-notes"  # a dataset name that must not be readable on disk


def _home(tmp_path, **settings):
    home = tmp_path / "home"
    tmp_path.mkdir(parents=True, exist_ok=True)
    ws = Workspace(Settings(home=home, **settings))
    ws.datasets.import_file(write_jsonl(tmp_path / "d.jsonl", sentiment_rows(20)), name=NAME)
    ws.close()
    return home


def _raw(home) -> bytes:
    """Every byte of the database and its -wal/-shm files."""
    return b"".join(
        path.read_bytes() for path in home.iterdir() if path.name.startswith("aimass.db")
    )


def _names(home, **settings) -> list[str]:
    ws = Workspace(Settings(home=home, **settings))
    try:
        return [d.name for d in ws.datasets.list()]
    finally:
        ws.close()


def test_a_new_home_is_encrypted_and_reads_back(tmp_path):
    home = _home(tmp_path, encrypt_metadata=True)
    assert NAME.encode() not in _raw(home)
    assert not (home / "aimass.db").read_bytes().startswith(b"SQLite format 3")
    path = key_file(home / "aimass.db")
    assert path.stat().st_mode & 0o777 == 0o600
    stored = json.loads(path.read_text())
    assert stored["format"] == "aimass.database-key.v1" and len(stored["wrapped"]) > 40
    # Opened encrypted whatever the setting says now: the key file decides.
    assert _names(home) == [NAME]
    status = secrets_status(*_settings_and_artifacts(home))
    assert status["metadata_database"]["encrypted"] is True
    assert status["metadata_database"]["key_id"] == status["active_key"]
    assert status["active_key"] not in status["unused_keys"]


def _settings_and_artifacts(home):
    ws = Workspace(Settings(home=home))
    return ws.settings, ws.artifacts


def test_the_key_going_missing_or_wrong_is_an_error_naming_what_to_restore(tmp_path):
    home = _home(tmp_path, encrypt_metadata=True)
    path = key_file(home / "aimass.db")
    saved = path.read_bytes()
    other = MasterKeys.generate()
    with pytest.raises(FailedPrecondition, match=f"{other.active}|does not hold"):
        _names(home, master_key=_b64(other))
    path.unlink()
    with pytest.raises(FailedPrecondition, match=r"key file .* is missing"):
        _names(home)
    # Another database's key file (wrapped by the right master key) does not open it.
    elsewhere = _home(
        tmp_path / "elsewhere", encrypt_metadata=True, master_key_file=home / "keys" / "master.json"
    )
    path.write_bytes(key_file(elsewhere / "aimass.db").read_bytes())
    os.chmod(path, 0o600)
    with pytest.raises(FailedPrecondition, match="cannot be read with its key"):
        _names(home)
    path.write_bytes(saved)
    assert _names(home) == [NAME]


def _b64(keys: MasterKeys) -> str:
    import base64

    return base64.b64encode(keys.keys[keys.active]).decode()


def test_rotation_rewraps_the_database_key(tmp_path):
    home = _home(tmp_path, encrypt_metadata=True)
    settings, artifacts = _settings_and_artifacts(home)
    before = json.loads(key_file(home / "aimass.db").read_text())["key_id"]
    report = rotate_master_key(settings, artifacts)
    after = json.loads(key_file(home / "aimass.db").read_text())["key_id"]
    assert report["database_key_rewrapped"] and after == report["active_key"] != before
    assert report["retired_keys"] == [before]  # the old master key is gone ...
    assert _names(home) == [NAME]  # ... and the database still opens


def test_a_plaintext_home_is_encrypted_in_place_by_the_cli(tmp_path, monkeypatch):
    home = _home(tmp_path, encrypt_metadata=False)
    assert NAME.encode() in _raw(home)
    monkeypatch.setenv("AIMASS_HOME", str(home))
    done = runner.invoke(app, ["db", "encrypt", "--json"])
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["encrypted"] is True
    assert NAME.encode() not in _raw(home)
    assert not (home / "aimass.db-wal").exists() or NAME.encode() not in _raw(home)
    assert _names(home) == [NAME]
    again = runner.invoke(app, ["db", "encrypt", "--json"])
    assert json.loads(again.stdout)["already"] is True
    current = json.loads(runner.invoke(app, ["db", "current", "--json"]).stdout)
    assert current["encrypted"] is True and current["current"] == current["head"]


def test_an_interrupted_encryption_is_finished_by_running_it_again(tmp_path, monkeypatch):
    home = _home(tmp_path, encrypt_metadata=False)
    settings = Settings(home=home)

    def crash(staged, database):
        raise OSError("power cut")

    monkeypatch.setattr(dbkey, "_replace", crash)
    with pytest.raises(OSError, match="power cut"):
        encrypt_database(settings)
    monkeypatch.undo()
    # The key file is there, the database still plaintext: opening says what to do.
    with pytest.raises(FailedPrecondition, match="interrupted 'aimass db encrypt'"):
        _names(home)
    assert encrypt_database(settings)["resumed"] is True
    assert NAME.encode() not in _raw(home) and _names(home) == [NAME]


def test_a_backup_stays_encrypted_and_opens_with_its_key_file(tmp_path, monkeypatch):
    home = _home(tmp_path, encrypt_metadata=True)
    copy = tmp_path / "backup" / "aimass.db"
    done = backup_database(Settings(home=home), copy)
    assert done["encrypted"] and key_file(copy).exists()
    assert NAME.encode() not in copy.read_bytes()
    restored = Settings(home=home, store_uri=f"sqlite:///{copy}")
    ws = Workspace(restored)
    try:
        assert [d.name for d in ws.datasets.list()] == [NAME]
    finally:
        ws.close()
    with pytest.raises(InvalidArgument, match="already exists"):
        backup_database(Settings(home=home), copy)
    # The CLI, on a plaintext home: a plaintext copy, no key file.
    plain = _home(tmp_path / "plain", encrypt_metadata=False)
    monkeypatch.setenv("AIMASS_HOME", str(plain))
    out = runner.invoke(app, ["db", "backup", str(tmp_path / "plain.db"), "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)["key_file"] is None
    assert (tmp_path / "plain.db").read_bytes().startswith(b"SQLite format 3")


def test_a_server_database_is_refused_with_what_to_do(tmp_path):
    server = "postgresql+psycopg://u:p@127.0.0.1:9/aimass"
    settings = Settings(home=tmp_path / "home", database_url=server, encrypt_metadata=True)
    with pytest.raises(InvalidArgument, match="encrypted volume"):
        database_key(settings)
    with pytest.raises(InvalidArgument, match="not a SQLite metadata database"):
        encrypt_database(settings)
    # Unset, the setting does not apply to a server database.
    assert database_key(Settings(home=tmp_path / "home", database_url=server)) is None


def test_a_new_home_follows_encryption_at_rest_unless_told_otherwise(tmp_path):
    assert key_file(_home(tmp_path / "default") / "aimass.db").exists()
    off = _home(tmp_path / "off", encrypt_at_rest=False)
    assert not key_file(off / "aimass.db").exists() and NAME.encode() in _raw(off)
    only = _home(tmp_path / "only", encrypt_at_rest=False, encrypt_metadata=True)
    assert key_file(only / "aimass.db").exists() and NAME.encode() not in _raw(only)
