"""Who is asking, and may they: API keys, principals and scopes.

A key is ``aimass_<id>_<secret>``. Only ``HMAC-SHA256(server secret, key)`` is
stored; the server secret lives in a 0600 file under ``AIMASS_HOME``. A
:class:`Principal` is an authenticated caller: a key of one project (or an
all-projects admin key), or the local operator working on the home directly.
"""

from __future__ import annotations

import contextlib
import getpass
import hashlib
import hmac
import os
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from aimass.artifacts.keyring import require_private, write_private
from aimass.entities import SCOPES
from aimass.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from aimass.refs import validate_name

__all__ = [
    "Principal",
    "hash_key",
    "local_principal",
    "new_key",
    "parse_key",
    "read_or_create_secret",
    "require_private",
    "validate_scopes",
    "write_private",
]

_KEY = re.compile(r"^aimass_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
# Scopes that can be narrowed to one model as ``SCOPE:MODEL``.
_MODEL_SCOPES = ("models:write", "predict")


def read_or_create_secret(path: Path) -> bytes:
    """The server secret at ``path`` (32 random bytes, hex), created 0600 on first use."""
    if not path.exists():
        # Written aside, then linked in place: another process starting at the same
        # moment never reads a half-written secret, and the first link wins.
        staged = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        write_private(staged, secrets.token_hex(32) + "\n")
        try:
            with contextlib.suppress(FileExistsError):
                os.link(staged, path)
        finally:
            staged.unlink()
    require_private(path)
    text = path.read_text(encoding="utf-8").strip()
    if not re.fullmatch(r"[0-9a-f]{64}", text):
        raise FailedPrecondition(f"{path} is not an aimass server secret (64 hex digits)")
    return bytes.fromhex(text)


def new_key() -> tuple[str, str]:
    """A fresh ``(key_id, key)``; the key is shown once and never stored."""
    key_id = secrets.token_hex(6)
    return key_id, f"aimass_{key_id}_{secrets.token_urlsafe(32)}"


def parse_key(key: str) -> str | None:
    """The key id of a well-formed key, else ``None``."""
    match = _KEY.fullmatch(key)
    return match.group(1) if match else None


def hash_key(secret: bytes, key: str) -> str:
    """The stored form of a key: HMAC-SHA256 keyed with the server secret."""
    return hmac.new(secret, key.encode(), hashlib.sha256).hexdigest()


def validate_scopes(scopes: Iterable[str]) -> tuple[str, ...]:
    """Check scope names (``SCOPE`` or ``models:write:MODEL`` / ``predict:MODEL``)."""
    found = []
    for scope in scopes:
        base, model = _split(scope)
        if base not in SCOPES or (model is not None and base not in _MODEL_SCOPES):
            raise InvalidArgument(
                f"unknown scope {scope[:80]!r}; scopes: {', '.join(SCOPES)} "
                "(models:write and predict may name one model, e.g. 'predict:churn')",
                scope=scope[:80],
            )
        if model is not None:
            validate_name(model, kind="model")
        found.append(scope)
    if not found:
        raise InvalidArgument(f"a key needs at least one scope ({', '.join(SCOPES)})")
    return tuple(dict.fromkeys(found))


def _split(scope: str) -> tuple[str, str | None]:
    for base in _MODEL_SCOPES:
        if scope.startswith(base + ":"):
            return base, scope[len(base) + 1 :]
    return scope, None


@dataclass(frozen=True)
class Principal:
    """An authenticated caller.

    Attributes:
        actor: How the audit log names it (``key:<id>`` or ``local:<user>``).
        key_id: The API key's id; ``None`` for the local operator.
        project: The one project it may see; ``None`` for all projects.
        scopes: What it may do there.
        predict_budget: The key's inputs per UTC day (``None``: unlimited).
        output_policy: The key's output policy (``None``: full output).
    """

    actor: str
    key_id: str | None
    project: str | None
    scopes: frozenset[str]
    predict_budget: int | None = None
    output_policy: str | None = None

    @property
    def is_global_admin(self) -> bool:
        """An admin of every project (the bootstrap key, the local operator)."""
        return self.project is None and "admin" in self.scopes

    def sees(self, project: str) -> bool:
        """Whether ``project`` exists for this caller at all."""
        return self.project is None or self.project == project

    def can(self, scope: str, *, project: str, model: str | None = None) -> bool:
        """Whether it holds ``scope`` in ``project`` (for ``model`` when given)."""
        if not self.sees(project):
            return False
        if "admin" in self.scopes or scope in self.scopes:
            return True
        return model is not None and f"{scope}:{model}" in self.scopes

    def require(self, scope: str, *, project: str, model: str | None = None) -> None:
        """Raise NotFound for another project's resource, PermissionDenied for a missing scope.

        Another project's resources answer 404, never 403, so names do not leak.
        """
        if not self.sees(project):
            raise NotFound(f"project {project!r} does not exist", resource="project", name=project)
        if not self.can(scope, project=project, model=model):
            what = f"{scope} on model {model!r}" if model else scope
            raise PermissionDenied(
                f"this key lacks the scope {what} in project {project!r}; ask an admin for a "
                f"key with it ('aimass keys create --scope {scope}')",
                scope=scope,
            )

    def require_global_admin(self) -> None:
        """Only all-projects admin keys (and the local operator) pass."""
        if not self.is_global_admin:
            raise PermissionDenied(
                "this needs an all-projects admin key (the one the server wrote at first start)"
            )


def local_principal() -> Principal:
    """The operator working on the home directly (CLI without a server): all powers."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no login name in some containers
        user = str(os.getuid())
    return Principal(actor=f"local:{user}", key_id=None, project=None, scopes=frozenset({"admin"}))
