"""Pinned files: a packaged weight file that differs from its SHA-256 is refused."""

import hashlib

import pytest

from aimass.artifacts import PinnedFiles, sha256sums, verify_file
from aimass.errors import BundleFormatError, ErrorCode, FailedPrecondition, InvalidArgument


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _package(tmp_path):
    root = tmp_path / "fake_weights"
    (root / "data").mkdir(parents=True)
    weights = root / "data" / "w.gguf"
    weights.write_bytes(b"GGUF" + bytes(range(256)) * 4)
    return root, weights


def test_a_changed_byte_is_refused_naming_the_file_both_digests_and_the_fix(tmp_path):
    root, weights = _package(tmp_path)
    expected = _sha256(weights.read_bytes())
    pins = PinnedFiles("fake-weights", "1.2.3", {"data/w.gguf": expected})
    pins.verify(root)  # the original passes
    data = bytearray(weights.read_bytes())
    data[100] ^= 0x01  # same size, same file, one bit
    weights.write_bytes(bytes(data))
    actual = _sha256(bytes(data))
    with pytest.raises(BundleFormatError) as caught:
        pins.verify(root)
    error = caught.value
    assert error.code == ErrorCode.BUNDLE_INVALID
    assert str(weights) in error.message
    assert expected in error.message and actual in error.message
    assert "pip install --no-deps --force-reinstall fake-weights==1.2.3" in error.message
    assert error.details["expected"] == expected and error.details["actual"] == actual


def test_a_missing_pinned_file_is_refused(tmp_path):
    _, weights = _package(tmp_path)
    digest = _sha256(weights.read_bytes())
    weights.unlink()
    with pytest.raises(BundleFormatError, match=r"w\.gguf of fake-weights is missing") as caught:
        verify_file(weights, digest, package="fake-weights", version="1.2.3")
    assert digest in caught.value.message


def test_a_package_with_nothing_pinned_is_refused(tmp_path):
    root, _ = _package(tmp_path)
    with pytest.raises(FailedPrecondition, match="no pinned SHA-256"):
        PinnedFiles("fake-weights", "1.2.3", {}).verify(root)


def test_sha256sums_reads_sha256sum_output_and_refuses_anything_else():
    digest = "ab" * 32
    text = f"\n{digest}  config.json\n{digest} *1_Pooling/config.json\n"
    assert sha256sums(text, prefix="model/") == {
        "model/config.json": digest,
        "model/1_Pooling/config.json": digest,
    }
    with pytest.raises(InvalidArgument, match="not a sha256sum line"):
        sha256sums("abc  config.json")
