"""At rest (issue 13, finding 7): the database, the keys and every artifact are readable by
the server's user only: files 0600, directories 0700, whatever the umask."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from aimass.artifacts.storage import ArtifactStore
from aimass.settings import Settings
from aimass.store.session import private_sqlite_file
from tests.conftest import sentiment_rows, write_jsonl


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_home_database_and_artifacts_are_private(workspace, tmp_path):
    old = os.umask(0o022)  # the usual umask: would give 0644 files and 0755 directories
    try:
        data = write_jsonl(tmp_path / "reviews.jsonl", sentiment_rows(40))
        workspace.datasets.import_file(data, name="reviews")
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


@pytest.fixture(scope="module")
def served_home(tmp_path_factory, tiny_bert_dir):
    """A home that has imported, trained, served and audited, all under umask 022."""
    from aimass.jobs.train import TrainSpec
    from aimass.server import create_app
    from aimass.workspace import Workspace

    root = tmp_path_factory.mktemp("modes")
    home = root / "home"
    old = os.umask(0o022)
    try:
        ws = Workspace(Settings(home=home, device="cpu", num_threads=1))
        ws.datasets.import_file(write_jsonl(root / "r.jsonl", sentiment_rows(40)), name="r")
        ws.bases.import_(str(tiny_bert_dir), name="tiny")
        config = {"mode": "finetune", "epochs": 1, "batch_size": 16}
        ws.jobs.train(
            TrainSpec(dataset="r", base="tiny", model="m", config=config, alias="production")
        )
        ws.close()
        app = create_app(Settings(home=home, device="cpu", serve_runners=0), job_workers=0)
        with TestClient(app, base_url="http://localhost") as client:
            key = {"Authorization": f"Bearer {(home / 'admin.key').read_text().strip()}"}
            url = "/v1/projects/default/models/m@production:predict"
            assert client.post(url, headers=key, json={"inputs": ["good"]}).status_code == 200
    finally:
        os.umask(old)
    return home


def loose(home: Path, *, under: str | None = None) -> list[str]:
    """Paths under ``home`` (or its ``under`` part) whose mode is not 0700/0600."""
    found = []
    for path in sorted((home / under if under else home).rglob("*")):
        if path.is_symlink():
            continue
        want = 0o700 if path.is_dir() else 0o600
        if mode(path) != want:
            found.append(f"{oct(mode(path))} {path.relative_to(home)}")
    return found


def test_a_served_home_holds_only_private_files(served_home):
    assert mode(served_home) == 0o700
    for name in ("aimass.db", "admin.key", "server.secret"):
        assert mode(served_home / name) == 0o600, name
    runs = Path("artifacts") / "runs"
    assert [p for p in loose(served_home) if not p.split(" ", 1)[1].startswith(str(runs))] == []


def test_training_runs_logs_and_checkpoints_are_private(served_home):
    assert (served_home / "artifacts" / "runs").is_dir()
    assert loose(served_home, under="artifacts/runs") == []
