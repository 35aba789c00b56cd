"""Local artifact storage: content-addressed files and directories under one root.

Every write is atomic (temp name, fsync, rename), so a crash never leaves a half
artifact behind, and every key is checked to resolve inside the root before it
touches the filesystem (no traversal, no absolute paths, no symlinks). Artifacts
are private to the server's user: directories 0700, files 0600 (set on publish,
whatever umask the writer ran under).

With master keys, every file is encrypted as it is published (see
:mod:`aimass.artifacts.envelope`) and :meth:`ArtifactStore.resolve` hands readers
a decrypted copy (see :mod:`aimass.artifacts.plaintext`); keys stay the plaintext
content digests. With a signing key, every bundle published under ``bundles/`` is
signed first, and resolving one checks its signature before any weight is read.

With a remote (an :class:`~aimass.artifacts.objects.ObjectStore`, ``AIMASS_ARTIFACT_URL``),
the root is this process's cache: what is published is uploaded as well (see
:mod:`aimass.artifacts.remote`), and an artifact missing locally is downloaded,
checked file by file against its index, and moved into the cache atomically before
the usual signature and decryption steps.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from aimass.artifacts.bundle import (
    MANIFEST,
    bundle_digest,
    verify_bundle_signature,
    verify_manifest_signature,
)
from aimass.artifacts.envelope import (
    MasterKeys,
    decrypt_file,
    encrypt_file,
    is_encrypted,
    read_plaintext,
)
from aimass.artifacts.eviction import MIN_IDLE_SECONDS, CacheBudget
from aimass.artifacts.files import fsync_dir, fsync_tree, make_private, private_dir
from aimass.artifacts.objects import ObjectStore
from aimass.artifacts.plaintext import PlaintextCache, shared_cache
from aimass.artifacts.remote import RemoteArtifacts
from aimass.artifacts.signing import SIGNATURE, Signature, SigningKey, sign_digest
from aimass.errors import BundleFormatError, InvalidArgument, NotFound

__all__ = ["ArtifactStore", "fsync_dir", "fsync_tree", "make_private", "private_dir"]

log = logging.getLogger("aimass.artifacts")

# Keys are '/'-joined segments of safe characters; nothing else ever reaches a path.
_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
STAGING = ".staging"
BUNDLES = "bundles/"
# The top-level directories of published (immutable, content-addressed) artifacts; each
# entry in them is one artifact, except in the directories of ``NESTED``, whose entries are.
PUBLISHED = ("bundles", "datasets", "graphs", "reports")
NESTED = ("reports/privacy-audit",)
# Jobs' mutable scratch: ``runs/<job-id>/`` (TensorBoard logs, ``checkpoint/``).
RUNS = "runs/"


def _files(path: Path) -> Iterator[Path]:
    if path.is_file():
        yield path
        return
    for dirpath, _dirs, names in os.walk(path):
        for name in sorted(names):
            yield Path(dirpath) / name


def encrypt_tree(source: Path, keys: MasterKeys) -> None:
    """Encrypt every file under ``source`` in place (each replaced atomically)."""
    for path in list(_files(source)):
        if is_encrypted(path):
            continue
        sealed = path.with_name(f".{path.name}.sealed")
        encrypt_file(path, sealed, keys)
        os.replace(sealed, path)


def decrypt_tree(source: Path, target: Path, keys: MasterKeys | None) -> None:
    """Copy ``source`` to ``target``, decrypting the files that are encrypted."""
    if keys is None:
        raise _no_keys(source)
    if source.is_file():
        decrypt_file(source, target, keys)
        return
    target.mkdir(mode=0o700)
    for path in _files(source):
        out = target / path.relative_to(source)
        out.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if is_encrypted(path):
            decrypt_file(path, out, keys)
        else:
            shutil.copyfile(path, out)


def _no_keys(path: Path) -> InvalidArgument:
    return InvalidArgument(
        f"{path} is encrypted and this process has no master key; set AIMASS_MASTER_KEY, "
        "AIMASS_MASTER_KEY_COMMAND or AIMASS_MASTER_KEY_FILE to the keys it was written with",
        path=str(path),
    )


def _encrypted(path: Path) -> bool:
    # Any file: a migration interrupted half-way leaves an artifact partly encrypted.
    return any(is_encrypted(p) for p in _files(path))


class ArtifactStore:
    """A directory of immutable artifacts addressed by validated keys.

    Args:
        root: The artifact root (``AIMASS_ARTIFACT_ROOT``); created when missing.
        keys: Master keys: encrypted artifacts are decrypted for readers with them,
            and (with ``encrypt``) artifacts are encrypted as they are published.
            ``None`` writes plaintext and cannot read encrypted artifacts.
        encrypt: Encrypt what is published (when there are keys).
        signer: Signs every bundle published under ``bundles/``.
        trusted: Public keys (by key id) whose bundle signatures are accepted.
        require_signatures: Refuse to resolve a bundle without a trusted signature.
        plaintext: Where decrypted copies go (default: the process's shared cache).
        remote: Object storage that holds the artifacts; ``root`` is then a local
            cache of it (``None``: the root is the only copy).
        cache_max_bytes: With a remote, keep the local cache under this many bytes by
            removing the artifacts used least recently (see
            :mod:`aimass.artifacts.eviction`); ``None``: it keeps everything.
        cache_min_idle_seconds: How long an artifact must go unused before it may be
            removed from the cache.
    """

    def __init__(
        self,
        root: Path,
        *,
        keys: MasterKeys | None = None,
        encrypt: bool = True,
        signer: SigningKey | None = None,
        trusted: dict[str, bytes] | None = None,
        require_signatures: bool = False,
        plaintext: PlaintextCache | None = None,
        remote: ObjectStore | None = None,
        cache_max_bytes: int | None = None,
        cache_min_idle_seconds: float = MIN_IDLE_SECONDS,
    ) -> None:
        self.root = Path(root).expanduser().resolve()
        private_dir(self.root)
        self.keys = keys
        self.encrypt = encrypt
        self.signer = signer
        self.trusted = dict(trusted or {})
        if signer is not None:
            self.trusted[signer.key_id] = signer.public_raw
        self.require_signatures = require_signatures
        self._plaintext = plaintext
        self.remote = RemoteArtifacts(remote) if remote is not None else None
        self._namespace = hashlib.sha256(str(self.root).encode()).hexdigest()[:12]
        self._budget: CacheBudget | None = None
        if cache_max_bytes is not None:
            if self.remote is None:
                raise InvalidArgument(
                    "a bound on the artifact cache (AIMASS_ARTIFACT_CACHE_MAX_BYTES) needs "
                    "AIMASS_ARTIFACT_URL: without object storage the artifact root is the "
                    "only copy, and nothing in it may be removed"
                )
            self._budget = CacheBudget(
                self.root,
                self.root / STAGING / "used",
                cache_max_bytes,
                committed=self.remote.has,
                lock=self._try_lock,
                min_idle_seconds=cache_min_idle_seconds,
            )

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

    @property
    def write_keys(self) -> MasterKeys | None:
        """The keys new files are encrypted with (``None``: they are written in plaintext)."""
        return self.keys if self.encrypt else None

    def stored(self, uri: str) -> Path:
        """Where an existing artifact lies on disk (encrypted or not).

        With a remote, an artifact missing here is downloaded and verified first.
        """
        key = self.key_of(uri)
        path = self.path(key)
        if self.remote is not None and not path.exists() and not path.is_symlink():
            self._fetch(key, path)
        if not path.exists():
            where = f"{self.root} and {self.remote.where()}" if self.remote else str(self.root)
            raise NotFound(f"artifact {uri!r} is missing from {where}", uri=uri)
        if path.is_symlink():
            raise InvalidArgument(f"artifact {uri!r} is a symlink; refusing to follow it", uri=uri)
        if self._budget is not None:
            self._budget.touch(key)
        return path

    def resolve(self, uri: str) -> Path:
        """A readable path of an existing artifact: itself, or its decrypted copy.

        A bundle's signature is checked first when signatures are required.
        """
        key = self.key_of(uri)
        path = self.stored(uri)
        encrypted = _encrypted(path)
        if key.startswith(BUNDLES) and self.require_signatures:
            self.check_signature(key, path, encrypted)
        if not encrypted:
            return path
        cache = self._plaintext or shared_cache()
        return cache.get(
            f"{self._namespace}/{key}",
            lambda: sum(p.stat().st_size for p in _files(path)),
            lambda target: decrypt_tree(path, target, self.keys),
        )

    def is_encrypted(self, uri: str) -> bool:
        """Whether an existing artifact is stored encrypted."""
        return _encrypted(self.stored(uri))

    def plaintext_scope(self) -> AbstractContextManager[None]:
        """A context in which decrypted copies are removed once it ends (a job)."""
        return (self._plaintext or shared_cache()).scope()

    def check_signature(self, key: str, path: Path, encrypted: bool | None = None) -> Signature:
        """Verify a stored bundle's signature against this store's trusted keys.

        Only the manifest and the signature are read (decrypted in memory when
        encrypted), never the weights.
        """
        if encrypted is None:
            encrypted = _encrypted(path)
        if not encrypted:
            return verify_bundle_signature(path, trusted=self.trusted)
        if self.keys is None:
            raise _no_keys(path)
        if not (path / MANIFEST).is_file():
            raise BundleFormatError(f"bundle {key} has no {MANIFEST}", bundle=key)
        signature = path / SIGNATURE
        return verify_manifest_signature(
            read_plaintext(path / MANIFEST, self.keys),
            read_plaintext(signature, self.keys) if signature.is_file() else None,
            key,
            trusted=self.trusted,
        )

    def exists(self, key: str) -> bool:
        """Whether ``key`` is present (here, or committed in the remote)."""
        if self.path(key).exists():
            return True
        return self.remote is not None and self.remote.has(key)

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
        the staged copy is dropped and the existing artifact is kept. With a remote,
        the stored artifact is then uploaded unless the remote has it committed.
        """
        target = self.path(key)
        if not target.exists():
            private_dir(target.parent)
            if key.startswith(BUNDLES) and self.signer is not None:
                self.sign_in_place(source)
            if self.write_keys is not None:
                encrypt_tree(source, self.write_keys)
            _install(source, target)
        else:
            # Published again (the same content): it is new to whoever publishes it now,
            # so garbage collection's grace period must start again.
            os.utime(target)
        if self.remote is not None:
            with self._lock(key):
                if self.remote.has(key):
                    self.remote.touch(key)
                else:
                    self.remote.upload(target, key)
            self._used(key)
        return self.uri(key)

    def sign_in_place(self, bundle: Path) -> None:
        """Write ``aimass.sig`` into a plaintext bundle directory with this store's key."""
        if not (bundle / MANIFEST).is_file():
            raise BundleFormatError(f"{bundle} is published as a bundle but has no {MANIFEST}")
        assert self.signer is not None
        (bundle / SIGNATURE).write_bytes(sign_digest(self.signer, bundle_digest(bundle)))

    def delete(self, key: str) -> None:
        """Remove ``key`` (file or directory) if present, from the remote too."""
        path = self.path(key)
        if self.remote is not None:
            self.remote.delete(key)
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()

    def _fetch(self, key: str, target: Path) -> None:
        """Download ``key`` from the remote into the cache (nothing when it has none).

        A per-key lock makes a second fetch of the same key (another thread or
        process on this root) wait and then find the first one's copy.
        """
        assert self.remote is not None
        with self._lock(key):
            if target.exists():
                return
            with self.staging() as stage:
                if not self.remote.download(key, stage / "artifact"):
                    return
                private_dir(target.parent)
                _install(stage / "artifact", target)
        self._used(key)

    def _used(self, key: str) -> None:
        """Record a use of ``key`` and keep the cache within its bound (if it has one)."""
        if self._budget is None:
            return
        self._budget.touch(key)
        with self._try_lock(".trim") as held:
            if not held:  # another thread or process is trimming: that is enough
                return
            try:
                self._budget.trim(self.path, self.root / STAGING)
            except Exception:  # the artifact itself is in place; trimming is best effort
                log.warning("trimming the artifact cache failed", exc_info=True)

    def trim_cache(self) -> list[str]:
        """Remove least-recently-used artifacts until the cache fits its bound; the keys
        removed (nothing without a bound)."""
        if self._budget is None:
            return []
        with self._try_lock(".trim") as held:
            return self._budget.trim(self.path, self.root / STAGING) if held else []

    def mirror_up(self, key: str) -> None:
        """Upload the mutable directory ``key`` (a run's checkpoint), replacing the remote copy.

        No-op without a remote or when ``key`` is missing here.
        """
        path = self.path(key)
        if self.remote is not None and path.exists():
            with self._lock(key):
                self.remote.upload(path, key)

    def mirror_down(self, key: str) -> bool:
        """Replace the local ``key`` with the remote's copy; ``False`` when it has none."""
        if self.remote is None:
            return False
        target = self.path(key)
        with self._lock(key), self.staging() as stage:
            if not self.remote.download(key, stage / "new"):
                return False
            private_dir(target.parent)
            if target.exists():
                os.rename(target, stage / "old")
            _install(stage / "new", target)
        return True

    def check_remote(self) -> None:
        """Raise unless the remote answers now (nothing to check without one): readiness."""
        if self.remote is not None:
            self.remote.check()

    def remote_keys(self) -> list[str]:
        """Every key committed in the remote (empty without one)."""
        return self.remote.keys() if self.remote is not None else []

    def in_remote(self, key: str) -> bool:
        """Whether the remote holds ``key`` committed (``False`` without a remote)."""
        self.path(key)
        return self.remote is not None and self.remote.has(key)

    @contextmanager
    def _try_lock(self, key: str) -> Iterator[bool]:
        """``_lock`` without waiting: yields whether it was taken."""
        fd = self._lock_fd(key)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            yield True
        finally:
            os.close(fd)

    def _lock_fd(self, key: str) -> int:
        locks = self.root / STAGING / "locks"
        private_dir(locks)
        name = hashlib.sha256(key.encode()).hexdigest()[:32]
        return os.open(locks / name, os.O_RDWR | os.O_CREAT, 0o600)

    @contextmanager
    def _lock(self, key: str) -> Iterator[None]:
        """An exclusive lock on ``key`` among the threads and processes sharing this root."""
        fd = self._lock_fd(key)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock


def _install(source: Path, target: Path) -> None:
    """Move a finished file or directory to ``target`` atomically (private, flushed first).

    When ``target`` appeared meanwhile (a concurrent writer of the same content)
    theirs is kept.
    """
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
    fsync_dir(target.parent)
