"""CLI tests run in this process: what the CLI writes to temporary folders (downloaded
reports, which it leaves for the user to open) goes under the test's own folder."""

from __future__ import annotations

import tempfile

import pytest


@pytest.fixture(autouse=True)
def _temporary_folder(tmp_path, monkeypatch):
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
