"""Keys at rest: the master keys that encrypt artifacts, the key that signs bundles.

What ``aimass secrets`` does (status, rotate, migrate) and how a workspace opens
its artifact store with them. The master keys come from, in this order: the
``AIMASS_MASTER_KEY`` setting, the output of ``AIMASS_MASTER_KEY_COMMAND`` (an
external KMS or secret-manager client), or the key file (``AIMASS_MASTER_KEY_FILE``,
default ``{home}/keys/master.json``, 0600, created on first use).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from aimass.artifacts import ArtifactStore
from aimass.artifacts.bundle import MANIFEST, verify_bundle
from aimass.artifacts.database_key import database_status, rewrap_database_key
from aimass.artifacts.envelope import MasterKeys, header_key_id, is_encrypted
from aimass.artifacts.keyring import KeySource, key_source, load_master_keys
from aimass.artifacts.objects import object_store_from_settings
from aimass.artifacts.plaintext import shared_cache
from aimass.artifacts.signing import SIGNATURE, SigningKey, load_public_key, public_key_id
from aimass.artifacts.storage import BUNDLES, PUBLISHED, RUNS, STAGING, encrypt_tree
from aimass.errors import AimassError, FailedPrecondition, InvalidArgument
from aimass.settings import Settings
from aimass.workspace.access import require_private, write_private

__all__ = [
    "KeySource",
    "load_master_keys",
    "migrate_artifacts",
    "open_artifact_store",
    "rotate_master_key",
    "secrets_status",
]


def write_key_file(path: Path, keys: MasterKeys) -> None:
    """Replace the key file atomically (0600), flushed to disk before the rename."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    staged = path.with_name(f".{path.name}.new")
    staged.unlink(missing_ok=True)
    write_private(staged, keys.to_json())
    os.replace(staged, path)


def signing_key(settings: Settings) -> SigningKey:
    """This home's bundle-signing key (created 0600 on first use)."""
    assert settings.signing_key_file is not None
    key = SigningKey.load_or_create(settings.signing_key_file)
    require_private(settings.signing_key_file)
    return key


def open_artifact_store(settings: Settings) -> ArtifactStore:
    """The artifact store of a home, with its keys, signing key and trusted keys.

    With ``AIMASS_ARTIFACT_URL`` set, the artifacts live in that bucket and the
    artifact root is this process's local cache of them.
    """
    signer = signing_key(settings)
    trusted = {}
    for path in settings.trusted_signing_keys:
        raw = load_public_key(path)
        trusted[public_key_id(raw)] = raw
    return ArtifactStore(
        settings.resolved_artifact_root,
        keys=load_master_keys(settings),
        encrypt=settings.encrypt_at_rest,
        signer=signer,
        trusted=trusted,
        require_signatures=settings.require_signatures,
        plaintext=shared_cache(settings.plaintext_dir),
        remote=object_store_from_settings(settings),
        cache_max_bytes=settings.artifact_cache_max_bytes,
    )


def _stored_files(artifacts: ArtifactStore, *, published_only: bool = False) -> list[Path]:
    found: list[Path] = []
    for dirpath, dirs, names in os.walk(artifacts.root):
        if Path(dirpath) == artifacts.root:
            dirs[:] = [d for d in dirs if d != STAGING and (not published_only or d in PUBLISHED)]
        found.extend(Path(dirpath) / n for n in names if not n.startswith("."))
    return sorted(found)


def _bundles(artifacts: ArtifactStore) -> list[Path]:
    root = artifacts.root / BUNDLES.rstrip("/")
    return sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []


def _pull_remote(artifacts: ArtifactStore) -> list[str]:
    """With object storage, bring every committed key into the local cache; returns them.

    Re-keying works on local files, so the bucket's copies are fetched first: run
    directories (checkpoints, uploaded after every save) always, published
    artifacts when missing here.
    """
    keys = artifacts.remote_keys()
    for key in keys:
        if key.startswith(RUNS):
            artifacts.mirror_down(key)
        else:
            artifacts.stored(artifacts.uri(key))
    return keys


def _push_remote(artifacts: ArtifactStore, keys: list[str]) -> None:
    """Replace the bucket's copies of ``keys`` with the local ones, each under a new index."""
    for key in keys:
        artifacts.mirror_up(key)


def secrets_status(settings: Settings, artifacts: ArtifactStore) -> dict[str, Any]:
    """Where the keys come from and what the artifacts are encrypted and signed with."""
    by_key: dict[str, int] = {}
    plaintext = 0
    for path in _stored_files(artifacts, published_only=True):
        if is_encrypted(path):
            kid = header_key_id(path)
            by_key[kid] = by_key.get(kid, 0) + 1
        else:
            plaintext += 1
    bundles = _bundles(artifacts)
    unsigned = [b.name for b in bundles if not (b / SIGNATURE).is_file()]
    source = key_source(settings)
    keys = artifacts.keys
    signer = artifacts.signer
    database = database_status(settings)
    used = set(by_key) | ({database["key_id"]} if "key_id" in database else set())
    return {
        "encrypt_at_rest": settings.encrypt_at_rest,
        "metadata_database": database,
        "key_source": source.kind,
        "key_location": source.where if source.kind != "setting" else "AIMASS_MASTER_KEY",
        "active_key": keys.active if keys else None,
        "keys": sorted(keys.keys) if keys else [],
        "encrypted_files": by_key,
        "plaintext_files": plaintext,
        "unused_keys": sorted(set(keys.keys) - used) if keys else [],
        "signing_key": signer.key_id if signer else None,
        "signing_public_key": signer.public_pem() if signer else None,
        "trusted_keys": sorted(artifacts.trusted),
        "require_signatures": settings.require_signatures,
        "bundles": len(bundles),
        "unsigned_bundles": unsigned,
    }


def rotate_master_key(
    settings: Settings, artifacts: ArtifactStore, *, retire: bool = True
) -> dict[str, Any]:
    """Re-wrap every data key under a new master key; the ciphertexts stay as they are.

    With the key file, a new key is generated and made active first (the file keeps
    the old ones until every file is re-wrapped, so a crash half-way loses nothing:
    run it again), then the old keys are retired unless ``retire`` is false. With
    object storage, every artifact in the bucket is fetched, re-wrapped and
    uploaded again before any key is retired. With
    ``AIMASS_MASTER_KEY`` or a key command, the operator supplies a keyring whose
    active key is the new one; data keys are re-wrapped to it and the report says
    which old keys are no longer used.
    """
    source = key_source(settings)
    keys = load_master_keys(settings, create=True)
    assert keys is not None
    previous = keys.active
    if source.writable:
        keys = keys.with_new_active()
        write_key_file(Path(source.where), keys)
    remote = _pull_remote(artifacts)
    rewrapped = unchanged = 0
    for path in _stored_files(artifacts):
        if not is_encrypted(path):
            continue
        if keys.rewrap(path):
            rewrapped += 1
        else:
            unchanged += 1
    # Before any old key is retired: the bucket's copies and the metadata database's
    # key must not need it either.
    _push_remote(artifacts, remote)
    database_rewrapped = rewrap_database_key(settings, keys)
    retired: list[str] = []
    if source.writable and retire:
        retired = sorted(set(keys.keys) - {keys.active})
        keys = keys.only_active()
        write_key_file(Path(source.where), keys)
    artifacts.keys = keys
    return {
        "source": source.kind,
        "previous_key": previous,
        "active_key": keys.active,
        "rewrapped_files": rewrapped,
        "already_active": unchanged,
        "database_key_rewrapped": database_rewrapped,
        "retired_keys": retired,
        "still_needed": [] if source.writable else [keys.active],
    }


def migrate_artifacts(settings: Settings, artifacts: ArtifactStore) -> dict[str, Any]:
    """Bring a home written before encryption and signing up to date.

    Unsigned bundles are verified against their manifests (every file's SHA-256) and
    signed with this home's key; with encryption on, plaintext artifacts are
    encrypted in place. A bundle that fails verification is reported, not signed.
    With object storage, the bucket's artifacts are fetched first and uploaded again
    after.
    """
    if artifacts.signer is None:
        raise InvalidArgument("this artifact store has no signing key")
    remote = _pull_remote(artifacts)
    signed: list[str] = []
    refused: dict[str, str] = {}
    for bundle in _bundles(artifacts):
        if (bundle / SIGNATURE).is_file():
            continue
        key = f"{BUNDLES}{bundle.name}"
        try:
            if is_encrypted(bundle / MANIFEST):
                raise FailedPrecondition(
                    "encrypted but unsigned: it was not published by aimass; re-import it"
                )
            verify_bundle(bundle)
        except AimassError as exc:
            refused[key] = exc.message
            continue
        artifacts.sign_in_place(bundle)
        signed.append(key)
    encrypted = 0
    keys = artifacts.write_keys
    if keys is not None:
        for path in _stored_files(artifacts, published_only=True):
            if not is_encrypted(path):
                encrypt_tree(path, keys)
                encrypted += 1
    _push_remote(artifacts, remote)
    return {"signed_bundles": signed, "refused_bundles": refused, "encrypted_files": encrypted}
