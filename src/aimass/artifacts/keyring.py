"""Where the master keys come from, and the private files secrets live in.

Below the workspace so that every process that reads or writes artifacts opens the
keys the same way: the server, a job's Ray actor, a Ray Train worker. The master
keys come from, in this order: the ``AIMASS_MASTER_KEY`` setting, the output of
``AIMASS_MASTER_KEY_COMMAND`` (an external KMS or secret-manager client), or the key
file (``AIMASS_MASTER_KEY_FILE``, default ``{home}/keys/master.json``, 0600).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

from aimass.artifacts.envelope import MasterKeys
from aimass.errors import FailedPrecondition
from aimass.settings import Settings

__all__ = ["KeySource", "key_source", "load_master_keys", "require_private", "write_private"]


def write_private(path: Path, text: str) -> None:
    """Create ``path`` readable by its owner only (0600), never replacing a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


def require_private(path: Path) -> None:
    """Refuse a secret file other users may read (it is not used until it is 0600)."""
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise FailedPrecondition(
            f"{path} is readable by other users (mode {mode:o}); run 'chmod 600 {path}'",
            path=str(path),
        )


@dataclass(frozen=True)
class KeySource:
    """Where the master keys come from, and whether aimass may write them."""

    kind: str  # "setting", "command" or "file"
    where: str
    writable: bool


def key_source(settings: Settings) -> KeySource:
    """The source the settings select."""
    if settings.master_key is not None:
        return KeySource("setting", "AIMASS_MASTER_KEY", writable=False)
    if settings.master_key_command:
        return KeySource("command", settings.master_key_command, writable=False)
    assert settings.master_key_file is not None
    return KeySource("file", str(settings.master_key_file), writable=True)


def load_master_keys(settings: Settings, *, create: bool | None = None) -> MasterKeys | None:
    """The master keys, or ``None`` when there are none and none are to be created.

    Args:
        settings: Which source, and whether encryption is on.
        create: Create the key file when it is missing (default: when encryption is on).
    """
    source = key_source(settings)
    if settings.master_key is not None:
        return MasterKeys.parse(settings.master_key.get_secret_value(), source.where)
    if settings.master_key_command:
        return MasterKeys.from_command(settings.master_key_command)
    path = Path(source.where)
    if not path.exists():
        if not (settings.encrypt_at_rest if create is None else create):
            return None
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):  # another process created it first
            write_private(path, MasterKeys.generate(str(path)).to_json())
    require_private(path)
    return MasterKeys.parse(path.read_text(encoding="utf-8"), str(path))
