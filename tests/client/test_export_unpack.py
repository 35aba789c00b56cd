"""The SDK unpacks an exported bundle safely: every hostile archive is refused, nothing lands."""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from aimass.artifacts.archive import open_bundle_archive
from aimass.artifacts.bundle import BundleWriter, bundle_digest, verify_bundle
from aimass.client._export import unpack_bundle
from aimass.errors import BundleFormatError, InvalidArgument


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    """A small, valid bundle (no weights are read: random bytes stand in for them)."""
    writer = BundleWriter(tmp_path / "bundle")
    writer.add_json("config.json", {"model_type": "bert"})
    writer.add_bytes("model.safetensors", bytes(range(256)) * 5000)
    writer.add_bytes("vocab.txt", b"[PAD]\n[UNK]\n")
    writer.finish(kind="model", architecture="bert", family="encoder")
    return tmp_path / "bundle"


def _tar(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            archive.addfile(info, io.BytesIO(data) if data is not None else None)
    return out.getvalue()


def _files(directory: Path) -> list[tuple[tarfile.TarInfo, bytes | None]]:
    return [
        (tarfile.TarInfo(p.name), p.read_bytes())
        for p in sorted(directory.iterdir(), key=lambda p: p.name)
    ]


def _chunks(data: bytes, size: int = 1000) -> Iterator[bytes]:
    return (data[i : i + size] for i in range(0, len(data), size))


def test_the_archive_streams_the_bundle_and_unpacks_to_a_verified_copy(bundle, tmp_path):
    archive = open_bundle_archive(bundle)
    data = b"".join(archive)
    assert len(data) == archive.size  # the Content-Length the server announces
    assert archive.names == sorted(p.name for p in bundle.iterdir())
    out = tmp_path / "out"
    names = unpack_bundle(_chunks(data), out, digest=bundle_digest(bundle))
    assert names == archive.names
    assert verify_bundle(out).digest == verify_bundle(bundle).digest
    for name in names:
        assert (out / name).read_bytes() == (bundle / name).read_bytes()


def test_an_existing_empty_destination_is_filled(bundle, tmp_path):
    out = tmp_path / "empty"
    out.mkdir()
    unpack_bundle(_chunks(b"".join(open_bundle_archive(bundle))), out, digest=None)
    verify_bundle(out)


def _link(name: str, kind: bytes, target: str = "") -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info, None


HOSTILE = {
    "absolute path": lambda: (tarfile.TarInfo("/tmp/evil"), b"x"),
    "parent dir": lambda: (tarfile.TarInfo("../evil"), b"x"),
    "sub directory file": lambda: (tarfile.TarInfo("sub/config.json"), b"x"),
    "symlink": lambda: _link("vocab.txt", tarfile.SYMTYPE, "/etc/passwd"),
    "hard link": lambda: _link("evil", tarfile.LNKTYPE, "config.json"),
    "directory": lambda: _link("evil", tarfile.DIRTYPE),
    "character device": lambda: _link("evil", tarfile.CHRTYPE),
    "fifo": lambda: _link("evil", tarfile.FIFOTYPE),
}


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_hostile_members_are_refused_and_nothing_is_written(bundle, tmp_path, kind):
    members = [HOSTILE[kind](), *_files(bundle)]
    out = tmp_path / "dest" / "out"
    with pytest.raises(BundleFormatError, match="plain"):
        unpack_bundle(_chunks(_tar(members)), out, digest=None)
    assert not out.exists()
    assert sorted(p.name for p in (tmp_path / "dest").iterdir()) == []  # no staging left
    assert not (tmp_path / "evil").exists()


def test_a_file_named_twice_is_refused(bundle, tmp_path):
    members = _files(bundle)
    with pytest.raises(BundleFormatError, match="twice"):
        unpack_bundle(_chunks(_tar([*members, members[0]])), tmp_path / "out", digest=None)
    assert not (tmp_path / "out").exists()


def _manifest_mismatch(bundle: Path, change: str) -> list[tuple[tarfile.TarInfo, bytes | None]]:
    members = [m for m in _files(bundle) if not (change == "missing" and m[0].name == "vocab.txt")]
    if change == "modified":
        members = [
            (info, b"tampered" if info.name == "vocab.txt" else data) for info, data in members
        ]
    if change == "unlisted":
        members.append((tarfile.TarInfo("tokenizer.json"), b"{}"))
    if change == "no manifest":
        members = [m for m in members if m[0].name != "aimass.json"]
    return members


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ("modified", "SHA-256"),
        ("missing", "missing"),
        ("unlisted", "does not list"),
        ("no manifest", "not an aimass bundle"),
    ],
)
def test_files_that_do_not_match_the_manifest_are_refused(bundle, tmp_path, change, match):
    data = _tar(_manifest_mismatch(bundle, change))
    with pytest.raises(BundleFormatError, match=match):
        unpack_bundle(_chunks(data), tmp_path / "out", digest=None)
    assert not (tmp_path / "out").exists()


def test_a_truncated_archive_or_another_manifest_is_refused(bundle, tmp_path):
    data = b"".join(open_bundle_archive(bundle))
    with pytest.raises(BundleFormatError):
        unpack_bundle(_chunks(data[: len(data) // 2]), tmp_path / "a", digest=None)
    with pytest.raises(BundleFormatError, match="changed on the way"):
        unpack_bundle(_chunks(data), tmp_path / "b", digest="0" * 64)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_a_non_empty_destination_is_refused_before_anything_is_read(bundle, tmp_path):
    out = tmp_path / "full"
    out.mkdir()
    (out / "keep.txt").write_text("mine")

    def never() -> Iterator[bytes]:
        raise AssertionError("read the stream")
        yield b""

    with pytest.raises(InvalidArgument, match="not empty"):
        unpack_bundle(never(), out, digest=None)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    assert json.loads((bundle / "aimass.json").read_text())["kind"] == "model"
