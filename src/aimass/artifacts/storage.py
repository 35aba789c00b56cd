"""Local artifact storage: content-addressed files and directories under one root.

Every write is atomic (temp name, fsync, rename), so a crash never leaves a half
artifact behind, and every key is checked to resolve inside the root before it
touches the filesystem (no traversal, no absolute paths, no symlinks). Artifacts
are private to the server's user: directories 0700, files 0600 (set on publish,
whatever umask the writer ran under).
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from aimass.errors import InvalidArgument, NotFound

__all__ = ["ArtifactStore", "fsync_dir", "fsync_tree", "make_private", "private_dir"]

# Keys are '/'-joined segments of safe characters; nothing else ever reaches a path.
_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
STAGING = ".staging"


def fsync_dir(path: Path) -> None:
    """Flush a directory entry to disk (after a rename into it)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(path: Path) -> None:
    """Flush every file under ``path`` and the directories themselves."""
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            with open(Path(dirpath) / name, "rb+") as handle:
                os.fsync(handle.fileno())
        fsync_dir(Path(dirpath))


def private_dir(path: Path) -> None:
    """``mkdir -p path`` with every directory it creates 0700, and ``path`` itself 0700.

    An existing ``path`` owned by another user is left as it is (its owner decides).
    """
    missing = []
    current = path
    while not current.exists():
        missing.append(current)
        current = current.parent
    for directory in reversed(missing):
        directory.mkdir(mode=0o700, exist_ok=True)
    found = path.stat()
    if found.st_mode & 0o077 and found.st_uid == os.getuid():
        os.chmod(path, 0o700)


def make_private(path: Path) -> None:
    """Directories under ``path`` 0700, files 0600; symlinks are neither followed nor changed."""
    if path.is_symlink():
        return
    if not path.is_dir():
        os.chmod(path, 0o600)
        return
    os.chmod(path, 0o700)
    for dirpath, dirs, files in os.walk(path):
        for name in dirs:
            if not os.path.islink(os.path.join(dirpath, name)):
                os.chmod(os.path.join(dirpath, name), 0o700)
        for name in files:
            if not os.path.islink(os.path.join(dirpath, name)):
                os.chmod(os.path.join(dirpath, name), 0o600)


class ArtifactStore:
    """A directory of immutable artifacts addressed by validated keys.

    Args:
        root: The artifact root (``AIMASS_ARTIFACT_ROOT``); created when missing.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root).expanduser().resolve()
        private_dir(self.root)

    def path(self, key: str) -> Path:
        """The absolute path of ``key``, guaranteed to be inside the root."""
        segments = key.split("/")
        if not key or any(not _SEGMENT.fullmatch(s) or ".." in s for s in segments):
            raise InvalidArgument(
                f"invalid artifact key {key[:100]!r}: use '/'-separated segments of letters, "
                "digits, '.', '_' and '-'",
                key=key[:100],
            )
        candidate = (self.root / key).resolve()
        if os.path.commonpath([self.root, candidate]) != str(self.root):
            raise InvalidArgument(f"artifact key {key!r} escapes the artifact root", key=key)
        return candidate

    def uri(self, key: str) -> str:
        """The stable URI recorded in the store for ``key``."""
        self.path(key)
        return f"artifacts:{key}"

    def key_of(self, uri: str) -> str:
        """The key of an ``artifacts:`` URI (validated)."""
        prefix = "artifacts:"
        if not uri.startswith(prefix):
            raise InvalidArgument(f"not an artifact URI: {uri[:100]!r}", uri=uri[:100])
        key = uri[len(prefix) :]
        self.path(key)
        return key

    def resolve(self, uri: str) -> Path:
        """The local path of an existing artifact URI."""
        path = self.path(self.key_of(uri))
        if not path.exists():
            raise NotFound(f"artifact {uri!r} is missing from {self.root}", uri=uri)
        if path.is_symlink():
            raise InvalidArgument(f"artifact {uri!r} is a symlink; refusing to follow it", uri=uri)
        return path

    def exists(self, key: str) -> bool:
        """Whether ``key`` is present."""
        return self.path(key).exists()

    @contextmanager
    def staging(self) -> Iterator[Path]:
        """A fresh private directory on the same filesystem; removed afterwards."""
        stage = self.root / STAGING / uuid.uuid4().hex
        private_dir(stage)
        try:
            yield stage
        finally:
            shutil.rmtree(stage, ignore_errors=True)

    def publish(self, source: Path, key: str) -> str:
        """Atomically move a staged file or directory to ``key``; returns its URI.

        Content-addressed keys make this idempotent: when ``key`` exists already
        the staged copy is dropped and the existing artifact is kept.
        """
        target = self.path(key)
        if target.exists():
            return self.uri(key)
        private_dir(target.parent)
        make_private(source)
        if source.is_dir():
            fsync_tree(source)
        else:
            with open(source, "rb+") as handle:
                os.fsync(handle.fileno())
        try:
            os.rename(source, target)
        except OSError:
            if not target.exists():
                raise
            # A concurrent writer published the same content first: keep theirs.
        fsync_dir(target.parent)
        return self.uri(key)

    def delete(self, key: str) -> None:
        """Remove ``key`` (file or directory) if present."""
        path = self.path(key)
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
