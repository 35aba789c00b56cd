"""The artifact store confines every key to its root and publishes atomically."""

import pytest

from aimass.artifacts.storage import ArtifactStore
from aimass.errors import InvalidArgument

TRAVERSALS = [
    "../x",
    "a/../../x",
    "/etc/passwd",
    "a//b",
    "",
    ".",
    "..",
    "a/..",
    "%2e%2e/x",
    "a\\..\\b",
    "a/\x00",
    "C:/x",
    "a/.hidden",
    "a/b/",
    "\u2024\u2024/x",
]


@pytest.mark.parametrize("key", TRAVERSALS)
def test_keys_that_could_escape_the_root_are_refused(tmp_path, key):
    store = ArtifactStore(tmp_path / "root")
    canary = tmp_path / "canary"
    canary.write_text("untouched")
    with pytest.raises(InvalidArgument):
        store.path(key)
    with pytest.raises(InvalidArgument):
        store.resolve(f"artifacts:{key}")
    assert canary.read_text() == "untouched"


def test_uris_must_be_artifact_uris(tmp_path):
    store = ArtifactStore(tmp_path)
    for uri in ("file:///etc/passwd", "/etc/passwd", "s3://x/../../y", "http://127.0.0.1/x"):
        with pytest.raises(InvalidArgument):
            store.resolve(uri)


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


def test_symlinked_artifacts_are_not_followed(tmp_path):
    store = ArtifactStore(tmp_path / "root")
    (tmp_path / "secret").write_text("s")
    (tmp_path / "root" / "datasets").mkdir()
    (tmp_path / "root" / "datasets" / "link").symlink_to(tmp_path / "secret")
    with pytest.raises(InvalidArgument):
        store.resolve("artifacts:datasets/link")
