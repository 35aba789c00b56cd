"""Decrypted copies of encrypted artifacts, for the readers that need a path.

Model loaders (transformers, tokenizers) and dataset readers (pyarrow) read files
by path, so an encrypted artifact is decrypted once into a private directory of
this process and read from there. The directory lives in memory-backed
``/dev/shm`` when it has room (else the system temporary directory), is 0700, and
is removed when the process exits; copies left behind by a process that crashed
are removed by the next process that starts one.

A copy used inside :meth:`PlaintextCache.scope` (a job) is removed when the last
scope holding it ends; one used outside any scope (a model the server loads, a
path a caller keeps) stays until the process exits, because whoever asked for it
may read it at any time.
"""

from __future__ import annotations

import atexit
import contextvars
import os
import shutil
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["PlaintextCache", "shared_cache"]

_PREFIX = "aimass-plain-"
# Memory-backed, so decrypted copies never reach a disk; the directory made in it
# is 0700 and named per process (S108's shared-/tmp race does not apply).
_SHM = Path("/dev/shm")  # noqa: S108
# Holds the copies used outside any scope, for the life of the process.
_PROCESS = "process"
# The scopes the current job (thread or task) is inside of.
_SCOPES: contextvars.ContextVar[tuple[int, ...]] = contextvars.ContextVar(
    "aimass_plaintext_scopes", default=()
)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _purge_orphans(parent: Path) -> None:
    """Remove copies left by processes of this user that are gone."""
    try:
        entries = list(parent.iterdir())
    except OSError:
        return
    for entry in entries:
        if not entry.name.startswith(_PREFIX):
            continue
        try:
            pid = int(entry.name[len(_PREFIX) :].split("-", 1)[0])
            owned = entry.stat().st_uid == os.getuid()
        except (ValueError, OSError):
            continue
        if owned and pid != os.getpid() and not _alive(pid):
            shutil.rmtree(entry, ignore_errors=True)


def _free_bytes(path: Path) -> int:
    try:
        stat = os.statvfs(path)
    except OSError:
        return 0
    return stat.f_bavail * stat.f_frsize


class PlaintextCache:
    """Per-process decrypted copies of artifacts, keyed by artifact key.

    Args:
        parent: Where the private directory goes; default ``/dev/shm`` when it has
            room for a copy, else the system temporary directory.
    """

    def __init__(self, parent: Path | None = None) -> None:
        self._parent = parent
        self._lock = threading.Lock()
        self._next_scope = 0
        self._reset()
        atexit.register(self.clear)

    def _reset(self) -> None:
        self._owner = os.getpid()
        self._roots: dict[Path, Path] = {}
        self._entries: dict[str, Path] = {}
        self._holders: dict[str, set[object]] = {}

    def _forked(self) -> None:
        # A forked child inherits the parent's bookkeeping but must never remove
        # the parent's copies: it starts its own.
        if self._owner != os.getpid():
            self._reset()

    def _root(self, size: int) -> Path:
        if self._parent is not None:
            parent = self._parent
        elif _SHM.is_dir() and os.access(_SHM, os.W_OK) and _free_bytes(_SHM) > size * 1.2:
            parent = _SHM
        else:
            parent = Path(tempfile.gettempdir())
        root = self._roots.get(parent)
        if root is None:
            parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            _purge_orphans(parent)
            root = parent / f"{_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:8]}"
            root.mkdir(mode=0o700)
            self._roots[parent] = root
        return root

    def get(self, key: str, size: Callable[[], int], decrypt: Callable[[Path], None]) -> Path:
        """The decrypted copy of artifact ``key``, made by ``decrypt(target)`` if missing.

        ``decrypt`` writes the plaintext file or directory at the path it is given;
        the copy appears under its final name only once complete. ``size()`` (bytes
        the copy needs, to choose where it goes) is asked only when it is missing.
        """
        scopes: tuple[object, ...] = _SCOPES.get() or (_PROCESS,)
        with self._lock:
            self._forked()
            path = self._entries.get(key)
            if path is not None and path.exists():
                self._hold(key, scopes)
                return path
            root = self._root(size())
        target = root / key
        staged = root / ".partial" / uuid.uuid4().hex
        staged.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            decrypt(staged)
            target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            with self._lock:
                if not target.exists():
                    os.rename(staged, target)
                self._entries[key] = target
                self._hold(key, scopes)
        finally:
            if staged.is_dir():
                shutil.rmtree(staged, ignore_errors=True)
            elif staged.exists():
                staged.unlink()
        return target

    def _hold(self, key: str, holders: tuple[object, ...]) -> None:
        self._holders.setdefault(key, set()).update(holders)

    @contextmanager
    def scope(self) -> Iterator[None]:
        """Copies made inside are removed when the last scope that used them ends."""
        with self._lock:
            self._next_scope += 1
            scope = self._next_scope
        token = _SCOPES.set((*_SCOPES.get(), scope))
        try:
            yield
        finally:
            _SCOPES.reset(token)
            self._release(scope)

    def _release(self, holder: object) -> None:
        with self._lock:
            self._forked()
            for key in [k for k, held in self._holders.items() if holder in held]:
                held = self._holders[key]
                held.discard(holder)
                if held:
                    continue
                del self._holders[key]
                path = self._entries.pop(key, None)
                if path is not None:
                    _remove(path)

    def held(self) -> list[str]:
        """Keys with a decrypted copy now (for tests and ``aimass secrets status``)."""
        with self._lock:
            self._forked()
            return sorted(k for k, p in self._entries.items() if p.exists())

    def clear(self) -> None:
        """Remove every copy this process made (at exit)."""
        with self._lock:
            self._forked()
            for root in self._roots.values():
                shutil.rmtree(root, ignore_errors=True)
            self._roots.clear()
            self._entries.clear()
            self._holders.clear()


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists():
        path.unlink()


_SHARED: dict[Path | None, PlaintextCache] = {}
_SHARED_LOCK = threading.Lock()


def shared_cache(parent: Path | None = None) -> PlaintextCache:
    """The process's cache for ``parent``, shared by every artifact store in it."""
    with _SHARED_LOCK:
        if parent not in _SHARED:
            _SHARED[parent] = PlaintextCache(parent)
        return _SHARED[parent]
