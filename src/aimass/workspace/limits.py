"""Per-key and per-project limits kept in the store, query budgets and their checks.

The effective value of a limit for a key or a project is, in order: the value
stored with the key / project (``aimass keys update --limit``, ``aimass projects
set-limits``), else its entry in ``AIMASS_LIMIT_OVERRIDES``, else the setting.
Stored values are cached for ``auth_cache_seconds``; a change made through this
process is seen at once, one made by another process within that time. Code on an
event loop calls :meth:`Limits.prefetch` first, so the database is read in a worker
thread and never blocks the loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from aimass.entities import Project
from aimass.errors import InvalidArgument, PermissionDenied
from aimass.serving.policy import parse_policy
from aimass.settings import LIMIT_NAMES, Settings, check_limit
from aimass.store import Store
from aimass.store.rates import RateRepository
from aimass.store.slots import SlotLeaseRepository
from aimass.store.usage import Spend
from aimass.workspace.ttl import TTLCache

__all__ = [
    "BudgetSpend",
    "Limits",
    "check_budget",
    "check_limits",
    "check_policy",
    "merge_limits",
]


# The largest budget (inputs per day) a key may carry: far past any real use, and
# inside a 64-bit database integer.
_MOST = 10**12


def check_budget(value: object) -> int | None:
    """A prediction budget: ``None`` (unlimited) or a whole number of inputs >= 1."""
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("", "none", "unlimited"):
            return None
        value = int(text) if text.isdigit() else value
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= _MOST:
        raise InvalidArgument(
            f"predict budget {value!r} is not a whole number of inputs per day from 1 to "
            f"{_MOST:,}; "
            "give e.g. 10000, or 'unlimited' to remove the budget",
            field="predict_budget",
        )
    return value


def check_policy(text: str | None) -> str | None:
    """An output policy in its canonical form (``None`` for the full output)."""
    policy = parse_policy(text)
    return None if policy.is_full else str(policy)


def check_limits(kind: str, limits: Mapping[str, object]) -> dict[str, int | str | None]:
    """Validated limits of a ``kind`` (``key``, ``project``); a ``None`` or ``""`` value
    stays ``None`` (it means: remove the stored value)."""
    checked: dict[str, int | str | None] = {}
    for name, value in limits.items():
        if value is None or value == "":
            if name not in LIMIT_NAMES.get(kind, ()):
                _unknown(kind, name)
            checked[name] = None
            continue
        try:
            checked[name] = check_limit(kind, name, value)
        except ValueError as exc:
            raise InvalidArgument(
                f"{kind} limit {name}={str(value)[:60]!r}: {exc}", limit=name[:63]
            ) from exc
    return checked


def _unknown(kind: str, name: str) -> None:
    raise InvalidArgument(
        f"{name[:63]!r} is not a limit a {kind} can carry; use one of "
        f"{', '.join(LIMIT_NAMES.get(kind, ()))}",
        limit=name[:63],
    )


def merge_limits(
    current: Mapping[str, int | str], changes: Mapping[str, int | str | None]
) -> dict[str, int | str]:
    """``current`` with ``changes`` applied (a ``None`` change removes the limit)."""
    merged: dict[str, int | str] = dict(current)
    for name, value in changes.items():
        if value is None:
            merged.pop(name, None)
        else:
            merged[name] = value
    return merged


@dataclass(frozen=True)
class BudgetSpend:
    """A budgeted call's outcome, with when the day's window frees (for ``Retry-After``).

    Attributes:
        spend: What the store counted.
        retry_after: Whole seconds until the next UTC day.
    """

    spend: Spend
    retry_after: int


def _rate_per_second(rate: str) -> float:
    from limits import parse

    item = parse(rate)
    return item.amount / item.get_expiry()


class Limits:
    """Effective per-key and per-project limits, and the daily query budgets.

    Args:
        store: Where keys, projects and usage counters live.
        settings: ``limit_overrides`` and the settings' own values.
        cache_seconds: How long a stored value is reused without a database read.
    """

    def __init__(self, store: Store, settings: Settings, *, cache_seconds: float) -> None:
        self._store = store
        self._settings = settings
        self._stored: TTLCache[str, dict[str, int | str]] = TTLCache(cache_seconds)

    def shared_rates(self) -> RateRepository | None:
        """Where the servers on this database count rates together
        (``AIMASS_SHARED_RATE_LIMITS``); ``None``: each process counts its own."""
        return self._store.rates if self._settings.shared_rate_limits else None

    def shared_slots(self) -> SlotLeaseRepository | None:
        """Where the servers on this database count each key's calls in flight together
        (``AIMASS_SHARED_CONCURRENCY_LIMITS``); ``None``: each process counts its own."""
        return self._store.slots if self._settings.shared_concurrency_limits else None

    def value(self, name: str, subject: str) -> Any:
        """Limit ``name`` for ``subject`` (``key:ID``, ``project:NAME``): stored, else
        ``limit_overrides``, else the setting."""
        found = self.stored(subject).get(name)
        return found if found is not None else self._settings.limit(name, subject)

    def stored(self, subject: str) -> dict[str, int | str]:
        """The limits stored with ``subject`` (cached; empty for none)."""
        read, ident = self._reader(subject)
        if read is None:
            return {}
        return self._stored.get_or_load(subject, lambda: read(ident))

    async def prefetch(self, subject: str) -> None:
        """Have ``subject``'s stored limits cached, for an event loop: a miss is read in
        a worker thread (coroutines that miss together share one read), so the
        synchronous :meth:`value` calls that follow find them without a database read."""
        read, ident = self._reader(subject)
        if read is not None and self._stored.ttl > 0:  # nothing is kept without a cache time
            await self._stored.aget_or_load(subject, lambda: asyncio.to_thread(read, ident))

    def _reader(self, subject: str) -> tuple[Callable[[str], dict[str, int | str]] | None, str]:
        """The store read for ``key:ID`` / ``project:NAME`` (None for an address), and the id."""
        kind, _, ident = subject.partition(":")
        if kind == "key":
            return self._store.keys.limits, ident
        if kind == "project":
            return self._store.projects.limits, ident
        return None, ident

    def forget(self, subject: str) -> None:
        """Drop the cached stored limits of ``subject`` (after a change)."""
        self._stored.invalidate(lambda key, _value: key == subject)

    def check_raise(
        self, kind: str, ident: str, changes: Mapping[str, int | str | None], *, admin: bool
    ) -> None:
        """PermissionDenied when a caller who is not an all-projects admin raises a limit.

        Limits protect the whole server; a project's admin may lower its keys' limits,
        never raise one above what the deployment gives it (settings and overrides).
        ``changes`` must be checked already (:func:`check_limits`).
        """
        if admin:
            return
        for name, value in changes.items():
            # Removing a stored value falls back to the deployment's: never a raise.
            ceiling = self._settings.limit(name, f"{kind}:{ident}")
            if value is not None and _above(value, ceiling):
                raise PermissionDenied(
                    f"{kind} limit {name}={value} would be above this deployment's value "
                    f"{ceiling} (AIMASS_{name.upper()}); only an all-projects admin may "
                    "raise a limit",
                    limit=name,
                )

    def set_project_limits(
        self, project: str, changes: Mapping[str, object], *, replace: bool = False
    ) -> Project:
        """Set (``None``: remove) limits stored with ``project``; returns the project."""
        checked = check_limits("project", changes)
        current = {} if replace else self._store.projects.limits(project)
        self._store.projects.get(project)
        updated = self._store.projects.set_limits(project, merge_limits(current, checked))
        self.forget(f"project:{project}")
        return updated

    def spend(self, key_id: str, inputs: int, *, budget: int) -> BudgetSpend:
        """Count ``inputs`` against the key's budget for today (UTC), all or nothing."""
        now = datetime.now(UTC)
        today: date = now.date()
        spend = self._store.usage.spend(key_id, inputs, budget=budget, day=today)
        midnight = datetime.combine(today + timedelta(days=1), datetime.min.time(), UTC)
        return BudgetSpend(spend, max(1, int((midnight - now).total_seconds()) + 1))

    def used_today(self, key_id: str) -> int:
        """Inputs the key has sent today (UTC)."""
        return self._store.usage.used(key_id, day=datetime.now(UTC).date())


def _above(value: int | str, ceiling: Any) -> bool:
    if isinstance(value, str):
        return _rate_per_second(value) > _rate_per_second(str(ceiling))
    return value > int(ceiling)
