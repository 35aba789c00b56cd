"""At rest: the database and every artifact are readable by the server's user only."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from aimass.artifacts.storage import ArtifactStore
from aimass.store.session import private_sqlite_file
from tests.conftest import sentiment_rows, write_jsonl


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_home_database_and_artifacts_are_private(workspace, tmp_path):
    old = os.umask(0o022)  # the usual umask: would give 0644 files and 0755 directories
    try:
        data = write_jsonl(tmp_path / "reviews.jsonl", sentiment_rows(40))
        workspace.import_dataset(data, name="reviews")
    finally:
        os.umask(old)
    home = workspace.settings.home
    assert mode(home) == 0o700
    for name in ("aimass.db", "aimass.db-wal", "aimass.db-shm"):
        if (home / name).exists():
            assert mode(home / name) == 0o600, name
    root = workspace.settings.resolved_artifact_root
    found = list(root.rglob("*"))
    assert any(p.is_file() for p in found), "the dataset was written under artifacts/"
    assert mode(root) == 0o700
    for path in found:
        assert mode(path) == (0o700 if path.is_dir() else 0o600), path


def test_an_existing_world_readable_database_and_root_are_tightened(tmp_path):
    db = tmp_path / "old.db"
    db.write_bytes(b"")
    db.chmod(0o644)
    private_sqlite_file(f"sqlite:///{db}")
    assert mode(db) == 0o600
    root = tmp_path / "artifacts"
    root.mkdir(mode=0o755)
    root.chmod(0o755)
    ArtifactStore(root)
    assert mode(root) == 0o700
    private_sqlite_file("sqlite://")  # in memory: nothing to do
