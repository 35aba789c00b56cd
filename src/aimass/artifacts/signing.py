"""Ed25519 signatures of model bundles.

A bundle's digest (SHA-256 of its canonical manifest) covers every file's SHA-256,
so one signature over the digest covers the whole bundle. The signature lives
beside the manifest as ``aimass.sig``::

    {"format": "aimass.signature", "algorithm": "ed25519", "digest": "<hex>",
     "key_id": "<16 hex>", "public_key": "<base64 raw key>", "signature": "<base64>"}

It carries the public key, so an exported bundle can be checked anywhere; whether
that key is *trusted* is the verifier's decision (this home's signing key and the
keys an operator lists). Loading checks the signature against the manifest before
any weight is read, and the files against the manifest as before.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aimass.errors import BundleFormatError, InvalidArgument

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

__all__ = [
    "SIGNATURE",
    "Signature",
    "SigningKey",
    "load_public_key",
    "public_key_id",
    "read_signature",
    "sign_digest",
    "verify_digest",
]

SIGNATURE = "aimass.sig"
_FORMAT = "aimass.signature"
_CONTEXT = b"aimass.bundle.v1:"
_MAX_SIGNATURE_BYTES = 64 * 1024


def public_key_id(raw: bytes) -> str:
    """A public key's identifier: 16 hex characters of its SHA-256."""
    return hashlib.sha256(raw).hexdigest()[:16]


def _raw_public(key: Ed25519PublicKey) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


@dataclass(frozen=True)
class SigningKey:
    """An Ed25519 private key that signs bundles."""

    private: Ed25519PrivateKey

    @classmethod
    def load_or_create(cls, path: Path) -> SigningKey:
        """The key in ``path`` (PEM, PKCS#8), created 0600 with a fresh key when missing."""
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
        from cryptography.hazmat.primitives.serialization import (
            Encoding,
            NoEncryption,
            PrivateFormat,
            load_pem_private_key,
        )

        path = Path(path)
        if not path.exists():
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            key = Ed25519PrivateKey.generate()
            pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with open(fd, "wb") as handle:
                handle.write(pem)
            return cls(key)
        loaded = load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(loaded, Ed25519PrivateKey):
            raise InvalidArgument(
                f"the signing key {path} is not an Ed25519 private key; move it away and a "
                "new one is created",
                path=str(path),
            )
        return cls(loaded)

    @property
    def public_raw(self) -> bytes:
        """The raw 32-byte public key."""
        return _raw_public(self.private.public_key())

    @property
    def key_id(self) -> str:
        """The public key's identifier."""
        return public_key_id(self.public_raw)

    def public_pem(self) -> str:
        """The public key as PEM (what ``--public-key`` and trusted key lists take)."""
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        return (
            self.private.public_key()
            .public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
            .decode()
        )


def load_public_key(path: Path) -> bytes:
    """The raw Ed25519 public key in a PEM file."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    try:
        key = load_pem_public_key(Path(path).read_bytes())
    except (OSError, ValueError) as exc:
        raise InvalidArgument(f"cannot read a public key from {path}: {exc}") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise InvalidArgument(f"{path} is not an Ed25519 public key", path=str(path))
    return _raw_public(key)


@dataclass(frozen=True)
class Signature:
    """A bundle signature that checked out."""

    digest: str
    key_id: str
    public_key: bytes
    trusted: bool

    def to_json(self) -> dict[str, Any]:
        """For ``--json`` output and the API."""
        return {
            "digest": self.digest,
            "key_id": self.key_id,
            "public_key": base64.b64encode(self.public_key).decode(),
            "trusted": self.trusted,
        }


def sign_digest(key: SigningKey, digest: str) -> bytes:
    """The ``aimass.sig`` content for a bundle with ``digest``."""
    signature = key.private.sign(_CONTEXT + digest.encode())
    data = {
        "format": _FORMAT,
        "algorithm": "ed25519",
        "digest": digest,
        "key_id": key.key_id,
        "public_key": base64.b64encode(key.public_raw).decode(),
        "signature": base64.b64encode(signature).decode(),
    }
    return (json.dumps(data, indent=2, sort_keys=True) + "\n").encode()


def read_signature(content: bytes | None, where: str) -> dict[str, Any]:
    """Parse ``aimass.sig`` bytes (``None``: the bundle has none)."""
    if content is None:
        raise BundleFormatError(
            f"bundle {where} is not signed (it was registered before bundles were signed, "
            "or its signature was removed); if this home's files are trusted, sign its "
            "bundles with 'aimass secrets migrate'",
            bundle=where,
        )
    if len(content) > _MAX_SIGNATURE_BYTES:
        raise BundleFormatError(f"the signature of bundle {where} is implausibly large")
    try:
        data = json.loads(content)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleFormatError(f"the signature of bundle {where} is not JSON: {exc}") from exc
    if not isinstance(data, dict) or data.get("format") != _FORMAT:
        raise BundleFormatError(f"{SIGNATURE} of bundle {where} is not an aimass signature")
    if data.get("algorithm") != "ed25519":
        raise BundleFormatError(
            f"bundle {where} is signed with {data.get('algorithm')!r}; aimass accepts ed25519"
        )
    return data


def verify_digest(
    content: bytes | None,
    digest: str,
    where: str,
    *,
    trusted: dict[str, bytes] | None,
) -> Signature:
    """Check a bundle's ``aimass.sig`` against its manifest digest.

    Args:
        content: The signature file's bytes (``None`` when the bundle has none).
        digest: The bundle's digest, computed from its manifest.
        where: The bundle, for messages.
        trusted: Accepted public keys by key id; ``None`` accepts the key the
            signature carries (the result says ``trusted=False``).

    Raises:
        BundleFormatError: unsigned, signed for another digest, by an untrusted key,
            or a signature that does not verify.
    """
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    data = read_signature(content, where)
    if data.get("digest") != digest:
        raise BundleFormatError(
            f"the signature of bundle {where} is for another bundle "
            f"({str(data.get('digest'))[:16]}…, not {digest[:16]}…): the manifest was changed",
            bundle=where,
        )
    try:
        public = base64.b64decode(str(data["public_key"]), validate=True)
        signature = base64.b64decode(str(data["signature"]), validate=True)
        key = Ed25519PublicKey.from_public_bytes(public)
    except (KeyError, ValueError) as exc:
        raise BundleFormatError(f"the signature of bundle {where} is malformed: {exc}") from exc
    key_id = public_key_id(public)
    if trusted is not None and trusted.get(key_id) != public:
        raise BundleFormatError(
            f"bundle {where} is signed by key {key_id}, which this server does not trust "
            f"(trusted: {', '.join(sorted(trusted)) or 'none'}); add its public key to "
            "AIMASS_TRUSTED_SIGNING_KEYS if you trust whoever signed it",
            bundle=where,
            key_id=key_id,
        )
    try:
        key.verify(signature, _CONTEXT + digest.encode())
    except InvalidSignature:
        raise BundleFormatError(
            f"the signature of bundle {where} does not verify: the bundle or its signature "
            "was modified",
            bundle=where,
        ) from None
    return Signature(digest=digest, key_id=key_id, public_key=public, trusted=trusted is not None)
