"""Files and directories the artifact store writes: private modes and durable renames."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["fsync_dir", "fsync_tree", "make_private", "private_dir"]


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
