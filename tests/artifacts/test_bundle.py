"""The bundle format: hashes and tamper detection (its refusal of pickles is proved in
tests/security/test_deserialization.py)."""

import json

import pytest
import torch

from aimass.artifacts.bundle import MANIFEST, BundleWriter, copy_bundle_files, verify_bundle
from aimass.errors import BundleFormatError, ErrorCode, InvalidArgument


def make_bundle(directory):
    writer = BundleWriter(directory)
    writer.add_json("config.json", {"model_type": "bert"})
    writer.add_tensors("model.safetensors", {"w": torch.ones(2, 2)})
    writer.add_bytes("vocab.txt", b"[PAD]\n")
    return writer.finish(
        kind="model",
        architecture="bert",
        family="encoder",
        task="classification",
        task_config={"labels": ["a", "b"]},
        provenance={"dataset": "d@1"},
    )


def test_round_trip_and_stable_digest(tmp_path):
    manifest = make_bundle(tmp_path / "b")
    verified = verify_bundle(tmp_path / "b")
    assert verified == manifest
    assert verified.digest == manifest.digest
    assert set(verified.files) == {"config.json", "model.safetensors", "vocab.txt"}
    assert make_bundle(tmp_path / "c").digest == manifest.digest


@pytest.mark.parametrize("name", ["pytorch_model.bin", "evil.py", "model.pkl"])
def test_an_added_file_fails_verification(tmp_path, name):
    make_bundle(tmp_path / "b")
    (tmp_path / "b" / name).write_bytes(b"x")
    with pytest.raises(BundleFormatError) as info:
        verify_bundle(tmp_path / "b")
    assert info.value.code == ErrorCode.BUNDLE_INVALID


def test_a_modified_file_fails_verification(tmp_path):
    make_bundle(tmp_path / "b")
    config = tmp_path / "b" / "config.json"
    config.write_text(config.read_text().replace("bert", "gpt2"))
    with pytest.raises(BundleFormatError, match="does not match its SHA-256"):
        verify_bundle(tmp_path / "b")


def test_a_missing_file_fails_verification(tmp_path):
    make_bundle(tmp_path / "b")
    (tmp_path / "b" / "vocab.txt").unlink()
    with pytest.raises(BundleFormatError, match="missing"):
        verify_bundle(tmp_path / "b")


def test_a_symlink_fails_verification(tmp_path):
    make_bundle(tmp_path / "b")
    (tmp_path / "b" / "vocab.txt").unlink()
    (tmp_path / "outside").write_bytes(b"[PAD]\n")
    (tmp_path / "b" / "vocab.txt").symlink_to(tmp_path / "outside")
    with pytest.raises(BundleFormatError, match="link"):
        verify_bundle(tmp_path / "b")


def test_a_newer_format_says_to_upgrade(tmp_path):
    make_bundle(tmp_path / "b")
    manifest = json.loads((tmp_path / "b" / MANIFEST).read_text())
    manifest["format_version"] = 99
    (tmp_path / "b" / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(BundleFormatError, match="upgrade aimass"):
        verify_bundle(tmp_path / "b")


def test_a_directory_without_manifest_is_not_a_bundle(tmp_path):
    (tmp_path / "hf").mkdir()
    (tmp_path / "hf" / "config.json").write_text("{}")
    with pytest.raises(BundleFormatError, match="aimass bases import"):
        verify_bundle(tmp_path / "hf")


def test_a_bundle_needs_weights_and_config(tmp_path):
    writer = BundleWriter(tmp_path / "b")
    writer.add_json("config.json", {})
    with pytest.raises(BundleFormatError, match=r"model\.safetensors"):
        writer.finish(kind="model", architecture="bert", family="encoder")


def test_writer_needs_an_empty_directory(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "x").write_text("")
    with pytest.raises(InvalidArgument):
        BundleWriter(tmp_path / "b")


def test_export_copies_verified_files(tmp_path):
    make_bundle(tmp_path / "b")
    names = copy_bundle_files(tmp_path / "b", tmp_path / "out")
    assert "model.safetensors" in names
    assert (tmp_path / "out" / "config.json").is_file()
    with pytest.raises(InvalidArgument):
        copy_bundle_files(tmp_path / "b", tmp_path / "out")
