"""Settings: read once from AIMASS_* at the edge, paths derived from the home."""

from pathlib import Path

import pytest
from pydantic import ValidationError

from aimass.settings import Settings, load_settings


def test_defaults_derive_from_home(tmp_path, monkeypatch):
    monkeypatch.setenv("AIMASS_HOME", str(tmp_path / "h"))
    settings = load_settings()
    assert settings.home == tmp_path / "h"
    assert settings.resolved_store_uri == f"sqlite:///{tmp_path / 'h' / 'aimass.db'}"
    assert settings.resolved_artifact_root == tmp_path / "h" / "artifacts"


def test_default_home_is_dot_aimass(monkeypatch):
    monkeypatch.delenv("AIMASS_HOME")
    assert Settings().home == Path("~/.aimass").expanduser()


def test_environment_overrides(monkeypatch, tmp_path):
    monkeypatch.setenv("AIMASS_STORE_URI", "sqlite:///x.db")
    monkeypatch.setenv("AIMASS_MAX_PREDICT_BATCH", "8")
    settings = load_settings()
    assert settings.resolved_store_uri == "sqlite:///x.db"
    assert settings.max_predict_batch == 8


def test_invalid_values_are_refused(monkeypatch):
    monkeypatch.setenv("AIMASS_DEVICE", "tpu")
    with pytest.raises(ValidationError):
        load_settings()
