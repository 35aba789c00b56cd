"""Unpack an exported bundle (a tar stream) safely, and check it against its manifest.

The SDK cannot import :mod:`aimass.artifacts` (it stays light), so the checks a
bundle needs on arrival are written here again, on the stream itself:

* only plain files at the top level, with plain names: an absolute path, ``..``,
  a sub-directory, a link, a device or a FIFO is refused before anything is
  written for it, and so is a name given twice;
* every file ``aimass.json`` lists is there with its SHA-256 and size, and no
  file is there that it does not list (``aimass.json`` and ``aimass.sig`` aside);
* the manifest's digest is the one the server named.

Files are written into a fresh directory beside the destination and moved in
only once all of it checks out, so a refused or broken download leaves nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, cast

import httpx

from aimass.client._transport import raise_for_error, translate_transport_error
from aimass.errors import BundleFormatError, InvalidArgument

__all__ = ["check_destination", "download_bundle", "unpack_bundle"]

MANIFEST = "aimass.json"
SIGNATURE = "aimass.sig"
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_CHUNK = 1 << 20
SPOOL_CHUNK = 1 << 20  # bytes read back at a time from a spooled async export
EXPORT_READ_TIMEOUT = 600.0  # seconds between two chunks (a GB bundle is verified first)


class _StreamReader:
    """A ``read(n)`` file object over an iterator of byte chunks (for ``tarfile`` ``r|``)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buffer = bytearray()

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._buffer) < size:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._buffer += chunk
        if size < 0:
            size = len(self._buffer)
        out = bytes(self._buffer[:size])
        del self._buffer[:size]
        return out


def check_destination(destination: Path) -> None:
    """Refuse a destination that is a file or a non-empty directory (as a local export does)."""
    if destination.exists() and (not destination.is_dir() or any(destination.iterdir())):
        raise InvalidArgument(f"export destination {destination} is not empty")


def _check_member(member: tarfile.TarInfo, seen: dict[str, Any]) -> str:
    name = member.name
    if not member.isreg():
        kind = "link" if member.issym() or member.islnk() else "directory or special file"
        raise BundleFormatError(
            f"the export holds {name[:100]!r}, a {kind}; a bundle holds plain files only",
            file=name[:100],
        )
    if not _NAME.fullmatch(name) or name in (".", ".."):
        raise BundleFormatError(
            f"the export holds a file named {name[:100]!r}; a bundle's files sit at its top "
            "level with plain names (no '/', '..' or absolute path)",
            file=name[:100],
        )
    if name in seen:
        raise BundleFormatError(f"the export holds {name!r} twice", file=name)
    return name


def _write(source: Any, target: Path) -> dict[str, Any]:
    """Copy a member's bytes to a new file; its SHA-256 and size."""
    digest, size = hashlib.sha256(), 0
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    with os.fdopen(os.open(target, flags, 0o644), "wb") as out:
        while chunk := source.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
            out.write(chunk)
    return {"sha256": digest.hexdigest(), "size": size}


def _extract(chunks: Iterator[bytes], stage: Path) -> dict[str, dict[str, Any]]:
    """Write every member into ``stage``; the SHA-256 and size of each."""
    found: dict[str, dict[str, Any]] = {}
    try:
        reader = cast(IO[bytes], _StreamReader(chunks))
        with tarfile.open(fileobj=reader, mode="r|") as archive:
            for member in archive:
                name = _check_member(member, found)
                if name == MANIFEST and member.size > MAX_MANIFEST_BYTES:
                    raise BundleFormatError(f"{MANIFEST} in the export is implausibly large")
                source = archive.extractfile(member)
                if source is None:  # pragma: no cover - isreg() members always have data
                    raise BundleFormatError(f"the export's {name!r} has no data")
                found[name] = _write(source, stage / name)
    except tarfile.TarError as exc:
        raise BundleFormatError(f"the export is not a complete tar archive: {exc}") from exc
    return found


def _canonical_digest(manifest: dict[str, Any]) -> str:
    canonical = json.dumps(manifest, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _check_manifest(stage: Path, found: dict[str, dict[str, Any]], digest: str | None) -> None:
    if MANIFEST not in found:
        raise BundleFormatError(f"the export has no {MANIFEST}: it is not an aimass bundle")
    try:
        manifest = json.loads((stage / MANIFEST).read_bytes())
    except ValueError as exc:
        raise BundleFormatError(f"the export's {MANIFEST} is not valid JSON: {exc}") from exc
    listed = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(listed, dict) or not listed:
        raise BundleFormatError(f"the export's {MANIFEST} is not a bundle manifest")
    if digest and _canonical_digest(manifest) != digest:
        raise BundleFormatError(
            f"the export's {MANIFEST} is not the one of bundle {digest[:16]}: it changed on the way"
        )
    extra = sorted(set(found) - set(listed) - {MANIFEST, SIGNATURE})
    if extra:
        raise BundleFormatError(f"the export holds files its {MANIFEST} does not list: {extra}")
    for name, meta in listed.items():
        if name not in found:
            raise BundleFormatError(f"bundle file {name!r} is missing from the export", file=name)
        if not isinstance(meta, dict) or found[name] != {
            "sha256": meta.get("sha256"),
            "size": meta.get("size"),
        }:
            raise BundleFormatError(
                f"bundle file {name!r} does not match its SHA-256 in {MANIFEST}: the export "
                "was modified or corrupted",
                file=name,
            )


def _move_in(stage: Path, destination: Path) -> None:
    if not destination.exists():
        os.replace(stage, destination)
        return
    for path in sorted(stage.iterdir()):
        os.replace(path, destination / path.name)
    stage.rmdir()


def download_bundle(http: httpx.Client, url: str, destination: Path, *, server: str) -> list[str]:
    """Stream the export at ``url`` and unpack it checked into ``destination``; the names."""
    check_destination(destination)
    # The server verifies the whole bundle before its first byte: allow a slow start.
    timeout = httpx.Timeout(http.timeout.connect, read=EXPORT_READ_TIMEOUT)
    try:
        with http.stream("GET", url, timeout=timeout) as response:
            if not response.is_success:
                response.read()
                raise_for_error(response)
            digest = response.headers.get("x-aimass-bundle-digest")
            return unpack_bundle(response.iter_bytes(), destination, digest=digest)
    except httpx.TransportError as exc:
        raise translate_transport_error(exc, server) from exc


async def download_bundle_async(
    http: httpx.AsyncClient, url: str, destination: Path, *, server: str
) -> list[str]:
    """As :func:`download_bundle`, awaited: the archive is spooled to a private file
    beside ``destination`` as it arrives, then unpacked and checked."""
    check_destination(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    timeout = httpx.Timeout(http.timeout.connect, read=EXPORT_READ_TIMEOUT)
    with tempfile.TemporaryFile(dir=destination.parent) as spool:
        try:
            async with http.stream("GET", url, timeout=timeout) as response:
                if not response.is_success:
                    await response.aread()
                    raise_for_error(response)
                digest = response.headers.get("x-aimass-bundle-digest")
                async for chunk in response.aiter_bytes():
                    spool.write(chunk)
        except httpx.TransportError as exc:
            raise translate_transport_error(exc, server) from exc
        spool.seek(0)
        chunks = iter(lambda: spool.read(SPOOL_CHUNK), b"")
        return unpack_bundle(chunks, destination, digest=digest)


def unpack_bundle(chunks: Iterator[bytes], destination: Path, *, digest: str | None) -> list[str]:
    """Unpack a streamed bundle archive into ``destination``; the file names.

    Args:
        chunks: The tar archive's bytes, as they arrive.
        destination: A new or empty directory.
        digest: The bundle digest the server named (``X-Aimass-Bundle-Digest``).

    Raises:
        InvalidArgument: ``destination`` is a file or not empty.
        BundleFormatError: an unsafe member, a broken archive, or files that do not
            match the manifest; nothing is left in ``destination``.
    """
    destination = Path(destination)
    check_destination(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{destination.name}.", dir=destination.parent))
    try:
        found = _extract(chunks, stage)
        _check_manifest(stage, found, digest)
        check_destination(destination)  # still empty: nobody wrote there meanwhile
        _move_in(stage, destination)
    finally:
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(stage)
    return sorted(found)
