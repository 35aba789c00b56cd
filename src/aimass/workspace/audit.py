"""The audit trail of a home: append (one at a time or group-committed), list, verify."""

from __future__ import annotations

import hashlib
import logging
import queue
import threading
from concurrent.futures import Future

from aimass.entities import AuditEvent
from aimass.store import AuditRecord, AuditVerification, Store

__all__ = ["AuditTrail", "AuditWriter", "input_hash"]

log = logging.getLogger("aimass.audit")


def input_hash(body: bytes) -> str | None:
    """SHA-256 of a request body: proves what was sent without keeping it."""
    return hashlib.sha256(body).hexdigest() if body else None


class AuditWriter:
    """Appends records from many threads, committing whatever has queued up together.

    One writer thread drains the queue and appends up to ``max_group`` records
    per transaction, so 64 concurrent requests cost a handful of commits, not 64.
    Every caller gets a future that resolves once its record is committed.
    """

    def __init__(self, store: Store, key: bytes, *, max_group: int = 512) -> None:
        self._store = store
        self._key = key
        self._max_group = max_group
        self._queue: queue.Queue[tuple[AuditRecord, Future[AuditEvent]] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="aimass-audit", daemon=True)
        self._thread.start()

    def submit(self, record: AuditRecord) -> Future[AuditEvent]:
        """Queue ``record``; the future resolves to the stored event."""
        future: Future[AuditEvent] = Future()
        self._queue.put((record, future))
        return future

    def close(self) -> None:
        """Commit what is queued, then stop the writer thread."""
        self._queue.put(None)
        self._thread.join()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            group = [item]
            stop = False
            while len(group) < self._max_group:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                group.append(more)
            self._write(group)
            if stop:
                return

    def _write(self, group: list[tuple[AuditRecord, Future[AuditEvent]]]) -> None:
        try:
            events = self._store.audit.append([r for r, _ in group], key=self._key)
        except Exception as exc:  # every waiting caller hears about it
            log.exception("audit write failed")
            for _, future in group:
                future.set_exception(exc)
            return
        for (_, future), event in zip(group, events, strict=True):
            future.set_result(event)


class AuditTrail:
    """The hash-chained audit log of one home, keyed with its server secret."""

    def __init__(self, store: Store, key: bytes) -> None:
        self._store = store
        self._key = key
        self._writer: AuditWriter | None = None
        self._lock = threading.Lock()

    @property
    def writer(self) -> AuditWriter:
        """The group-committing writer (started on first use)."""
        with self._lock:
            if self._writer is None:
                self._writer = AuditWriter(self._store, self._key)
            return self._writer

    def record(self, record: AuditRecord) -> AuditEvent:
        """Append one record now and return it."""
        return self._store.audit.append([record], key=self._key)[0]

    def list(
        self,
        *,
        project: str | None = None,
        action: str | None = None,
        before: int | None = None,
        limit: int = 100,
    ) -> list[AuditEvent]:
        """Newest events first."""
        return self._store.audit.list(project=project, action=action, before=before, limit=limit)

    def verify(self) -> AuditVerification:
        """Recompute the whole chain; any edited or deleted row is reported."""
        return self._store.audit.verify(key=self._key)

    def close(self) -> None:
        """Flush and stop the writer, if it was started."""
        with self._lock:
            if self._writer is not None:
                self._writer.close()
                self._writer = None
