"""Issue 13, at rest: artifacts encrypted (AES-256-GCM envelopes), bundles signed (Ed25519).

Finding 7 was "dataset text and model weights are plain files anyone with disk access
reads". These tests prove: no stored file holds the plaintext; tampering with any part
of an envelope is caught; rotation re-wraps data keys without touching ciphertexts;
a bundle without a trusted signature is refused before its weights are read; exported
bundles carry a signature that checks out with the home's public key.
"""

import json
import os
import shutil

import pytest
from typer.testing import CliRunner

from aimass.artifacts import ArtifactStore, BundleWriter
from aimass.artifacts import envelope as env
from aimass.artifacts.bundle import bundle_digest, verify_bundle_signature
from aimass.artifacts.envelope import (
    MAGIC,
    MasterKeys,
    decrypt_file,
    encrypt_file,
    header_key_id,
    is_encrypted,
)
from aimass.artifacts.plaintext import PlaintextCache
from aimass.artifacts.signing import SIGNATURE, SigningKey
from aimass.cli import app
from aimass.errors import BundleFormatError, FailedPrecondition, InvalidArgument
from aimass.settings import Settings
from aimass.training.checkpoint import Checkpointer
from aimass.workspace import Workspace
from aimass.workspace.secrets import migrate_artifacts, rotate_master_key, secrets_status
from tests.conftest import trained_workspace

runner = CliRunner()
SECRET_TEXT = "Patient Zhang Wei was admitted"


# -- the envelope --------------------------------------------------------------------


@pytest.fixture
def small_chunks(monkeypatch):
    """64-byte chunks, so a few hundred bytes span many chunks."""
    monkeypatch.setattr(env, "CHUNK_SIZE", 64)


def _sealed(tmp_path, keys, data: bytes):
    plain = tmp_path / "plain.bin"
    plain.write_bytes(data)
    sealed = tmp_path / "sealed.bin"
    encrypt_file(plain, sealed, keys)
    return sealed


def _open(path, keys):
    out = path.with_suffix(".out")
    decrypt_file(path, out, keys)
    return out.read_bytes()


@pytest.mark.parametrize("size", [0, 1, 63, 64, 65, 1000])
def test_round_trip_any_size(tmp_path, small_chunks, size):
    keys = MasterKeys.generate()
    data = os.urandom(size)
    sealed = _sealed(tmp_path, keys, data)
    assert is_encrypted(sealed) and sealed.stat().st_mode & 0o777 == 0o600
    assert _open(sealed, keys) == data


def test_plaintext_never_in_the_file(tmp_path):
    keys = MasterKeys.generate()
    sealed = _sealed(tmp_path, keys, (SECRET_TEXT * 1000).encode())
    assert b"Zhang" not in sealed.read_bytes()


@pytest.mark.parametrize("attack", ["flip", "truncate", "append", "swap", "drop-last"])
def test_tampering_is_caught(tmp_path, small_chunks, attack):
    keys = MasterKeys.generate()
    sealed = _sealed(tmp_path, keys, os.urandom(300))  # 5 chunks of 64 (+16 tag)
    raw = bytearray(sealed.read_bytes())
    header, chunk = 103, 64 + 16
    if attack == "flip":
        raw[header + 10] ^= 1
    elif attack == "truncate":
        raw = raw[:-5]
    elif attack == "append":
        raw += b"x"
    elif attack == "swap":
        first, second = raw[header : header + chunk], raw[header + chunk : header + 2 * chunk]
        raw[header : header + chunk], raw[header + chunk : header + 2 * chunk] = second, first
    elif attack == "drop-last":
        raw = raw[: header + 4 * chunk]
    sealed.write_bytes(bytes(raw))
    with pytest.raises(FailedPrecondition):
        _open(sealed, keys)


def test_wrong_master_key_names_the_key(tmp_path):
    keys = MasterKeys.generate()
    sealed = _sealed(tmp_path, keys, b"data")
    with pytest.raises(FailedPrecondition, match=keys.active):
        _open(sealed, MasterKeys.generate())


def test_master_key_parsing(tmp_path):
    keys = MasterKeys.generate()
    assert MasterKeys.parse(keys.to_json(), "x").keys == keys.keys
    single = MasterKeys.parse(json.loads(keys.to_json())["keys"][keys.active], "x")
    assert single.active == keys.active
    with pytest.raises(InvalidArgument, match="32 bytes"):
        MasterKeys.parse("c2hvcnQ=", "AIMASS_MASTER_KEY")
    tampered = json.loads(keys.to_json())
    tampered["keys"] = {"0" * 16: tampered["keys"][keys.active]}
    tampered["active"] = "0" * 16
    with pytest.raises(InvalidArgument, match="does not match its id"):
        MasterKeys.parse(json.dumps(tampered), "x")


def test_rewrap_keeps_the_ciphertext(tmp_path, small_chunks):
    keys = MasterKeys.generate()
    data = os.urandom(500)
    sealed = _sealed(tmp_path, keys, data)
    body = sealed.read_bytes()[103:]
    rotated = keys.with_new_active()
    assert rotated.rewrap(sealed)
    assert header_key_id(sealed) == rotated.active
    assert sealed.read_bytes()[103:] == body
    assert _open(sealed, rotated.only_active()) == data
    with pytest.raises(FailedPrecondition, match=rotated.active):
        _open(sealed, keys)


def test_key_command(tmp_path):
    keys = MasterKeys.generate()
    (tmp_path / "k.json").write_text(keys.to_json())
    assert MasterKeys.from_command(f"cat {tmp_path / 'k.json'}").keys == keys.keys
    with pytest.raises(FailedPrecondition, match="exited with"):
        MasterKeys.from_command("false")


# -- the store: encrypt on publish, decrypted copies, signatures ------------------------


def _bundle(directory, seed=0.0):
    import torch

    writer = BundleWriter(directory)
    writer.add_json("config.json", {"model_type": "bert"})
    writer.add_tensors("model.safetensors", {"w": torch.full((4,), seed)})
    return writer.finish(kind="model", architecture="bert", family="encoder")


def _store(tmp_path, **kw):
    kw.setdefault("plaintext", PlaintextCache(tmp_path / "plain"))
    return ArtifactStore(tmp_path / "root", **kw)


def test_published_bundle_is_encrypted_signed_and_readable(tmp_path):
    signer = SigningKey.load_or_create(tmp_path / "signing.pem")
    store = _store(tmp_path, keys=MasterKeys.generate(), signer=signer, require_signatures=True)
    with store.staging() as stage:
        manifest = _bundle(stage / "b")
        uri = store.publish(stage / "b", f"bundles/{manifest.digest}")
    stored = store.stored(uri)
    assert all(is_encrypted(p) for p in stored.iterdir())
    readable = store.resolve(uri)
    assert readable != stored and (readable.stat().st_mode & 0o777) == 0o700
    assert bundle_digest(readable) == manifest.digest  # the identity is the plaintext digest
    assert verify_bundle_signature(readable, trusted=store.trusted).key_id == signer.key_id


def test_unsigned_or_foreign_bundles_are_refused_before_weights(tmp_path):
    signer = SigningKey.load_or_create(tmp_path / "signing.pem")
    store = _store(tmp_path, signer=signer, require_signatures=True)
    with store.staging() as stage:
        manifest = _bundle(stage / "b")
        uri = store.publish(stage / "b", f"bundles/{manifest.digest}")
    stored = store.stored(uri)
    (stored / "model.safetensors").write_bytes(b"not weights")  # never read: refused first

    (stored / SIGNATURE).unlink()
    with pytest.raises(BundleFormatError, match=r"not signed.*aimass secrets migrate"):
        store.resolve(uri)

    stranger = SigningKey.load_or_create(tmp_path / "stranger.pem")
    other = _store(tmp_path / "o", signer=stranger)
    other.sign_in_place(stored)
    with pytest.raises(BundleFormatError, match="does not trust"):
        store.resolve(uri)


def test_a_changed_manifest_breaks_the_signature(tmp_path):
    signer = SigningKey.load_or_create(tmp_path / "signing.pem")
    store = _store(tmp_path, signer=signer, require_signatures=True)
    with store.staging() as stage:
        manifest = _bundle(stage / "b")
        uri = store.publish(stage / "b", f"bundles/{manifest.digest}")
    path = store.stored(uri) / "aimass.json"
    data = json.loads(path.read_text())
    data["task_config"] = {"labels": ["evil"]}
    path.write_text(json.dumps(data))
    with pytest.raises(BundleFormatError, match="another bundle"):
        store.resolve(uri)


def test_encrypted_artifacts_need_the_key(tmp_path):
    keys = MasterKeys.generate()
    store = _store(tmp_path, keys=keys)
    source = tmp_path / "d.parquet"
    source.write_bytes(SECRET_TEXT.encode())
    uri = store.publish(source, "datasets/abc.parquet")
    assert store.resolve(uri).read_bytes() == SECRET_TEXT.encode()
    with pytest.raises(InvalidArgument, match="no master key"):
        _store(tmp_path, plaintext=PlaintextCache(tmp_path / "p2")).resolve(uri)


def test_plaintext_copies_of_a_job_go_when_it_ends(tmp_path):
    cache = PlaintextCache(tmp_path / "plain")
    store = _store(tmp_path, keys=MasterKeys.generate(), plaintext=cache)
    source = tmp_path / "d.bin"
    source.write_bytes(b"rows")
    uri = store.publish(source, "datasets/d.bin")
    served = store.resolve(uri)  # outside a job: kept for the process
    with store.plaintext_scope():
        assert store.resolve(uri) == served
    assert served.exists()
    other = tmp_path / "e.bin"
    other.write_bytes(b"more rows")
    uri2 = store.publish(other, "datasets/e.bin")
    with store.plaintext_scope():
        copy = store.resolve(uri2)
        assert copy.read_bytes() == b"more rows"
    assert not copy.exists()
    cache.clear()
    assert not served.exists()


def test_orphaned_copies_of_dead_processes_are_removed(tmp_path):
    parent = tmp_path / "plain"
    parent.mkdir()
    orphan = parent / "aimass-plain-999999999-abcd"
    orphan.mkdir()
    (orphan / "x").write_text("left by a crash")
    store = _store(tmp_path, keys=MasterKeys.generate(), plaintext=PlaintextCache(parent))
    source = tmp_path / "d.bin"
    source.write_bytes(b"rows")
    store.resolve(store.publish(source, "datasets/d.bin"))
    assert not orphan.exists()


def test_checkpoints_are_encrypted(tmp_path):
    import torch

    keys = MasterKeys.generate()
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(model.parameters())
    model(torch.ones(1, 3)).sum().backward()
    optimizer.step()
    saver = Checkpointer(tmp_path / "ck", fingerprint="f", keys=keys)
    target = saver.save(
        epoch=1, model=model.state_dict(), best=model.state_dict(), optimizer=optimizer, loop={}
    )
    assert all(is_encrypted(p) for p in target.iterdir())
    loaded = Checkpointer(tmp_path / "ck", fingerprint="f", keys=keys).load()
    assert torch.equal(loaded.model["weight"], model.state_dict()["weight"])
    with pytest.raises(FailedPrecondition):
        Checkpointer(tmp_path / "ck", fingerprint="f", keys=MasterKeys.generate()).load()


# -- a home end to end: train, serve, rotate, migrate, verify ---------------------------


@pytest.fixture(scope="module")
def home(tmp_path_factory, tiny_bert_dir):
    root = tmp_path_factory.mktemp("at-rest")
    ws = trained_workspace(root / "home", tiny_bert_dir, root / "data")
    ws.close()
    return root / "home"


def _files(root):
    return [p for p in root.rglob("*") if p.is_file() and ".staging" not in p.parts]


def test_a_home_keeps_no_plaintext_artifacts(home):
    ws = Workspace(Settings(home=home, device="cpu"))
    published = [
        p
        for p in _files(home / "artifacts")
        if p.relative_to(home / "artifacts").parts[0] in ("bundles", "datasets", "reports")
    ]
    assert published and all(is_encrypted(p) for p in published)
    assert not any(b"superb" in p.read_bytes() for p in published)  # a word of the reviews
    assert (home / "keys" / "master.json").stat().st_mode & 0o777 == 0o600
    assert (home / "keys" / "signing.pem").stat().st_mode & 0o777 == 0o600
    assert ws.serving.predict("m", ["good movie"])
    status = secrets_status(ws.settings, ws.artifacts)
    assert status["plaintext_files"] == 0 and not status["unsigned_bundles"]
    ws.close()


def test_rotation_keeps_every_model_working(home, tmp_path):
    copy = tmp_path / "home"
    shutil.copytree(home, copy)
    ws = Workspace(Settings(home=copy, device="cpu"))
    before = json.loads((copy / "keys" / "master.json").read_text())["active"]
    report = rotate_master_key(ws.settings, ws.artifacts)
    ws.close()
    assert report["rewrapped_files"] > 0 and report["retired_keys"] == [before]
    keyring = json.loads((copy / "keys" / "master.json").read_text())
    assert list(keyring["keys"]) == [keyring["active"]] != [before]
    fresh = Workspace(Settings(home=copy, device="cpu"))
    assert fresh.serving.predict("m", ["good movie"])
    fresh.close()


def test_migrate_signs_and_encrypts_an_old_home(home, tmp_path):
    copy = tmp_path / "home"
    shutil.copytree(home, copy)
    # An old home: plaintext artifacts, no signatures (as aimass wrote them before).
    old = Workspace(Settings(home=copy, device="cpu"))
    keys = old.artifacts.keys
    for path in _files(copy / "artifacts"):
        if is_encrypted(path):
            out = path.with_name(path.name + ".plain")
            decrypt_file(path, out, keys)
            os.replace(out, path)
    for sig in (copy / "artifacts" / "bundles").glob(f"*/{SIGNATURE}"):
        sig.unlink()
    with pytest.raises(BundleFormatError, match="aimass secrets migrate"):
        old.serving.predict("m", ["good movie"])
    report = migrate_artifacts(old.settings, old.artifacts)
    old.close()
    assert report["signed_bundles"] and not report["refused_bundles"]
    assert report["encrypted_files"] > 0
    ws = Workspace(Settings(home=copy, device="cpu"))
    assert ws.serving.predict("m", ["good movie"])
    ws.close()


def test_cli_verify_and_export_carry_the_signature(home, tmp_path, monkeypatch):
    copy = tmp_path / "home"
    shutil.copytree(home, copy)
    monkeypatch.setenv("AIMASS_HOME", str(copy))
    result = runner.invoke(app, ["models", "verify", "m@1", "--json"])
    assert result.exit_code == 0, result.output
    verified = json.loads(result.stdout)
    assert verified["trusted"] and verified["encrypted"]

    out = tmp_path / "export"
    assert runner.invoke(app, ["models", "export", "m@1", str(out)]).exit_code == 0
    assert (out / SIGNATURE).is_file() and not is_encrypted(out / "model.safetensors")
    pem = tmp_path / "public.pem"
    pem.write_text(runner.invoke(app, ["secrets", "public-key"]).stdout)
    result = runner.invoke(
        app, ["models", "verify", "--path", str(out), "--public-key", str(pem), "--json"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["trusted"]

    stranger = tmp_path / "stranger.pem"
    stranger.write_text(SigningKey.load_or_create(tmp_path / "s.pem").public_pem())
    result = runner.invoke(
        app, ["models", "verify", "--path", str(out), "--public-key", str(stranger)]
    )
    assert result.exit_code == 1 and "does not trust" in result.output

    status = json.loads(runner.invoke(app, ["secrets", "status", "--json"]).stdout)
    assert status["encrypt_at_rest"] and status["key_source"] == "file"
    assert MAGIC not in pem.read_bytes()
