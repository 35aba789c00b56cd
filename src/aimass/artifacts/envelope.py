"""Envelope encryption at rest: AES-256-GCM, a data key per file, wrapped by a master key.

Every encrypted file is self-contained::

    magic        8 bytes   b"AIMASSE1"
    key_id      16 bytes   which master key wrapped the data key (hex of its fingerprint)
    wrapped     60 bytes   the file's 32-byte data key, AES-256-GCM under the master key
                           (12-byte nonce, ciphertext, 16-byte tag)
    prefix       7 bytes   random nonce prefix of this file
    chunk_size   4 bytes   plaintext bytes per chunk (big-endian)
    size         8 bytes   plaintext size (big-endian)
    chunks                 AES-256-GCM of each chunk under the data key, 16-byte tag each

Chunks follow the STREAM construction (Hoang, Reyhanitabar, Rogaway, Vizár 2015):
chunk ``i`` uses the nonce ``prefix || i (4 bytes) || last (1 byte)`` and the fixed
header fields as associated data, so chunks cannot be reordered, dropped, truncated
or moved to another file without the tag check failing. Large weights therefore
stream through a fixed amount of memory.

The master key never touches an artifact: rotating it (:meth:`MasterKeys.rewrap`)
rewrites only the 60-byte wrapped key in each header, in place, and content
digests (the identity of datasets and bundles) are digests of the plaintext, so
they do not change.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import shlex
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from aimass.errors import FailedPrecondition, InvalidArgument

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = [
    "CHUNK_SIZE",
    "MAGIC",
    "MasterKeys",
    "decrypt_file",
    "encrypt_file",
    "header_key_id",
    "is_encrypted",
    "key_id_of",
    "read_plaintext",
]

MAGIC = b"AIMASSE1"
CHUNK_SIZE = 1 << 20
_KEY_ID = 16
_WRAPPED = 12 + 32 + 16
_PREFIX = 7
_HEADER = len(MAGIC) + _KEY_ID + _WRAPPED + _PREFIX + 4 + 8
_TAG = 16
_WRAP_CONTEXT = b"aimass.data-key.v1:"


def _aesgcm(key: bytes) -> AESGCM:
    # Imported on use: the SDK-only install has no cryptography, and it never encrypts.
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    return AESGCM(key)


def key_id_of(key: bytes) -> str:
    """A master key's public identifier: 16 hex characters of a SHA-256 over it."""
    return hashlib.sha256(b"aimass.master-key:" + key).hexdigest()[:_KEY_ID]


def _decode_key(text: str, source: str) -> bytes:
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except ValueError:
        key = b""
    if len(key) != 32:
        raise InvalidArgument(
            f"the master key from {source} is not 32 bytes of base64; make one with "
            "'aimass secrets new-key'",
            source=source,
        )
    return key


@dataclass
class MasterKeys:
    """The master keys that wrap data keys: one active (wraps new files), older ones to unwrap.

    Attributes:
        active: Key id of the key new files are wrapped with.
        keys: Every known key, by key id.
        source: Where the keys came from (a file path, an environment variable or a
            command), for messages.
    """

    active: str
    keys: dict[str, bytes]
    source: str = "memory"
    _unwrapped: dict[bytes, bytes] = field(default_factory=dict, repr=False)

    @classmethod
    def generate(cls, source: str = "memory") -> MasterKeys:
        """A keyring with one fresh random key."""
        key = secrets.token_bytes(32)
        return cls(active=key_id_of(key), keys={key_id_of(key): key}, source=source)

    @classmethod
    def parse(cls, text: str, source: str) -> MasterKeys:
        """Keys from text: one base64 key, or ``{"active": ID, "keys": {ID: base64}}``."""
        text = text.strip()
        if not text.startswith("{"):
            key = _decode_key(text, source)
            return cls(active=key_id_of(key), keys={key_id_of(key): key}, source=source)
        try:
            data = json.loads(text)
            keys = {str(k): _decode_key(str(v), source) for k, v in data["keys"].items()}
            active = str(data["active"])
        except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
            raise InvalidArgument(
                f"the master keys in {source} are not a base64 key or "
                '{"active": ID, "keys": {ID: BASE64}}',
                source=source,
            ) from exc
        for kid, key in keys.items():
            if key_id_of(key) != kid:
                raise InvalidArgument(
                    f"master key {kid!r} in {source} does not match its id (it is "
                    f"{key_id_of(key)}); key ids are derived from the keys",
                    source=source,
                )
        if active not in keys:
            raise InvalidArgument(
                f"the active master key {active!r} in {source} is not among its keys",
                source=source,
            )
        return cls(active=active, keys=keys, source=source)

    @classmethod
    def from_command(cls, command: str) -> MasterKeys:
        """Keys printed on stdout by an external command (a KMS or secret-manager client).

        The command is split like a shell would, but no shell runs it.
        """
        try:
            done = subprocess.run(  # noqa: S603 (an operator-configured command, no shell)
                shlex.split(command), capture_output=True, text=True, timeout=60, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise FailedPrecondition(
                f"the master key command {command!r} could not run: {exc}", command=command
            ) from exc
        if done.returncode != 0:
            raise FailedPrecondition(
                f"the master key command {command!r} exited with {done.returncode}: "
                f"{done.stderr.strip()[:300]}",
                command=command,
            )
        return cls.parse(done.stdout, f"command {command!r}")

    def to_json(self) -> str:
        """The keyring as the JSON a key file holds."""
        encoded = {k: base64.b64encode(v).decode() for k, v in sorted(self.keys.items())}
        return json.dumps({"active": self.active, "keys": encoded}, indent=2) + "\n"

    def with_new_active(self) -> MasterKeys:
        """This keyring plus a fresh key, which becomes the active one."""
        key = secrets.token_bytes(32)
        kid = key_id_of(key)
        return MasterKeys(active=kid, keys={**self.keys, kid: key}, source=self.source)

    def only_active(self) -> MasterKeys:
        """This keyring without its retired keys."""
        return MasterKeys(
            active=self.active, keys={self.active: self.keys[self.active]}, source=self.source
        )

    def wrap(self, data_key: bytes) -> tuple[str, bytes]:
        """``(key_id, wrapped)`` of a data key under the active master key."""
        nonce = secrets.token_bytes(12)
        aad = _WRAP_CONTEXT + self.active.encode()
        return self.active, nonce + _aesgcm(self.keys[self.active]).encrypt(nonce, data_key, aad)

    def unwrap(self, key_id: str, wrapped: bytes, path: Path) -> bytes:
        """The data key of a header; the error names the file and the missing key."""
        cached = self._unwrapped.get(wrapped)
        if cached is not None:
            return cached
        master = self.keys.get(key_id)
        if master is None:
            raise FailedPrecondition(
                f"{path} is encrypted with master key {key_id}, which {self.source} does not "
                f"hold (it holds {', '.join(sorted(self.keys))}); restore that key, or the "
                "keyring from before the last rotation",
                path=str(path),
                key_id=key_id,
            )
        from cryptography.exceptions import InvalidTag

        try:
            key = _aesgcm(master).decrypt(
                wrapped[:12], wrapped[12:], _WRAP_CONTEXT + key_id.encode()
            )
        except InvalidTag:
            raise FailedPrecondition(
                f"the data key of {path} does not unwrap under master key {key_id}: the "
                "header was modified",
                path=str(path),
            ) from None
        self._unwrapped[wrapped] = key
        return key

    def rewrap(self, path: Path) -> bool:
        """Re-wrap the data key of an encrypted file under the active key, in place.

        Returns whether the header changed. Only the key id and wrapped key are
        rewritten (76 bytes), so the ciphertext and the content digest stay.
        """
        with open(path, "rb+") as handle:
            header = handle.read(_HEADER)
            key_id, wrapped = _parse_header(header, path)[:2]
            if key_id == self.active:
                return False
            data_key = self.unwrap(key_id, wrapped, path)
            new_id, new_wrapped = self.wrap(data_key)
            handle.seek(len(MAGIC))
            handle.write(new_id.encode() + new_wrapped)
            handle.flush()
            os.fsync(handle.fileno())
        return True


def is_encrypted(path: Path) -> bool:
    """Whether ``path`` is a file in this envelope format."""
    try:
        with open(path, "rb") as handle:
            return handle.read(len(MAGIC)) == MAGIC
    except (IsADirectoryError, FileNotFoundError):
        return False


def _parse_header(header: bytes, path: Path) -> tuple[str, bytes, bytes, int, int]:
    if len(header) < _HEADER or not header.startswith(MAGIC):
        raise FailedPrecondition(f"{path} is not an encrypted aimass artifact", path=str(path))
    at = len(MAGIC)
    key_id = header[at : at + _KEY_ID].decode("ascii", errors="replace")
    at += _KEY_ID
    wrapped = header[at : at + _WRAPPED]
    at += _WRAPPED
    prefix = header[at : at + _PREFIX]
    at += _PREFIX
    chunk_size = int.from_bytes(header[at : at + 4], "big")
    size = int.from_bytes(header[at + 4 : at + 12], "big")
    if chunk_size <= 0:
        raise FailedPrecondition(f"{path} has a corrupt encryption header", path=str(path))
    return key_id, wrapped, prefix, chunk_size, size


def header_key_id(path: Path) -> str:
    """The master key id an encrypted file's data key is wrapped with."""
    with open(path, "rb") as handle:
        return _parse_header(handle.read(_HEADER), path)[0]


def _associated(prefix: bytes, chunk_size: int, size: int) -> bytes:
    # The fixed header fields minus the (rotatable) wrapped key.
    return MAGIC + prefix + chunk_size.to_bytes(4, "big") + size.to_bytes(8, "big")


def _nonce(prefix: bytes, index: int, last: bool) -> bytes:
    return prefix + index.to_bytes(4, "big") + (b"\x01" if last else b"\x00")


def encrypt_file(source: Path, destination: Path, keys: MasterKeys) -> None:
    """Encrypt ``source`` into ``destination`` (created 0600, fsynced)."""
    size = source.stat().st_size
    chunks = max(1, -(-size // CHUNK_SIZE))
    if chunks >= 1 << 32:
        raise InvalidArgument(f"{source} is too large to encrypt ({size} bytes)")
    data_key = secrets.token_bytes(32)
    key_id, wrapped = keys.wrap(data_key)
    prefix = secrets.token_bytes(_PREFIX)
    aad = _associated(prefix, CHUNK_SIZE, size)
    cipher = _aesgcm(data_key)
    fd = os.open(destination, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with open(fd, "wb") as out, open(source, "rb") as handle:
        out.write(MAGIC + key_id.encode() + wrapped + prefix)
        out.write(CHUNK_SIZE.to_bytes(4, "big") + size.to_bytes(8, "big"))
        for index in range(chunks):
            chunk = handle.read(CHUNK_SIZE)
            out.write(cipher.encrypt(_nonce(prefix, index, index == chunks - 1), chunk, aad))
        out.flush()
        os.fsync(out.fileno())


def _plain_chunks(path: Path, keys: MasterKeys) -> Iterator[bytes]:
    from cryptography.exceptions import InvalidTag

    with open(path, "rb") as handle:
        key_id, wrapped, prefix, chunk_size, size = _parse_header(handle.read(_HEADER), path)
        cipher = _aesgcm(keys.unwrap(key_id, wrapped, path))
        aad = _associated(prefix, chunk_size, size)
        chunks = max(1, -(-size // chunk_size))
        for index in range(chunks):
            sealed = handle.read(min(chunk_size, size - index * chunk_size) + _TAG)
            try:
                yield cipher.decrypt(_nonce(prefix, index, index == chunks - 1), sealed, aad)
            except InvalidTag:
                raise FailedPrecondition(
                    f"{path} fails its integrity check at chunk {index}: the file was "
                    "modified, truncated or corrupted",
                    path=str(path),
                ) from None
        if handle.read(1):
            raise FailedPrecondition(
                f"{path} has bytes after its last chunk: the file was modified", path=str(path)
            )


def decrypt_file(source: Path, destination: Path, keys: MasterKeys) -> None:
    """Decrypt ``source`` into ``destination`` (created 0600), checking every chunk."""
    fd = os.open(destination, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with open(fd, "wb") as out:
        for chunk in _plain_chunks(source, keys):
            out.write(chunk)


def read_plaintext(path: Path, keys: MasterKeys | None) -> bytes:
    """A file's plaintext: decrypted when it is encrypted, read as it is otherwise."""
    if not is_encrypted(path):
        return Path(path).read_bytes()
    if keys is None:
        raise FailedPrecondition(
            f"{path} is encrypted and no master key is configured; set AIMASS_MASTER_KEY, "
            "AIMASS_MASTER_KEY_FILE or AIMASS_MASTER_KEY_COMMAND",
            path=str(path),
        )
    return b"".join(_plain_chunks(path, keys))
