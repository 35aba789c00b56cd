"""A size bound for the local cache of artifacts kept in object storage.

With ``AIMASS_ARTIFACT_URL`` the artifact root is only a cache: every published
artifact is in the bucket too. Left alone it keeps everything it ever downloaded
or published. :class:`CacheBudget` keeps it under ``max_bytes`` by removing the
artifacts used least recently, and only those that are safe to remove:

* committed in the bucket (a copy that is the only one is never removed);
* published, content-addressed ones (``bundles/``, ``datasets/``, ``reports/``),
  never a run's mutable scratch (``runs/``: a running job's checkpoints);
* idle for ``min_idle_seconds`` (a runner reading a bundle's files as it loads
  keeps it: a loaded model needs its files no more);
* not being fetched or written this moment (the artifact's own lock is taken
  without waiting: a busy one is skipped).

"Used" is recorded in a ledger under the root's staging directory, one small file
per artifact whose modification time is its last use (reads go through
:meth:`~aimass.artifacts.storage.ArtifactStore.stored`); an artifact cached before the
bound was set counts once it is used again. A removed artifact is downloaded again,
and verified, the next time it is read.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path

from aimass.errors import InvalidArgument

__all__ = ["EVICTABLE", "MIN_IDLE_SECONDS", "CacheBudget"]

log = logging.getLogger("aimass.artifacts")

#: Key prefixes whose artifacts may leave the cache (immutable, published).
EVICTABLE = ("bundles/", "datasets/", "reports/")
MIN_IDLE_SECONDS = 300.0


class CacheBudget:
    """Keeps the artifacts under ``root`` within ``max_bytes`` (see the module docstring).

    Args:
        root: The artifact root (the cache).
        ledger: Where last uses are recorded (under the root's staging directory).
        max_bytes: The bound for everything under ``root`` but its staging directory.
        committed: Whether the bucket holds a key committed.
        lock: A key's lock, taken without waiting (``None`` when another holds it).
        min_idle_seconds: How long an artifact must have gone unused to be removed.
    """

    def __init__(
        self,
        root: Path,
        ledger: Path,
        max_bytes: int,
        *,
        committed: Callable[[str], bool],
        lock: Callable[[str], AbstractContextManager[bool]],
        min_idle_seconds: float = MIN_IDLE_SECONDS,
    ) -> None:
        self.root = root
        self.ledger = ledger
        self.max_bytes = max_bytes
        self.committed = committed
        self.lock = lock
        self.min_idle_seconds = min_idle_seconds

    def touch(self, key: str) -> None:
        """Record that ``key`` was used now."""
        if not key.startswith(EVICTABLE):
            return
        entry = self.ledger / hashlib.sha256(key.encode()).hexdigest()[:32]
        self.ledger.mkdir(mode=0o700, parents=True, exist_ok=True)
        staged = entry.with_name(f".{entry.name}.{uuid.uuid4().hex}")
        staged.write_text(key, encoding="utf-8")
        os.replace(staged, entry)  # a trim listing the ledger never reads half an entry

    def used_bytes(self, skip: str) -> int:
        """Bytes of every file under the root but the directory ``skip`` (staging)."""
        total = 0
        for dirpath, dirs, names in os.walk(self.root):
            if Path(dirpath) == self.root:
                dirs[:] = [d for d in dirs if d != skip]
            for name in names:
                try:
                    total += (Path(dirpath) / name).stat().st_size
                except FileNotFoundError:  # removed meanwhile
                    continue
        return total

    def trim(self, path_of: Callable[[str], Path], staging: Path) -> list[str]:
        """Remove least-recently-used artifacts until the cache fits; the keys removed.

        Stops short of the bound (and says so in the log) when what is left is
        in use, recent, not committed in the bucket or not removable.
        """
        used = self.used_bytes(staging.name)
        if used <= self.max_bytes:
            return []
        removed: list[str] = []
        now = time.time()
        for key, last_used, entry in self._oldest_first():
            if used <= self.max_bytes:
                break
            if now - last_used < self.min_idle_seconds:
                break  # the rest are newer still
            try:
                path = path_of(key)
            except InvalidArgument:  # not a key aimass wrote: forget it
                entry.unlink(missing_ok=True)
                continue
            if not path.exists():
                entry.unlink(missing_ok=True)
                continue
            if not self.committed(key):
                continue
            with self.lock(key) as held:
                if not held or self._used_since(entry, now):
                    continue  # being fetched or written, or read since the ledger was listed
                size = _size(path)
                doomed = staging / f"evicted-{uuid.uuid4().hex}"
                os.rename(path, doomed)  # atomic: a reader sees the whole artifact or none
                entry.unlink(missing_ok=True)
            if doomed.is_dir():
                shutil.rmtree(doomed)
            else:
                doomed.unlink()
            used -= size
            removed.append(key)
        if removed:
            log.info(
                "artifact cache over %d bytes: removed %d least recently used artifacts "
                "(%s); %d bytes now",
                self.max_bytes,
                len(removed),
                ", ".join(removed[:5]),
                used,
            )
        if used > self.max_bytes:
            log.warning(
                "artifact cache holds %d bytes, above its bound of %d: what is left was used "
                "in the last %.0f s, is not committed in the bucket, or is a run's scratch",
                used,
                self.max_bytes,
                self.min_idle_seconds,
            )
        return removed

    def _used_since(self, entry: Path, now: float) -> bool:
        """Whether the artifact of ledger ``entry`` was used within the idle time of ``now``."""
        try:
            return now - entry.stat().st_mtime < self.min_idle_seconds
        except FileNotFoundError:
            return False

    def _oldest_first(self) -> Iterator[tuple[str, float, Path]]:
        entries = []
        for entry in self.ledger.iterdir() if self.ledger.is_dir() else ():
            if entry.name.startswith("."):  # an entry being written
                continue
            try:
                entries.append((entry.stat().st_mtime, entry.read_text("utf-8"), entry))
            except FileNotFoundError:
                continue
        for mtime, key, entry in sorted(entries):
            yield key, mtime, entry


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
