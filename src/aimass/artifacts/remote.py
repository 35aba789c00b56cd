"""Artifacts in object storage: upload with an index as commit marker, verified download.

Layout under the store's prefix, for an artifact key ``K`` (``bundles/<digest>``)::

    _index/K.json           the index: written last, so it is the commit marker
    K/<upload-id>           a file artifact's stored bytes, or
    K/<upload-id>/<path>    each file of a directory artifact

The index lists every file with its size and the SHA-256 of its *stored* bytes
(ciphertext when encrypted), so a reader checks what it downloaded before it
moves it into the local cache. An upload crashed half-way leaves objects no
index points at, never a half artifact that looks whole; each upload goes under
its own id, so two machines publishing the same key at once never mix their
files (the last index written wins, and it names a complete set). Artifact key
segments start with a letter or digit, so ``_index/`` never meets an artifact.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aimass.artifacts.bundle import file_sha256
from aimass.artifacts.objects import ObjectStore
from aimass.errors import BundleFormatError, NotFound

__all__ = ["IndexEntry", "RemoteArtifacts", "RemoteIndex"]

INDEX_PREFIX = "_index/"
FORMAT = 1
_UPLOAD_ID = re.compile(r"^[0-9a-f]{32}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class IndexEntry:
    """One stored file: its path inside the artifact (``""`` for a file artifact)."""

    path: str
    size: int
    sha256: str


@dataclass(frozen=True)
class RemoteIndex:
    """What one upload of an artifact holds; see the module docstring."""

    key: str
    upload: str
    kind: str  # "file" or "directory"
    files: tuple[IndexEntry, ...]

    def object_name(self, entry: IndexEntry) -> str:
        """The object holding ``entry``'s bytes."""
        base = f"{self.key}/{self.upload}"
        return f"{base}/{entry.path}" if entry.path else base

    def to_json(self) -> bytes:
        """The index as stored (sorted keys, one object)."""
        body = {
            "format": FORMAT,
            "key": self.key,
            "upload": self.upload,
            "kind": self.kind,
            "files": [vars(e) for e in self.files],
        }
        return json.dumps(body, sort_keys=True, indent=1).encode("utf-8")


def _safe_relative(path: str) -> bool:
    # The index comes from the bucket: none of its paths may leave the staging directory.
    parts = path.split("/")
    return all(p not in ("", ".", "..") and "\\" not in p and "\x00" not in p for p in parts)


def _damaged(key: str, where: str, problem: str) -> BundleFormatError:
    return BundleFormatError(
        f"artifact {key} in {where}: {problem}; the remote copy is damaged or was tampered "
        "with: restore it from a backup, or delete it and publish the artifact again",
        key=key,
    )


def parse_index(raw: bytes, key: str, where: str) -> RemoteIndex:
    """Validate an index read from the bucket; :class:`BundleFormatError` when malformed."""
    try:
        body: Any = json.loads(raw)
        files = tuple(
            IndexEntry(path=str(f["path"]), size=int(f["size"]), sha256=str(f["sha256"]))
            for f in body["files"]
        )
        index = RemoteIndex(
            key=str(body["key"]), upload=str(body["upload"]), kind=str(body["kind"]), files=files
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise _damaged(key, where, f"its index is not valid JSON of format {FORMAT}") from exc
    if body.get("format") != FORMAT:
        raise _damaged(key, where, f"its index has format {body.get('format')!r}, not {FORMAT}")
    if index.key != key:
        raise _damaged(key, where, f"its index describes another artifact ({index.key!r})")
    if not _UPLOAD_ID.fullmatch(index.upload) or index.kind not in ("file", "directory"):
        raise _damaged(key, where, "its index names no valid upload or kind")
    paths = [e.path for e in files]
    if index.kind == "file" and paths != [""]:
        raise _damaged(key, where, "its index lists other files than the file itself")
    if index.kind == "directory" and (
        len(set(paths)) != len(paths) or not all(_safe_relative(p) for p in paths)
    ):
        raise _damaged(key, where, "its index lists a path outside the artifact or twice")
    if any(e.size < 0 or not _SHA256.fullmatch(e.sha256) for e in files):
        raise _damaged(key, where, "its index lists a file without a valid size or SHA-256")
    return index


def _entries(local: Path) -> tuple[str, list[tuple[IndexEntry, Path]]]:
    """The kind of a local artifact and its files with their index entries."""
    if local.is_file():
        return "file", [(IndexEntry("", local.stat().st_size, file_sha256(local)), local)]
    found = []
    for dirpath, _dirs, names in os.walk(local):
        for name in sorted(names):
            path = Path(dirpath) / name
            if path.is_symlink():
                continue  # never followed locally, never uploaded
            rel = path.relative_to(local).as_posix()
            found.append((IndexEntry(rel, path.stat().st_size, file_sha256(path)), path))
    return "directory", sorted(found, key=lambda item: item[0].path)


class RemoteArtifacts:
    """Artifacts in an :class:`ObjectStore`, each committed by its index.

    Args:
        objects: The bucket (and prefix) artifacts live in.
    """

    def __init__(self, objects: ObjectStore) -> None:
        self.objects = objects

    def where(self) -> str:
        """The object store, for messages."""
        return self.objects.describe()

    def check(self) -> None:
        """Raise unless the bucket answers now and takes the credentials."""
        self.objects.check()

    def index(self, key: str) -> RemoteIndex | None:
        """The committed index of ``key``, or ``None`` when it has none."""
        raw = self.objects.get_bytes(f"{INDEX_PREFIX}{key}.json")
        return None if raw is None else parse_index(raw, key, self.where())

    def keys(self) -> list[str]:
        """Every key committed in the bucket, sorted."""
        names = self.objects.list(INDEX_PREFIX)
        return sorted(n[len(INDEX_PREFIX) : -len(".json")] for n in names if n.endswith(".json"))

    def has(self, key: str) -> bool:
        """Whether ``key`` is committed in the bucket."""
        return self.objects.exists(f"{INDEX_PREFIX}{key}.json")

    def committed_at(self, key: str) -> float | None:
        """When ``key``'s index was written (seconds since the epoch); ``None`` if uncommitted."""
        found = self.objects.stat(f"{INDEX_PREFIX}{key}.json")
        return found.modified if found is not None else None

    def touch(self, key: str) -> None:
        """Write ``key``'s index again as it is, so that :meth:`committed_at` is now."""
        raw = self.objects.get_bytes(f"{INDEX_PREFIX}{key}.json")
        if raw is not None:
            self.objects.put_bytes(raw, f"{INDEX_PREFIX}{key}.json")

    def upload(self, local: Path, key: str) -> RemoteIndex:
        """Upload ``local`` (a file or a directory) as ``key``, the index last.

        A previous upload of the same key (a mirrored run directory) is removed once
        the new index is in place, so readers see the old or the new, never a mix.
        """
        previous = self.index(key)
        kind, files = _entries(local)
        index = RemoteIndex(key, uuid.uuid4().hex, kind, tuple(e for e, _ in files))
        for entry, path in files:
            self.objects.put_file(path, index.object_name(entry))
        self.objects.put_bytes(index.to_json(), f"{INDEX_PREFIX}{key}.json")
        if previous is not None and previous.upload != index.upload:
            self._remove_upload(previous)
        return index

    def download(self, key: str, target: Path) -> bool:
        """Download ``key`` to ``target`` (a new path), checking every file against the index.

        Returns ``False`` when the bucket has no committed ``key``. A file whose size
        or SHA-256 differs from the index raises :class:`BundleFormatError` naming
        the key and the file; the caller discards ``target``.
        """
        index = self.index(key)
        if index is None:
            return False
        if index.kind == "directory":
            target.mkdir(mode=0o700)
        for entry in index.files:
            out = target / entry.path if entry.path else target
            out.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            self._fetch(index, entry, out)
        return True

    def _fetch(self, index: RemoteIndex, entry: IndexEntry, out: Path) -> None:
        shown = entry.path or Path(index.key).name
        try:
            self.objects.get_file(index.object_name(entry), out)
        except NotFound as exc:
            raise _damaged(index.key, self.where(), f"file {shown!r} is missing") from exc
        size = out.stat().st_size
        if size != entry.size:
            raise _damaged(
                index.key,
                self.where(),
                f"file {shown!r} has {size} bytes where its index says {entry.size}",
            )
        if file_sha256(out) != entry.sha256:
            raise _damaged(
                index.key, self.where(), f"file {shown!r} does not match the SHA-256 in its index"
            )

    def delete(self, key: str) -> None:
        """Remove ``key`` from the bucket: its index first (it vanishes at once), then its files.

        A damaged index is removed all the same (its files, unknown, stay behind).
        """
        try:
            index = self.index(key)
        except BundleFormatError:
            index = None
        self.objects.delete(f"{INDEX_PREFIX}{key}.json")
        if index is not None:
            self._remove_upload(index)

    def stray_uploads(self, tops: Collection[str]) -> dict[str, list[str]]:
        """Objects under the top-level directories ``tops`` (those aimass writes; nothing
        else in the bucket is looked at) that no committed index names, by upload
        (``K/<upload-id>``; an object in no upload slot by its own name): an upload that
        crashed before its index, the loser of two machines publishing one key at once,
        a delete stopped half-way."""
        names = self.objects.list("")
        live: dict[str, str] = {}
        for name in names:
            if name.startswith(INDEX_PREFIX) and name.endswith(".json"):
                key = name[len(INDEX_PREFIX) : -len(".json")]
                try:
                    index = self.index(key)
                except BundleFormatError:
                    index = None  # damaged: its files are unknown, so none is kept for it
                if index is not None:
                    live[key] = index.upload
        strays: dict[str, list[str]] = {}
        for name in names:
            segments = name.split("/")
            if segments[0] not in tops:  # the index itself, or not aimass's
                continue
            group = name
            for i in range(2, len(segments)):
                prefix = "/".join(segments[:i])
                if prefix in live:
                    group = "" if segments[i] == live[prefix] else f"{prefix}/{segments[i]}"
                    break
                if _UPLOAD_ID.fullmatch(segments[i]):
                    group = "/".join(segments[: i + 1])
                    break
            if group:
                strays.setdefault(group, []).append(name)
        return strays

    def remove_objects(self, names: list[str]) -> None:
        """Delete these objects (stray uploads found by :meth:`stray_uploads`)."""
        for name in names:
            self.objects.delete(name)

    def _remove_upload(self, index: RemoteIndex) -> None:
        base = f"{index.key}/{index.upload}"
        for name in self.objects.list(base):
            if name == base or name.startswith(f"{base}/"):
                self.objects.delete(name)
