"""A bounded cache of artifacts in object storage: the least recently used published
artifacts leave it (and come back, verified, when read), never a recent one, a run's
scratch or one the bucket does not hold."""

from __future__ import annotations

import os
import time

import pytest

from aimass.artifacts.objects import S3ObjectStore
from aimass.artifacts.plaintext import PlaintextCache
from aimass.artifacts.remote import INDEX_PREFIX
from aimass.artifacts.storage import ArtifactStore
from aimass.errors import InvalidArgument
from aimass.settings import Settings, parse_size

pytestmark = pytest.mark.services

KB = 1000


def _store(tmp_path, bucket, *, max_bytes, idle=0.0, name="cache"):
    return ArtifactStore(
        tmp_path / name,
        remote=S3ObjectStore(bucket.bucket, prefix=bucket.prefix, endpoint_url=bucket.endpoint),
        plaintext=PlaintextCache(tmp_path / f"{name}-plain"),
        cache_max_bytes=max_bytes,
        cache_min_idle_seconds=idle,
    )


def _publish(store, key, size):
    with store.staging() as stage:
        (stage / "d").mkdir()
        (stage / "d" / "w.bin").write_bytes(os.urandom(size))
        return store.publish(stage / "d", key)


def _age(store, key, seconds):
    """Make ``key``'s last use ``seconds`` ago (the ledger's clock is the file's mtime)."""
    import hashlib

    entry = store.root / ".staging" / "used" / hashlib.sha256(key.encode()).hexdigest()[:32]
    then = time.time() - seconds
    os.utime(entry, (then, then))


def test_the_least_recently_used_leave_and_come_back_verified(tmp_path, s3_bucket):
    store = _store(tmp_path, s3_bucket, max_bytes=int(2.5 * KB))
    uris = [_publish(store, f"bundles/b{i}", KB) for i in range(2)]
    for i, uri in enumerate(uris):
        _age(store, store.key_of(uri), 100 - i)
    # Read b0 again: b1 is now the least recently used.
    store.resolve(uris[0])
    third = _publish(store, "bundles/b2", KB)
    assert store.path("bundles/b0").exists() and store.path("bundles/b2").exists()
    assert not store.path("bundles/b1").exists(), "the least recently used left the cache"
    assert store.in_remote("bundles/b1"), "the bucket keeps it"
    assert (store.resolve(uris[1]) / "w.bin").stat().st_size == KB, "fetched back"
    assert store.resolve(third).exists()


def test_recent_artifacts_and_run_scratch_stay_even_over_the_bound(tmp_path, s3_bucket):
    store = _store(tmp_path, s3_bucket, max_bytes=KB, idle=3600)
    for i in range(3):
        _publish(store, f"datasets/d{i}", KB)
    assert all(store.path(f"datasets/d{i}").exists() for i in range(3)), "all used this hour"
    store.path("runs/job1/checkpoint").mkdir(parents=True)
    (store.path("runs/job1/checkpoint") / "state.bin").write_bytes(os.urandom(KB))
    store.mirror_up("runs/job1/checkpoint")
    for i in range(3):
        _age(store, f"datasets/d{i}", 7200)
    assert sorted(store.trim_cache()) == ["datasets/d0", "datasets/d1", "datasets/d2"]
    assert store.path("runs/job1/checkpoint/state.bin").exists(), "a run's scratch is kept"


def test_an_artifact_the_bucket_does_not_hold_is_never_removed(tmp_path, s3_bucket):
    store = _store(tmp_path, s3_bucket, max_bytes=KB, idle=3600)
    _publish(store, "reports/r0", KB)
    _publish(store, "reports/r1", KB)
    index = f"{s3_bucket.prefix}/{INDEX_PREFIX}reports/r0.json"
    s3_bucket.client.delete_object(Bucket=s3_bucket.bucket, Key=index)  # no longer committed
    _age(store, "reports/r0", 7200)
    _age(store, "reports/r1", 3700)
    assert store.trim_cache() == ["reports/r1"]
    assert store.path("reports/r0").exists(), "the only copy stays"


def test_a_bound_needs_object_storage_and_takes_units(tmp_path):
    with pytest.raises(InvalidArgument, match="needs AIMASS_ARTIFACT_URL"):
        ArtifactStore(tmp_path / "a", cache_max_bytes=KB)
    with pytest.raises(ValueError, match="AIMASS_ARTIFACT_URL"):
        Settings(home=tmp_path, artifact_cache_max_bytes="20GB")
    found = Settings(home=tmp_path, artifact_url="s3://b/p", artifact_cache_max_bytes="20GiB")
    assert found.artifact_cache_max_bytes == 20 * 2**30
    assert (parse_size("500MB"), parse_size(1000), parse_size("1.5 kb")) == (5 * 10**8, 1000, 1500)
    for bad in ("lots", "-1", "0", "20 parsecs"):
        with pytest.raises(ValueError, match="size"):
            parse_size(bad)
