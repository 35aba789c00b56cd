"""Rate, concurrency and quota limits of one server, and the audit of their decisions.

Rates (failed authentications per client address and per key id, requests per
key) are moving windows of the ``limits`` library, kept in this process's
memory: a restart forgets them, and several server processes each count their
own. With ``AIMASS_SHARED_RATE_LIMITS`` they are sliding-window counters in the
metadata database instead (:class:`DatabaseRateStorage`), shared by every server on
it: a client that spreads its attempts over the servers behind a load balancer
gets the limit once, not once per server. Concurrency (predict calls and generate
streams in flight, per key and in total, each kind with its own limits) is a
counter held for the length of a call. With ``AIMASS_SHARED_CONCURRENCY_LIMITS`` a
key's calls in flight are also counted across the servers, as leases in the metadata
database (:class:`~aimass.store.slots.SlotLeaseRepository`) that this server renews
while it runs; the totals stay each server's own, as they guard its own capacity.

A refusal is a :class:`~aimass.errors.RateLimited` (429 with ``Retry-After``).
The audit log gets one ``limit.throttled`` entry when a subject (an address,
a key) *starts* being refused, not one per refused request, so a flood of
refused requests cannot flood the log.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio
from limits import RateLimitItem, parse
from limits.storage import MemoryStorage, Storage
from limits.storage.base import SlidingWindowCounterSupport, TimestampedSlidingWindow
from limits.strategies import MovingWindowRateLimiter, RateLimiter, SlidingWindowCounterRateLimiter
from starlette.concurrency import run_in_threadpool

from aimass.errors import RateLimited
from aimass.settings import Settings

if TYPE_CHECKING:
    from aimass.store.rates import RateRepository
    from aimass.store.slots import SlotLeaseRepository

__all__ = ["DatabaseRateStorage", "Decision", "Throttle", "client_address"]

log = logging.getLogger("aimass.server")

# Subjects remembered as "being refused" at most; past it the oldest are forgotten
# (a forgotten subject refused again is audited again, which is harmless).
_MAX_REMEMBERED = 10_000
# A shared slot's lease lapses this long after its last renewal (a server that died
# frees its keys' slots within it); a running server renews every third of it.
LEASE_SECONDS = 30.0


def client_address(scope: Mapping[str, Any]) -> str:
    """The client address of an ASGI request, what failed authentications count against."""
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


@dataclass(frozen=True)
class Decision:
    """A limit started refusing a subject (what the audit log records).

    Attributes:
        limit: The limit's name (``auth_failures_per_address``, ``requests_per_key``, ...).
        subject: Who is refused: ``address:IP``, ``key:ID`` or ``project:NAME``.
        retry_after: Seconds until the first retry can succeed.
        value: The limit as configured (``20/minute``, ``8``).
    """

    limit: str
    subject: str
    retry_after: int
    value: str


class DatabaseRateStorage(Storage, SlidingWindowCounterSupport, TimestampedSlidingWindow):
    """A ``limits`` storage over :class:`~aimass.store.rates.RateRepository`: the sliding
    window counter strategy (a window's count, plus the previous window's weighted by
    how much of it still overlaps) on counters every server on the database shares."""

    def __init__(self, rates: RateRepository) -> None:
        super().__init__()
        self._rates = rates

    @property
    def base_exceptions(self) -> type[Exception] | tuple[type[Exception], ...]:
        """Errors of the database underneath (the store raises aimass errors)."""
        return (Exception,)

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        """Add to a window's count."""
        return self._rates.incr(key, expiry, amount)

    def get(self, key: str) -> int:
        """A window's count."""
        return self._rates.get(key)

    def get_expiry(self, key: str) -> float:
        """When a window's count expires."""
        return self._rates.get_expiry(key)

    def check(self) -> bool:
        """The database answers (the server's readiness checks it already)."""
        return True

    def reset(self) -> int | None:
        """Forget every count."""
        return self._rates.reset()

    def clear(self, key: str) -> None:
        """Forget one window's count."""
        self._rates.clear(key)

    def acquire_sliding_window_entry(
        self, key: str, limit: int, expiry: int, amount: int = 1
    ) -> bool:
        """Count ``amount`` hits unless the weighted count would pass ``limit``; a
        concurrent hit that got there first is taken back (as ``limits`` does in memory)."""
        if amount > limit:
            return False
        previous, previous_ttl, current, _ = self.get_sliding_window(key, expiry)
        if math.floor(previous * previous_ttl / expiry + current) + amount > limit:
            return False
        window = self.sliding_window_keys(key, expiry, time.time())[1]
        current = self._rates.incr(window, 2 * expiry, amount)
        if math.floor(previous * previous_ttl / expiry + current) > limit:
            self._rates.decr(window, amount)
            return False
        return True

    def get_sliding_window(self, key: str, expiry: int) -> tuple[int, float, int, float]:
        """The previous window's count and remaining weight in seconds, the current
        window's count and time to live."""
        now = time.time()
        previous_key, current_key = self.sliding_window_keys(key, expiry, now)
        counts = self._rates.get_many([previous_key, current_key])
        previous, current = counts[previous_key], counts[current_key]
        previous_ttl = 0.0 if previous == 0 else (1 - (((now - expiry) / expiry) % 1)) * expiry
        current_ttl = (1 - ((now / expiry) % 1)) * expiry + expiry
        return previous, previous_ttl, current, current_ttl

    def clear_sliding_window(self, key: str, expiry: int) -> None:
        """Forget both windows of ``key``."""
        for window in self.sliding_window_keys(key, expiry, time.time()):
            self._rates.clear(window)


class Throttle:
    """The limits of one server (see the module docstring).

    Args:
        settings: The limits (``auth_failures_per_*``, ``requests_per_key``,
            ``max_predicts*``, ``max_streams*``).
        on_decision: Called once each time a subject starts being refused.
        clock: Seconds, for the "already refused" memory (tests pass a fake).
        limit: ``limit(name, subject)``, the value of a per-key or per-project limit
            (default ``settings.limit``; the server passes the store-backed
            :meth:`aimass.workspace.limits.Limits.value`).
        rates: Where rates are counted when they are shared (``shared_rate_limits``);
            ``None``: in this process's memory.
        slots: Where each key's calls in flight are counted when they are shared
            (``shared_concurrency_limits``); ``None``: in this process's memory only.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        on_decision: Callable[[Decision], None],
        clock: Callable[[], float] = time.monotonic,
        limit: Callable[[str, str], Any] | None = None,
        rates: RateRepository | None = None,
        slots: SlotLeaseRepository | None = None,
    ) -> None:
        # Checks that make database round trips run in a worker thread (see run()).
        self._shared = rates is not None or slots is not None
        self._leases = slots
        self.holder = f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._held: dict[tuple[str, str], list[str]] = {}
        # Leases whose release failed (the database did not answer): the renewal thread
        # gives them back, before it renews the rest, so they are never kept alive.
        self._orphans: list[str] = []
        self._renewing = threading.Event()
        self._renewer: threading.Thread | None = None
        self._limiter: RateLimiter = (
            SlidingWindowCounterRateLimiter(DatabaseRateStorage(rates))
            if rates is not None
            else MovingWindowRateLimiter(MemoryStorage())
        )
        self._settings = settings
        self._limit = limit or settings.limit
        self._parsed: dict[str, RateLimitItem] = {}
        # kind -> (setting per key, setting in total)
        self._slots = {
            "predict": ("max_predicts_per_key", "max_predicts"),
            "generate": ("max_streams_per_key", "max_streams"),
        }
        self._streams: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()
        self._refusing: dict[tuple[str, str], float] = {}
        self._on_decision = on_decision
        self._clock = clock

    async def run(self, check: Callable[..., None], *args: Any) -> None:
        """Call one of the checks below from the event loop: in a worker thread when the
        limits are counted in the database (a round trip must not hold up the loop), at
        once when they are in memory."""
        if self._shared:
            await run_in_threadpool(check, *args)
        else:
            check(*args)

    # -- shared slots ----------------------------------------------------------------------

    def start(self) -> None:
        """Renew this server's shared slot leases in a daemon thread until :meth:`stop`
        (nothing to do when slots are counted in memory)."""
        if self._leases is None or self._renewer is not None:
            return
        self._renewing.clear()
        self._renewer = threading.Thread(target=self._renew, name="aimass-slot-leases", daemon=True)
        self._renewer.start()

    def stop(self) -> None:
        """Stop renewing and give back every lease this server still holds."""
        if self._leases is None or self._renewer is None:
            return
        self._renewing.set()
        self._renewer.join(timeout=10)
        self._renewer = None
        try:
            self._leases.release_holder(self.holder)
        except Exception:  # the database went first: the leases lapse on their own
            log.warning("could not give back the shared slot leases", exc_info=True)

    def _renew(self) -> None:
        assert self._leases is not None
        while not self._renewing.wait(LEASE_SECONDS / 3):
            try:
                with self._lock:
                    orphans, self._orphans = self._orphans, []
                while orphans:
                    self._leases.release(orphans[-1])
                    orphans.pop()
                self._leases.renew(self.holder, LEASE_SECONDS)
            except Exception:  # a database hiccup: the next round tries again
                with self._lock:
                    self._orphans.extend(orphans)
                log.warning("could not renew the shared slot leases", exc_info=True)

    # -- authentication ------------------------------------------------------------------

    def check_auth(self, address: str, key_id: str | None) -> None:
        """Refuse a client address or key id that failed to authenticate too often."""
        self._check_rate("auth_failures_per_address", f"address:{address}", hit=False)
        if key_id is not None:
            self.check_key(key_id)

    def check_key(self, key_id: str) -> None:
        """Refuse a key id that failed to authenticate too often (the address apart)."""
        self._check_rate("auth_failures_per_key", f"key:{key_id}", hit=False)

    def refuse_credentialless(self, address: str) -> None:
        """A request that needed credentials and brought none: 429 past the address's
        count, else counted as one failed authentication (the caller answers 401)."""
        self.check_auth(address, None)
        self.auth_failed(address, None)

    def auth_failed(self, address: str, key_id: str | None) -> None:
        """Count one failed authentication against the address and the key id."""
        subject = f"address:{address}"
        self._limiter.hit(self._rate("auth_failures_per_address", subject), subject)
        if key_id is not None:
            subject = f"key:{key_id}"
            self._limiter.hit(self._rate("auth_failures_per_key", subject), subject)

    # -- requests ------------------------------------------------------------------------

    def request(self, key_id: str) -> None:
        """Count one request of ``key_id``; RateLimited past ``requests_per_key``."""
        self._check_rate("requests_per_key", f"key:{key_id}", hit=True)

    @contextmanager
    def stream(self, key_id: str, kind: str = "predict") -> Iterator[None]:
        """Hold one of the key's (and the server's) ``kind`` slots for the block (blocking:
        from the event loop use :meth:`holding`)."""
        self.acquire_stream(key_id, kind)
        try:
            yield
        finally:
            self.release_stream(key_id, kind)

    @asynccontextmanager
    async def holding(self, key_id: str, kind: str = "predict") -> AsyncIterator[None]:
        """:meth:`stream` from the event loop: the slot is given back even when the call
        is cancelled (its client went away)."""
        await self.run(self.acquire_stream, key_id, kind)
        try:
            yield
        finally:
            await self.give_back(key_id, kind)

    async def give_back(self, key_id: str, kind: str = "predict") -> None:
        """:meth:`release_stream` from the event loop: at once in memory; through a worker
        thread shielded from cancellation when the slot is a lease (a slot not given back
        would stay taken)."""
        if not self._shared:
            self.release_stream(key_id, kind)
            return
        with anyio.CancelScope(shield=True):
            await run_in_threadpool(self.release_stream, key_id, kind)

    def acquire_stream(self, key_id: str, kind: str = "predict") -> None:
        """Take a ``predict`` or ``generate`` slot; RateLimited when the key or server is full.

        Every successful call must be paired with :meth:`release_stream`.
        """
        per_key_name, total_name = self._slots[kind]
        per_key = int(self._limit(per_key_name, f"key:{key_id}"))
        total_limit = int(getattr(self._settings, total_name))
        with self._lock:
            total = sum(n for (k, _), n in self._streams.items() if k == kind)
            mine = self._streams.get((kind, key_id), 0)
            if total >= total_limit:
                refused = (total_name, "server", total_limit, "this server")
            elif mine >= per_key:
                refused = (per_key_name, f"key:{key_id}", per_key, "this key")
            else:
                self._streams[(kind, key_id)] = mine + 1
                refused = None
        if refused is None and self._leases is not None:
            lease = self._lease(key_id, kind, per_key)
            if lease is None:
                refused = (per_key_name, f"key:{key_id}", per_key, "this key on all servers")
        if refused is None:
            return
        limit, subject, value, whose = refused
        raise self._refuse(
            limit,
            subject,
            retry_after=1,
            value=str(value),
            message=f"{value} {kind} calls are already in flight for {whose} (the limit, "
            f"AIMASS_{limit.upper()}); retry when one finishes",
        )

    def _lease(self, key_id: str, kind: str, per_key: int) -> str | None:
        """The shared lease on one of the key's ``kind`` slots, or ``None`` when the other
        servers hold the rest (this server's count is then taken back)."""
        assert self._leases is not None
        try:
            lease = self._leases.acquire(
                f"{kind}:key:{key_id}", per_key, holder=self.holder, ttl=LEASE_SECONDS
            )
        except BaseException:
            self._uncount(key_id, kind)
            raise
        with self._lock:
            if lease is None:
                self._uncount_locked(key_id, kind)
            else:
                self._held.setdefault((kind, key_id), []).append(lease)
        return lease

    def release_stream(self, key_id: str, kind: str = "predict") -> None:
        """Give back a slot taken by :meth:`acquire_stream`."""
        with self._lock:
            self._uncount_locked(key_id, kind)
            held = self._held.get((kind, key_id))
            lease = held.pop() if held else None
            if held is not None and not held:
                del self._held[(kind, key_id)]
        if lease is not None and self._leases is not None:
            try:
                self._leases.release(lease)
            except Exception:  # the call is done: its lease goes at the next renewal
                with self._lock:
                    self._orphans.append(lease)
                log.warning("could not give back a shared slot lease", exc_info=True)

    def _uncount(self, key_id: str, kind: str) -> None:
        with self._lock:
            self._uncount_locked(key_id, kind)

    def _uncount_locked(self, key_id: str, kind: str) -> None:
        left = self._streams.get((kind, key_id), 0) - 1
        if left > 0:
            self._streams[(kind, key_id)] = left
        else:
            self._streams.pop((kind, key_id), None)

    def in_flight(self, kind: str = "predict", key_id: str | None = None) -> int:
        """``kind`` calls in flight (of one key, or all)."""
        with self._lock:
            if key_id is None:
                return sum(n for (k, _), n in self._streams.items() if k == kind)
            return self._streams.get((kind, key_id), 0)

    # -- quotas --------------------------------------------------------------------------

    def refuse_quota(
        self, limit: str, subject: str, *, value: int, message: str, retry_after: int = 30
    ) -> RateLimited:
        """The error for a quota checked elsewhere (jobs per project, a key's daily query
        budget), its decision audited once per ``retry_after`` window."""
        return self._refuse(
            limit, subject, retry_after=retry_after, value=str(value), message=message
        )

    # -- internals -----------------------------------------------------------------------

    def _rate(self, limit: str, subject: str) -> RateLimitItem:
        """The rate ``limit`` for ``subject`` (its override, else the setting), parsed once."""
        value = str(self._limit(limit, subject))
        item = self._parsed.get(value)
        if item is None:
            item = self._parsed[value] = parse(value)
        return item

    def _check_rate(self, limit: str, subject: str, *, hit: bool) -> None:
        item = self._rate(limit, subject)
        allowed = self._limiter.hit(item, subject) if hit else self._limiter.test(item, subject)
        if allowed:
            return
        reset = self._limiter.get_window_stats(item, subject).reset_time
        retry_after = max(1, math.ceil(reset - time.time()))
        value = str(self._limit(limit, subject))
        setting = f"AIMASS_{limit.upper()}"
        what = "failed authentications" if limit.startswith("auth") else "requests"
        raise self._refuse(
            limit,
            subject,
            retry_after=retry_after,
            value=value,
            message=f"too many {what} from {subject} (the limit is {value}, {setting}); "
            f"retry in {retry_after} s",
        )

    def _refuse(
        self, limit: str, subject: str, *, retry_after: int, value: str, message: str
    ) -> RateLimited:
        now = self._clock()
        with self._lock:
            until = self._refusing.get((limit, subject))
            new = until is None or until <= now
            self._refusing[(limit, subject)] = now + retry_after
            if new and len(self._refusing) > _MAX_REMEMBERED:
                for key in list(self._refusing)[: len(self._refusing) - _MAX_REMEMBERED]:
                    del self._refusing[key]
        if new:
            self._on_decision(Decision(limit, subject, retry_after, value))
        return RateLimited(message, retry_after=retry_after, limit=limit)
