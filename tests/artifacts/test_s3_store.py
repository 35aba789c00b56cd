"""The artifact store on an S3-compatible server (moto on loopback): what one process
publishes another reads through an empty local cache, every file checked against the index
that commits the upload, with encryption and signatures as on local disk."""

from __future__ import annotations

import json
import threading

import pytest

from aimass.artifacts.envelope import MasterKeys, is_encrypted
from aimass.artifacts.objects import S3ObjectStore
from aimass.artifacts.plaintext import PlaintextCache
from aimass.artifacts.remote import INDEX_PREFIX
from aimass.artifacts.signing import SigningKey
from aimass.artifacts.storage import ArtifactStore
from aimass.errors import (
    BundleFormatError,
    ErrorCode,
    FailedPrecondition,
    NotFound,
    Unavailable,
)
from tests.artifacts.test_bundle import make_bundle

pytestmark = pytest.mark.services


def _objects(bucket):
    return S3ObjectStore(bucket.bucket, prefix=bucket.prefix, endpoint_url=bucket.endpoint)


def _store(tmp_path, bucket, name, **kwargs):
    return ArtifactStore(
        tmp_path / name,
        remote=_objects(bucket),
        plaintext=PlaintextCache(tmp_path / f"{name}-plain"),
        **kwargs,
    )


def _publish_bytes(store, key, data):
    with store.staging() as stage:
        (stage / "f").write_bytes(data)
        return store.publish(stage / "f", key)


def _publish_dir(store, key, files):
    with store.staging() as stage:
        for name, data in files.items():
            (stage / "d" / name).parent.mkdir(parents=True, exist_ok=True)
            (stage / "d" / name).write_bytes(data)
        return store.publish(stage / "d", key)


def _index(bucket, key):
    raw = bucket.client.get_object(
        Bucket=bucket.bucket, Key=f"{bucket.prefix}/{INDEX_PREFIX}{key}.json"
    )["Body"].read()
    return json.loads(raw)


def _object_of(bucket, key, path=""):
    index = _index(bucket, key)
    name = f"{bucket.prefix}/{key}/{index['upload']}"
    return f"{name}/{path}" if path else name


def test_file_and_directory_round_trip_through_an_empty_cache(tmp_path, s3_bucket):
    writer = _store(tmp_path, s3_bucket, "a")
    file_uri = _publish_bytes(writer, "datasets/abc.parquet", b"rows")
    dir_uri = _publish_dir(writer, "reports/r1", {"report.json": b"{}", "sub/plot.svg": b"<svg/>"})
    reader = _store(tmp_path, s3_bucket, "b")
    assert not (reader.root / "datasets").exists()
    assert reader.exists("datasets/abc.parquet") and reader.exists("reports/r1")
    assert reader.resolve(file_uri).read_bytes() == b"rows"
    directory = reader.resolve(dir_uri)
    assert (directory / "sub" / "plot.svg").read_bytes() == b"<svg/>"
    assert directory.parent == reader.root / "reports"  # now in the reader's own cache
    assert (directory / "report.json").stat().st_mode & 0o777 == 0o600
    assert not any((reader.root / ".staging").glob("[!l]*"))  # only the lock directory
    assert s3_bucket.names()[0].startswith(f"{s3_bucket.prefix}/{INDEX_PREFIX}")


def test_encrypted_signed_bundle_round_trip(tmp_path, s3_bucket):
    keys, signer = MasterKeys.generate(), SigningKey.load_or_create(tmp_path / "sign.pem")
    writer = _store(tmp_path, s3_bucket, "a", keys=keys, signer=signer)
    with writer.staging() as stage:
        manifest = make_bundle(stage / "b")
        uri = writer.publish(stage / "b", f"bundles/{manifest.digest}")
    weights = s3_bucket.client.get_object(
        Bucket=s3_bucket.bucket,
        Key=_object_of(s3_bucket, f"bundles/{manifest.digest}", "model.safetensors"),
    )["Body"].read()
    assert b"safetensors" not in weights and b'"w"' not in weights  # ciphertext in the bucket
    trusted = {signer.key_id: signer.public_raw}
    reader = _store(tmp_path, s3_bucket, "b", keys=keys, trusted=trusted, require_signatures=True)
    plain = reader.resolve(uri)
    assert is_encrypted(reader.stored(uri) / "model.safetensors")
    from aimass.artifacts.bundle import verify_bundle

    assert verify_bundle(plain).digest == manifest.digest
    assert reader.check_signature(f"bundles/{manifest.digest}", reader.stored(uri)).key_id == (
        signer.key_id
    )
    stranger = _store(tmp_path, s3_bucket, "c", keys=keys, require_signatures=True)
    with pytest.raises(BundleFormatError):
        stranger.resolve(uri)  # fetched, but signed by a key it does not trust


@pytest.mark.parametrize("damage", ["flip", "truncate", "drop"])
def test_a_damaged_remote_file_is_refused_and_nothing_lands(tmp_path, s3_bucket, damage):
    writer = _store(tmp_path, s3_bucket, "a")
    uri = _publish_dir(writer, "reports/r1", {"report.json": b"0123456789", "b.txt": b"ok"})
    name = _object_of(s3_bucket, "reports/r1", "report.json")
    if damage == "drop":
        s3_bucket.client.delete_object(Bucket=s3_bucket.bucket, Key=name)
    else:
        data = b"0123456788" if damage == "flip" else b"01234"
        s3_bucket.client.put_object(Bucket=s3_bucket.bucket, Key=name, Body=data)
    reader = _store(tmp_path, s3_bucket, "b")
    with pytest.raises(BundleFormatError, match=r"reports/r1.*'report\.json'") as caught:
        reader.resolve(uri)
    assert caught.value.code == ErrorCode.BUNDLE_INVALID
    assert not (reader.root / "reports" / "r1").exists()
    assert not any((reader.root / ".staging").glob("[!l]*"))


def test_a_file_artifact_changed_in_the_bucket_is_refused(tmp_path, s3_bucket):
    uri = _publish_bytes(_store(tmp_path, s3_bucket, "a"), "datasets/x.parquet", b"abcdef")
    name = _object_of(s3_bucket, "datasets/x.parquet")
    s3_bucket.client.put_object(Bucket=s3_bucket.bucket, Key=name, Body=b"abcdeg")
    with pytest.raises(BundleFormatError, match="SHA-256"):
        _store(tmp_path, s3_bucket, "b").stored(uri)


def test_an_index_that_points_outside_the_artifact_is_refused(tmp_path, s3_bucket):
    writer = _store(tmp_path, s3_bucket, "a")
    uri = _publish_dir(writer, "reports/r1", {"a.txt": b"x"})
    index = _index(s3_bucket, "reports/r1")
    index["files"][0]["path"] = "../../escaped.txt"
    s3_bucket.client.put_object(
        Bucket=s3_bucket.bucket,
        Key=f"{s3_bucket.prefix}/{INDEX_PREFIX}reports/r1.json",
        Body=json.dumps(index).encode(),
    )
    reader = _store(tmp_path, s3_bucket, "b")
    with pytest.raises(BundleFormatError, match="outside the artifact"):
        reader.resolve(uri)
    assert not list(tmp_path.rglob("escaped.txt"))


def test_without_its_index_an_artifact_is_not_there(tmp_path, s3_bucket):
    uri = _publish_bytes(_store(tmp_path, s3_bucket, "a"), "datasets/x.parquet", b"abc")
    s3_bucket.client.delete_object(
        Bucket=s3_bucket.bucket, Key=f"{s3_bucket.prefix}/{INDEX_PREFIX}datasets/x.parquet.json"
    )
    reader = _store(tmp_path, s3_bucket, "b")
    assert not reader.exists("datasets/x.parquet")
    with pytest.raises(NotFound, match=r"datasets/x\.parquet"):
        reader.resolve(uri)


class _FailingObjects:
    """Object storage that fails on its ``after``-th upload (a crash mid-publish)."""

    def __init__(self, inner, after):
        self.inner, self.left = inner, after

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def put_file(self, path, name):
        self.left -= 1
        if self.left < 0:
            raise OSError("simulated crash mid-upload")
        self.inner.put_file(path, name)


def test_an_interrupted_upload_is_invisible_and_the_next_publish_completes_it(tmp_path, s3_bucket):
    files = {"a.txt": b"a", "b.txt": b"b", "c.txt": b"c"}
    crashing = ArtifactStore(tmp_path / "a", remote=_FailingObjects(_objects(s3_bucket), 1))
    with pytest.raises(OSError, match="simulated"):
        _publish_dir(crashing, "reports/r1", files)
    reader = _store(tmp_path, s3_bucket, "b")
    assert not reader.exists("reports/r1")
    uri = _publish_dir(_store(tmp_path, s3_bucket, "a"), "reports/r1", files)  # local copy exists
    assert (reader.resolve(uri) / "c.txt").read_bytes() == b"c"


def test_publish_is_idempotent_in_the_bucket(tmp_path, s3_bucket):
    writer = _store(tmp_path, s3_bucket, "a")
    uri = _publish_bytes(writer, "datasets/x.parquet", b"one")
    before = s3_bucket.names()
    assert _publish_bytes(writer, "datasets/x.parquet", b"two") == uri
    other = _store(tmp_path, s3_bucket, "b")
    assert _publish_bytes(other, "datasets/x.parquet", b"three") == uri
    assert s3_bucket.names() == before
    assert _store(tmp_path, s3_bucket, "c").resolve(uri).read_bytes() == b"one"


def test_concurrent_fetches_of_one_key_all_succeed(tmp_path, s3_bucket):
    payload = {f"f{i}.bin": bytes([i]) * 50_000 for i in range(6)}
    uri = _publish_dir(_store(tmp_path, s3_bucket, "a"), "reports/big", payload)
    # Four stores on one root (four processes' worth of clients) and one on another.
    readers = [_store(tmp_path, s3_bucket, "shared") for _ in range(4)]
    readers.append(_store(tmp_path, s3_bucket, "other"))
    results, errors = [], []
    barrier = threading.Barrier(len(readers))

    def fetch(store):
        barrier.wait()
        try:
            path = store.resolve(uri)
            results.append({p.name: p.read_bytes() for p in path.iterdir()})
        except Exception as exc:  # collected, asserted below
            errors.append(exc)

    threads = [threading.Thread(target=fetch, args=(r,)) for r in readers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert results == [payload] * len(readers)
    assert not any((tmp_path / "shared" / ".staging").glob("[!l]*"))


def test_delete_removes_the_local_and_the_remote_copy(tmp_path, s3_bucket):
    writer = _store(tmp_path, s3_bucket, "a")
    _publish_dir(writer, "reports/r1", {"a.txt": b"x"})
    writer.delete("reports/r1")
    assert not writer.exists("reports/r1")
    assert s3_bucket.names() == []


def test_a_run_directory_mirrors_up_and_down(tmp_path, s3_bucket):
    writer = _store(tmp_path, s3_bucket, "a")
    checkpoint = writer.path("runs/j1/checkpoint")
    (checkpoint / "epoch-0001").mkdir(parents=True)
    (checkpoint / "epoch-0001" / "model.safetensors").write_bytes(b"w1")
    (checkpoint / "checkpoint.json").write_text('{"epoch": 1}')
    writer.mirror_up("runs/j1/checkpoint")
    (checkpoint / "epoch-0002").mkdir()
    (checkpoint / "epoch-0002" / "model.safetensors").write_bytes(b"w2")
    (checkpoint / "checkpoint.json").write_text('{"epoch": 2}')
    import shutil

    shutil.rmtree(checkpoint / "epoch-0001")
    writer.mirror_up("runs/j1/checkpoint")
    # The first upload's objects are gone: only the newest generation stays in the bucket.
    assert len([k for k in s3_bucket.names() if "epoch-" in k]) == 1
    reader = _store(tmp_path, s3_bucket, "b")
    assert reader.in_remote("runs/j1/checkpoint")
    assert reader.mirror_down("runs/j1/checkpoint")
    pulled = reader.path("runs/j1/checkpoint")
    assert (pulled / "checkpoint.json").read_text() == '{"epoch": 2}'
    assert sorted(p.name for p in pulled.iterdir()) == ["checkpoint.json", "epoch-0002"]
    assert not reader.mirror_down("runs/other/checkpoint")


def test_a_missing_bucket_is_refused_with_the_command_that_creates_it(tmp_path, s3_bucket):
    objects = S3ObjectStore("no-such-bucket", endpoint_url=s3_bucket.endpoint)
    store = ArtifactStore(tmp_path / "a", remote=objects)
    with pytest.raises(FailedPrecondition, match="aws s3 mb s3://no-such-bucket"):
        store.exists("datasets/x")


def test_an_unreachable_endpoint_is_unavailable(tmp_path, s3_bucket):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    objects = S3ObjectStore("b", endpoint_url=f"http://127.0.0.1:{port}")
    with pytest.raises(Unavailable, match=f"127.0.0.1:{port}.*AIMASS_S3_ENDPOINT_URL"):
        ArtifactStore(tmp_path / "a", remote=objects).exists("datasets/x")


def test_missing_credentials_are_named_with_the_fix(tmp_path, s3_bucket, monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    store = _store(tmp_path, s3_bucket, "a")
    with pytest.raises(FailedPrecondition, match="AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"):
        store.exists("datasets/x")


def test_a_damaged_index_can_still_be_deleted(tmp_path, s3_bucket):
    store = _store(tmp_path, s3_bucket, "a")
    _publish_bytes(store, "datasets/x.parquet", b"abc")
    index = f"{s3_bucket.prefix}/{INDEX_PREFIX}datasets/x.parquet.json"
    s3_bucket.client.put_object(Bucket=s3_bucket.bucket, Key=index, Body=b"not json")
    with pytest.raises(BundleFormatError, match="not valid JSON"):
        _store(tmp_path, s3_bucket, "b").resolve("artifacts:datasets/x.parquet")
    store.delete("datasets/x.parquet")
    assert not store.exists("datasets/x.parquet")


def test_settings_select_the_bucket_prefix_and_endpoint(tmp_path):
    from aimass.artifacts.objects import object_store_from_settings
    from aimass.settings import Settings

    assert object_store_from_settings(Settings(home=tmp_path)) is None
    objects = object_store_from_settings(
        Settings(
            home=tmp_path,
            artifact_url="s3://team-bucket/aimass/prod/",
            s3_endpoint_url="http://127.0.0.1:9",
            s3_region="eu-west-1",
        )
    )
    assert isinstance(objects, S3ObjectStore)
    assert (objects.bucket, objects.prefix, objects.region) == (
        "team-bucket",
        "aimass/prod",
        "eu-west-1",
    )
    assert objects.describe() == "s3://team-bucket/aimass/prod at http://127.0.0.1:9"
