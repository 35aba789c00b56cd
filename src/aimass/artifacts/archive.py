"""A bundle as a streamed, uncompressed tar archive (what the export endpoint sends).

The archive holds the bundle's files at its top level, plain files only, in name
order (``aimass.json`` and ``aimass.sig`` included), so that unpacked it is the
directory ``aimass models export`` writes locally. It is produced chunk by chunk
from open file handles and never held in memory: bundles can be gigabytes. Its
exact length is known before the first byte (``Content-Length``).

Every file is opened when the archive is built, so a decrypted copy that the
plaintext cache removes while the archive streams is still read in full.
"""

from __future__ import annotations

import os
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from aimass.artifacts.bundle import Manifest, verify_bundle
from aimass.errors import BundleFormatError

__all__ = ["BundleArchive", "open_bundle_archive"]

BLOCK = 512
CHUNK = 1 << 20


def _header(name: str, size: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o644
    info.type = tarfile.REGTYPE
    # PAX: sizes over 8 GiB (one unsharded checkpoint) get an extended header.
    return info.tobuf(format=tarfile.PAX_FORMAT, encoding="utf-8", errors="strict")


def _padding(size: int) -> int:
    return -size % BLOCK


class BundleArchive:
    """A verified bundle's files, ready to stream as a tar archive.

    Iterate it for the bytes; :meth:`close` releases the files (iterating to the
    end closes them too).
    """

    def __init__(self, manifest: Manifest, files: list[tuple[str, int, BinaryIO]]) -> None:
        self.manifest = manifest
        self._files = files
        self.names = [name for name, _, _ in files]
        self.size = (
            sum(len(_header(name, size)) + size + _padding(size) for name, size, _ in files)
            + 2 * BLOCK
        )

    def __iter__(self) -> Iterator[bytes]:
        try:
            for name, size, handle in self._files:
                yield _header(name, size)
                sent = 0
                while chunk := handle.read(CHUNK):
                    sent += len(chunk)
                    yield chunk
                if sent != size:
                    raise BundleFormatError(f"bundle file {name!r} changed while it was exported")
                yield b"\0" * _padding(size)
            yield b"\0" * (2 * BLOCK)  # end-of-archive marker
        finally:
            self.close()

    def close(self) -> None:
        """Close every file of the archive (idempotent)."""
        for _, _, handle in self._files:
            handle.close()


def open_bundle_archive(directory: Path) -> BundleArchive:
    """Verify the bundle in ``directory`` and open its files for :class:`BundleArchive`.

    Raises:
        BundleFormatError: the bundle does not verify (see :func:`verify_bundle`).
    """
    manifest = verify_bundle(directory)
    files: list[tuple[str, int, BinaryIO]] = []
    try:
        for path in sorted(Path(directory).iterdir(), key=lambda p: p.name):
            if path.is_symlink() or not path.is_file():
                raise BundleFormatError(f"bundle entry {path.name!r} is not a plain file")
            handle = open(path, "rb")  # noqa: SIM115 - closed by the archive
            files.append((path.name, os.fstat(handle.fileno()).st_size, handle))
    except OSError:
        for _, _, opened in files:
            opened.close()
        raise
    return BundleArchive(manifest, files)
