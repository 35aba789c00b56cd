"""The artifact store publishes atomically (its confinement of keys to the root is proved in
tests/security/test_path_traversal.py)."""

import pytest

from aimass.artifacts.storage import ArtifactStore


def test_publish_is_atomic_and_idempotent(tmp_path):
    store = ArtifactStore(tmp_path)
    with store.staging() as stage:
        (stage / "f").write_text("one")
        uri = store.publish(stage / "f", "datasets/abc.parquet")
    assert store.resolve(uri).read_text() == "one"
    with store.staging() as stage:
        (stage / "f").write_text("two")
        assert store.publish(stage / "f", "datasets/abc.parquet") == uri
    assert store.resolve(uri).read_text() == "one"
    assert not any((tmp_path / ".staging").iterdir())


def _crash_while_staging(store):
    with store.staging() as stage:
        (stage / "half").write_text("x")
        raise RuntimeError("crash mid-write")


def test_staging_is_removed_after_a_failure(tmp_path):
    store = ArtifactStore(tmp_path)
    with pytest.raises(RuntimeError):
        _crash_while_staging(store)
    assert not any((tmp_path / ".staging").iterdir())
    assert not (tmp_path / "datasets").exists()
