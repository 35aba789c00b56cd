"""Per-project pseudonymization keys: 32 random bytes in a 0600 file under the aimass home.

The key never enters the database, a dataset, a report or a log; reports
carry only its fingerprint. Losing the key means new pseudonyms no longer match
old ones; leaking it lets anyone recompute (not reverse) the mapping for a
guessed value, so it is kept like any other secret.
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

from aimass.errors import AlreadyExists, FailedPrecondition
from aimass.refs import validate_name

__all__ = ["create_project_key", "load_project_key", "project_key_path"]


def project_key_path(home: Path, project: str) -> Path:
    """Where the key of ``project`` lives: ``HOME/keys/pii-PROJECT.key``."""
    validate_name(project, kind="project")
    return Path(home) / "keys" / f"pii-{project}.key"


def create_project_key(home: Path, project: str) -> Path:
    """Create the key file of ``project`` (mode 0600); refuses to overwrite an existing key."""
    path = project_key_path(home, project)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise AlreadyExists(
            f"project {project!r} has a pseudonymization key already ({path}); replacing it "
            "would change every pseudonym, so aimass does not overwrite it"
        ) from None
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_hex(32) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    return path


def load_project_key(home: Path, project: str) -> bytes:
    """The key of ``project``; a clear error when it is missing or readable by others."""
    path = project_key_path(home, project)
    if not path.is_file():
        raise FailedPrecondition(
            f"project {project!r} has no pseudonymization key; create one with "
            f"'aimass pii key create --project {project}' (stored in {path.parent}, mode 0600)",
            project=project,
        )
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise FailedPrecondition(
            f"the pseudonymization key {path} is readable by other users (mode {mode:o}); "
            f"run 'chmod 600 {path}'",
            path=str(path),
        )
    text = path.read_text(encoding="ascii").strip()
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) < 16:
        raise FailedPrecondition(f"the pseudonymization key {path} is not a hex key of 16+ bytes")
    return key
