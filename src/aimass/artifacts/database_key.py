"""The SQLite metadata database encrypted at rest (SQLCipher), its key wrapped by the
master key.

With ``AIMASS_ENCRYPT_METADATA`` (unset: as ``AIMASS_ENCRYPT_AT_REST``, on by default)
a new SQLite metadata database is created encrypted:
every page under a random 256-bit key (SQLCipher 4: AES-256 with an HMAC-SHA512 per
page), the ``-wal`` file too. That key is kept beside the database in
``{database}.key`` (0600), wrapped by the active master key with AES-256-GCM as the
artifacts' data keys are, so a copy of the database and its key file is unreadable
without the master key, and rotating the master key re-wraps it in place
(:func:`rewrap_database_key`). A database is opened encrypted exactly when its key
file exists, whatever the setting says: the setting decides how a *new* database is
made, and ``aimass db encrypt`` converts an existing plaintext one
(:func:`encrypt_database`).

Below the workspace so that every process that opens the database (the server, the
CLI's ``db`` commands, a job's Ray actor) derives the key the same way.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import make_url

from aimass.artifacts.envelope import MasterKeys
from aimass.artifacts.keyring import load_master_keys, require_private, write_private
from aimass.errors import FailedPrecondition, InvalidArgument
from aimass.settings import Settings

__all__ = [
    "backup_database",
    "database_key",
    "database_status",
    "encrypt_database",
    "key_file",
    "rewrap_database_key",
    "sqlite_path",
]

log = logging.getLogger("aimass.store")

FORMAT = "aimass.database-key.v1"
_PLAINTEXT_HEADER = b"SQLite format 3\x00"


def sqlite_path(uri: str) -> Path | None:
    """The file of a SQLite URL; ``None`` for another database or one in memory."""
    url = make_url(uri)
    database = url.database
    if url.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return None
    if database.startswith("file:"):
        return None
    return Path(database)


def key_file(database: Path) -> Path:
    """Where the wrapped key of ``database`` lives: ``{database}.key``."""
    return database.with_name(database.name + ".key")


def _is_plaintext(database: Path) -> bool:
    with open(database, "rb") as handle:
        return handle.read(len(_PLAINTEXT_HEADER)) == _PLAINTEXT_HEADER


def _has_content(database: Path) -> bool:
    return database.exists() and database.stat().st_size > 0


KeysArg = MasterKeys | Callable[[], MasterKeys | None] | None
"""The master keys, or a function that gives them (the workspace's, loaded once per
process); ``None``: load them from the settings."""


def _master_keys(settings: Settings, keys: KeysArg) -> MasterKeys:
    given = keys() if callable(keys) else keys
    found = given or load_master_keys(settings, create=True)
    assert found is not None, "create=True always gives keys"
    return found


def _read_key(path: Path, keys: MasterKeys) -> tuple[str, bytes]:
    """``(master key id, database key)`` of a key file."""
    require_private(path)
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
        if stored.get("format") != FORMAT:
            raise ValueError(f"format {stored.get('format')!r}")
        key_id, wrapped = str(stored["key_id"]), base64.b64decode(stored["wrapped"])
    except (ValueError, KeyError, TypeError) as exc:
        raise FailedPrecondition(
            f"{path} is not an aimass database key file ({exc}); restore it from the "
            "backup taken with the database",
            path=str(path),
        ) from None
    return key_id, keys.unwrap(key_id, wrapped, path)


def _wrapped_text(key: bytes, keys: MasterKeys) -> str:
    key_id, wrapped = keys.wrap(key)
    return json.dumps(
        {"format": FORMAT, "key_id": key_id, "wrapped": base64.b64encode(wrapped).decode()}
    )


def _write_key_file(path: Path, key: bytes, keys: MasterKeys, *, replace: bool) -> None:
    """Write the wrapped key (0600, flushed); a new file never replaces another one,
    so two processes making one database agree on the key of whoever came first."""
    staged = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    write_private(staged, _wrapped_text(key, keys))
    try:
        if replace:
            os.replace(staged, path)
        else:
            os.link(staged, path)  # FileExistsError when another process won
    finally:
        with contextlib.suppress(FileNotFoundError):
            staged.unlink()


def database_key(settings: Settings, *, keys: KeysArg = None) -> bytes | None:
    """The key to open the metadata database with; ``None``: it is plaintext.

    A new SQLite database gets a fresh key when ``encrypt_metadata`` is on (unset: when
    ``encrypt_at_rest`` is). Another database with the setting on is refused with what
    to do instead.
    """
    uri = settings.resolved_store_uri
    database = sqlite_path(uri)
    if database is None:
        if settings.encrypt_metadata is True and make_url(uri).get_backend_name() != "sqlite":
            raise InvalidArgument(
                "AIMASS_ENCRYPT_METADATA encrypts a SQLite metadata database; encrypt "
                f"{make_url(uri).get_backend_name()}'s storage with its own means (an "
                "encrypted volume, the provider's encryption at rest), then unset it",
                setting="encrypt_metadata",
            )
        return None
    path = key_file(database)
    if path.exists():
        return _read_key(path, _master_keys(settings, keys))[1]
    if _has_content(database):
        if not _is_plaintext(database):
            raise FailedPrecondition(
                f"the metadata database {database} is encrypted but its key file {path} is "
                "missing; restore the key file from the backup taken with the database",
                path=str(path),
            )
        if settings.encrypt_metadata is True:
            log.warning(
                "the metadata database is plaintext although AIMASS_ENCRYPT_METADATA is on "
                "(it predates the setting): stop the servers and run 'aimass db encrypt'",
                extra={"database": str(database)},
            )
        return None
    wanted = settings.encrypt_metadata
    if not (settings.encrypt_at_rest if wanted is None else wanted):
        return None
    key = secrets.token_bytes(32)
    try:
        _write_key_file(path, key, _master_keys(settings, keys), replace=False)
    except FileExistsError:
        return _read_key(path, _master_keys(settings, keys))[1]
    return key


def rewrap_database_key(settings: Settings, keys: MasterKeys) -> bool:
    """Re-wrap the database's key under the active master key (rotation); whether the
    key file changed. Nothing to do for a plaintext or non-SQLite database."""
    database = sqlite_path(settings.resolved_store_uri)
    if database is None or not key_file(database).exists():
        return False
    path = key_file(database)
    key_id, key = _read_key(path, keys)
    if key_id == keys.active:
        return False
    _write_key_file(path, key, keys, replace=True)
    return True


def database_status(settings: Settings) -> dict[str, Any]:
    """Whether the metadata database is encrypted, and under which master key."""
    uri = settings.resolved_store_uri
    database = sqlite_path(uri)
    if database is None:
        return {"database": make_url(uri).get_backend_name(), "encrypted": None}
    path = key_file(database)
    status: dict[str, Any] = {"database": str(database), "encrypted": path.exists()}
    if path.exists():
        with contextlib.suppress(ValueError, KeyError):
            status["key_id"] = json.loads(path.read_text(encoding="utf-8"))["key_id"]
    return status


def _open(database: Path, key: bytes | None) -> Any:
    """A SQLCipher connection to ``database``, keyed when ``key`` is given."""
    from sqlcipher3 import dbapi2

    connection = dbapi2.connect(str(database), timeout=30)
    if key is not None:
        connection.execute(f"PRAGMA key = \"x'{key.hex()}'\"")
    return connection


def encrypt_database(settings: Settings, *, keys: KeysArg = None) -> dict[str, Any]:
    """Convert a plaintext SQLite metadata database to an encrypted one, in place.

    Run it with every server and job of the home stopped. The database is exported
    into an encrypted copy beside it, the key file is written, then the copy replaces
    the original; an interrupted run is finished by running it again. The plaintext
    file's disk blocks are freed, not overwritten.
    """
    database = sqlite_path(settings.resolved_store_uri)
    if database is None:
        raise InvalidArgument(
            f"{settings.resolved_store_uri.split(':', 1)[0]} is not a SQLite metadata "
            "database; only those are encrypted by aimass (encrypt a server database's "
            "storage with its own means)"
        )
    if not _has_content(database):
        raise FailedPrecondition(
            f"there is no metadata database at {database} yet: with AIMASS_ENCRYPT_METADATA"
            "=true a new one is created encrypted",
            path=str(database),
        )
    master = _master_keys(settings, keys)
    path, staged = key_file(database), database.with_name(f".{database.name}.encrypted")
    if path.exists() and not _is_plaintext(database):
        return {"database": str(database), "encrypted": True, "already": True}
    if path.exists():  # an interrupted run: its copy is complete, put it in place
        if not staged.exists():
            raise FailedPrecondition(
                f"{path} exists but {database} is plaintext and no encrypted copy is "
                f"beside it; move {path} away and run 'aimass db encrypt' again",
                path=str(path),
            )
        _replace(staged, database)
        return {"database": str(database), "encrypted": True, "resumed": True}
    if not _is_plaintext(database):
        raise FailedPrecondition(
            f"{database} is not a plaintext SQLite database (encrypted, with its key file "
            f"{path} missing?); restore the key file from the backup taken with the database",
            path=str(path),
        )
    key = secrets.token_bytes(32)
    staged.unlink(missing_ok=True)
    plain = _open(database, None)
    try:
        plain.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        os.close(os.open(staged, os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o600))
        plain.execute(f"ATTACH DATABASE ? AS encrypted KEY \"x'{key.hex()}'\"", (str(staged),))
        plain.execute("SELECT sqlcipher_export('encrypted')")
        plain.execute("DETACH DATABASE encrypted")
    finally:
        plain.close()
    check = _open(staged, key)
    try:
        if check.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
            raise FailedPrecondition(f"the encrypted copy {staged} failed its integrity check")
    finally:
        check.close()
    _write_key_file(path, key, master, replace=False)
    _replace(staged, database)
    return {"database": str(database), "encrypted": True, "key_id": master.active}


def _replace(staged: Path, database: Path) -> None:
    """Put the encrypted copy in place of the plaintext database and drop the old
    database's (checkpointed, empty) ``-wal`` and ``-shm`` files."""
    os.replace(staged, database)
    for suffix in ("-wal", "-shm"):
        database.with_name(database.name + suffix).unlink(missing_ok=True)


def backup_database(settings: Settings, destination: Path) -> dict[str, Any]:
    """Copy the live SQLite metadata database to ``destination`` with SQLite's online
    backup (consistent while servers write), encrypted under the same key as the
    original, and its key file beside the copy; a file already there is refused."""
    database = sqlite_path(settings.resolved_store_uri)
    if database is None or not _has_content(database):
        raise InvalidArgument(
            f"there is no SQLite metadata database to copy at {settings.resolved_store_uri}"
            "; back up a server database with its own tools (pg_dump)"
        )
    destination = destination.expanduser().resolve()
    copied_key = key_file(destination)
    for path in (destination, copied_key):
        if path.exists():
            raise InvalidArgument(f"{path} already exists; choose a new file for the copy")
    key = database_key(settings)
    destination.parent.mkdir(parents=True, exist_ok=True)
    os.close(os.open(destination, os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o600))
    live, copy = _open(database, key), _open(destination, key)
    try:
        live.backup(copy)
    finally:
        copy.close()
        live.close()
    if key is not None:
        write_private(copied_key, key_file(database).read_text(encoding="utf-8"))
    return {
        "database": str(database),
        "copy": str(destination),
        "encrypted": key is not None,
        "key_file": str(copied_key) if key is not None else None,
    }
