"""API keys of a home: create (shown once), authenticate, list, revoke, bootstrap the admin key."""

from __future__ import annotations

import hmac
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aimass.entities import ApiKey
from aimass.errors import InvalidArgument, Unauthenticated
from aimass.store import Store
from aimass.workspace.access import (
    Principal,
    hash_key,
    new_key,
    parse_key,
    validate_scopes,
    write_private,
)
from aimass.workspace.limits import (
    Limits,
    check_budget,
    check_limits,
    check_policy,
    merge_limits,
)
from aimass.workspace.ttl import TTLCache

__all__ = ["ADMIN_KEY_FILE", "KeyRing"]

ADMIN_KEY_FILE = "admin.key"
# last_used_at is written at most this often per key, so predict traffic does not
# turn every request into a database write.
_TOUCH_EVERY = 60.0


class KeyRing:
    """API keys stored as ``HMAC-SHA256(secret, key)``; the key itself is never kept."""

    def __init__(
        self,
        store: Store,
        secret: bytes,
        home: Path,
        *,
        cache_seconds: float = 0.0,
        limits: Limits | None = None,
    ) -> None:
        self._store = store
        self._limits = limits
        self._secret = secret
        self._home = home
        self._touched: dict[str, float] = {}
        self._lock = threading.Lock()
        # Verified keys, by the hash of the presented token: a revocation made through
        # this process is seen at once, one made by another process within cache_seconds.
        self._verified: TTLCache[str, ApiKey] = TTLCache(cache_seconds)

    def create(
        self,
        name: str,
        *,
        project: str | None,
        scopes: Sequence[str],
        expires_in_days: float | None = None,
        created_by: str | None = None,
        predict_budget: int | str | None = None,
        output_policy: str | None = None,
        limits: Mapping[str, object] | None = None,
        by_global_admin: bool = True,
    ) -> tuple[ApiKey, str]:
        """A new key; returns ``(record, key)``. The key is shown once, never stored.

        ``predict_budget`` (inputs per UTC day), ``output_policy`` (``labels``,
        ``top_k=N``, ``round=D``) and ``limits`` (per-key limits) are checked and
        stored with it; only an all-projects admin (``by_global_admin``) may give a
        key limits above the deployment's values.
        """
        checked = validate_scopes(scopes)
        quota = self._quota(
            {"predict_budget": predict_budget, "output_policy": output_policy, "limits": limits},
            key_id=None,
            by_global_admin=by_global_admin,
        )
        if project is None and checked != ("admin",):
            raise InvalidArgument(
                "a key for all projects can only have the admin scope; name a project "
                "(--project) for narrower keys"
            )
        if expires_in_days is not None and expires_in_days <= 0:
            raise InvalidArgument(f"expiry must be in the future, got {expires_in_days} days")
        expires = datetime.now(UTC) + timedelta(days=expires_in_days) if expires_in_days else None
        quota["limits"] = {k: v for k, v in quota["limits"].items() if v is not None}
        key_id, key = new_key()
        record = self._store.keys.create(
            key_id,
            name=name,
            project=project,
            scopes=checked,
            secret_hash=hash_key(self._secret, key),
            expires_at=expires,
            created_by=created_by,
            **quota,
        )
        return record, key

    def update(
        self,
        key_id: str,
        changes: Mapping[str, Any],
        *,
        project: str | None = None,
        by_global_admin: bool = True,
    ) -> ApiKey:
        """Change a key's ``predict_budget``, ``output_policy`` and/or ``limits``.

        Only the fields in ``changes`` change: a ``None`` budget or policy removes it
        (unlimited, full output); ``limits`` maps names to new values, ``None``
        removing that one. Seen by this process's next request at once.
        """
        unknown = sorted(set(changes) - {"predict_budget", "output_policy", "limits"})
        if unknown:
            raise InvalidArgument(
                f"cannot change {', '.join(unknown)} of a key; only predict_budget, "
                "output_policy and limits (create a new key for other changes)"
            )
        current = self._store.keys.get(key_id, project=project)
        quota = self._quota(changes, key_id=key_id, by_global_admin=by_global_admin)
        if "limits" in quota:
            quota["limits"] = merge_limits(current.limits, quota["limits"])
        updated = self._store.keys.update(key_id, quota, project=project)
        self._verified.invalidate(lambda _digest, record: record.id == key_id)
        if self._limits is not None:
            self._limits.forget(f"key:{key_id}")
        return updated

    def _quota(
        self, fields: Mapping[str, Any], *, key_id: str | None, by_global_admin: bool
    ) -> dict[str, Any]:
        """Checked ``predict_budget`` / ``output_policy`` / ``limits`` among ``fields``
        (a limit's ``None`` value, meaning "remove it", is kept)."""
        checked: dict[str, Any] = {}
        if "predict_budget" in fields:
            checked["predict_budget"] = check_budget(fields["predict_budget"])
        if "output_policy" in fields:
            checked["output_policy"] = check_policy(fields["output_policy"])
        if "limits" in fields:
            limits = check_limits("key", fields["limits"] or {})
            if self._limits is not None:
                self._limits.check_raise("key", key_id or "new", limits, admin=by_global_admin)
            checked["limits"] = limits
        return checked

    def authenticate(self, key: str | None) -> Principal:
        """The principal for ``key``; Unauthenticated when missing, wrong, expired or revoked."""
        if not key:
            raise Unauthenticated(
                "this endpoint needs an API key: send 'Authorization: Bearer aimass_...'"
            )
        digest = hash_key(self._secret, key)
        record = self._verified.get_or_load(digest, lambda: self._verify(key, digest))
        return self._principal(record)

    def authenticate_cached(self, key: str) -> Principal | None:
        """:meth:`authenticate` when it needs no database (the key was verified within
        ``auth_cache_seconds`` and its last use was recorded recently), else ``None``.

        The server calls it on its event loop, saving the hop to a worker thread that
        :meth:`authenticate` needs, on every request but the few that touch the store.
        """
        record = self._verified.get(hash_key(self._secret, key))
        if record is None:
            return None
        with self._lock:
            if self._touch_due(record.id, time.monotonic()):
                return None
        return self._principal(record, touch=False)

    def _verify(self, key: str, digest: str) -> ApiKey:
        key_id = parse_key(key)
        found = self._store.keys.lookup(key_id) if key_id else None
        if found is None or not hmac.compare_digest(found[1], digest):
            raise Unauthenticated("the API key is not valid")
        return found[0]

    def principal_of(self, key_id: str) -> Principal:
        """The principal of key ``key_id`` as it stands now (a console session names its
        key by id): Unauthenticated when the key is gone, revoked or expired."""
        found = self._store.keys.lookup(key_id)
        if found is None:
            raise Unauthenticated("the key of this session no longer exists; sign in again")
        return self._principal(found[0])

    def _principal(self, record: ApiKey, *, touch: bool = True) -> Principal:
        now = datetime.now(UTC)
        if record.revoked:
            raise Unauthenticated(f"API key {record.id} was revoked", key_id=record.id)
        if record.expires_at is not None and record.expires_at <= now:
            raise Unauthenticated(
                f"API key {record.id} expired at {record.expires_at.isoformat()}",
                key_id=record.id,
            )
        if touch:
            self._touch(record.id, now)
        return Principal(
            actor=f"key:{record.id}",
            key_id=record.id,
            project=record.project,
            scopes=frozenset(record.scopes),
            predict_budget=record.predict_budget,
            output_policy=record.output_policy,
        )

    def _touch(self, key_id: str, now: datetime) -> None:
        clock = time.monotonic()
        with self._lock:
            if not self._touch_due(key_id, clock):
                return
            self._touched[key_id] = clock
        self._store.keys.touch(key_id, now)

    def _touch_due(self, key_id: str, clock: float) -> bool:
        """Whether the key's last use is to be written again (hold ``self._lock``)."""
        return clock - self._touched.get(key_id, -_TOUCH_EVERY) >= _TOUCH_EVERY

    def get(self, key_id: str, *, project: str | None = None) -> ApiKey:
        """One key's record (of ``project``; ``None``: of any project)."""
        return self._store.keys.get(key_id, project=project)

    def list(self, *, project: str | None = None) -> list[ApiKey]:
        """Keys of ``project`` (all keys when ``None``)."""
        return self._store.keys.list(project=project)

    def revoke(self, key_id: str, *, project: str | None = None) -> ApiKey:
        """Revoke a key; it is refused from the next request on."""
        revoked = self._store.keys.revoke(key_id, project=project)
        self._verified.invalidate(lambda _digest, record: record.id == key_id)
        return revoked

    def ensure_admin(self) -> tuple[Path, bool]:
        """Make sure an all-projects admin key exists; returns ``(file, created)``.

        On first start the key is written to ``AIMASS_HOME/admin.key`` (mode 0600)
        and nowhere else. When admin keys exist already nothing is created.
        """
        path = self._home / ADMIN_KEY_FILE
        # Servers starting together on one new database: one of them makes the key.
        with self._store.lock("admin-bootstrap"):
            if self._store.keys.count_admins() > 0:
                return path, False
            _, key = self.create("admin", project=None, scopes=["admin"], created_by="bootstrap")
            if path.exists():
                path.unlink()  # a stale file from a revoked key
            write_private(path, key + "\n")
        return path, True
