"""The audit log: an append-only, hash-chained record of who did what.

Each row's ``hash`` is an HMAC-SHA256 (keyed with the server secret) over its
fields and the previous row's hash, and rows carry gap-free sequence numbers,
so :meth:`AuditRepository.verify` finds any edited, inserted or deleted row.
The ``audit_head`` row holds the newest ``(seq, keyed hash)``: deleting rows at
the tail breaks it too. Writers serialise on that row (an ``UPDATE`` takes the
write lock on SQLite and a row lock on PostgreSQL) and append many records in
one transaction (group commit).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select, update

from aimass.entities import AuditEvent
from aimass.errors import AlreadyExists
from aimass.store._clock import aware, utcnow
from aimass.store._common import SessionFactory
from aimass.store.tables import AuditHeadRow, AuditRow

__all__ = ["GENESIS", "AuditRecord", "AuditRepository", "AuditVerification"]

GENESIS = "0" * 64
_HEAD_ID = 1


@dataclass(frozen=True)
class AuditRecord:
    """What a caller appends; the repository adds ``seq``, time and the hashes."""

    actor: str
    action: str
    resource: str
    outcome: str
    key_id: str | None = None
    project: str | None = None
    status: int | None = None
    request_id: str | None = None
    input_hash: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AuditVerification:
    """The result of checking the whole chain.

    Attributes:
        ok: No problem was found.
        rows: Rows checked.
        head_seq: Sequence number of the newest row (0 when empty).
        problems: One line per broken row, naming its sequence number.
    """

    ok: bool
    rows: int
    head_seq: int
    problems: list[str]


def _content(event: AuditEvent | AuditRow) -> dict[str, Any]:
    return {
        "seq": event.seq,
        "time": aware(event.time).isoformat(),
        "actor": event.actor,
        "key_id": event.key_id,
        "project": event.project,
        "action": event.action,
        "resource": event.resource,
        "outcome": event.outcome,
        "status": event.status,
        "request_id": event.request_id,
        "input_hash": event.input_hash,
        "details": event.details,
    }


def row_hash(key: bytes, prev_hash: str, content: dict[str, Any]) -> str:
    """Keyed hash of one row: HMAC-SHA256(key, prev_hash + canonical JSON of its fields)."""
    payload = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hmac.new(key, f"{prev_hash}\n{payload}".encode(), hashlib.sha256).hexdigest()


def head_hash(key: bytes, seq: int, last_hash: str) -> str:
    """Keyed hash of the head pointer, so it cannot be moved back without the key."""
    return hmac.new(key, f"head:{seq}:{last_hash}".encode(), hashlib.sha256).hexdigest()


class AuditRepository:
    """Append to, list and verify the audit chain."""

    def __init__(self, session: SessionFactory) -> None:
        self._session = session
        # Threads of one process queue here instead of spinning on the database lock.
        self._lock = threading.Lock()

    def append(self, records: Sequence[AuditRecord], *, key: bytes) -> list[AuditEvent]:
        """Append ``records`` in order, in one transaction; returns the stored events."""
        if not records:
            return []
        with self._lock:
            for attempt in range(5):
                try:
                    return self._append(records, key)
                except AlreadyExists:
                    # Another process created the head row first; take the lock again.
                    if attempt == 4:
                        raise
        raise AssertionError("unreachable")

    def _append(self, records: Sequence[AuditRecord], key: bytes) -> list[AuditEvent]:
        with self._session() as session:
            locked = session.execute(
                update(AuditHeadRow).where(AuditHeadRow.id == _HEAD_ID).values(seq=AuditHeadRow.seq)
            )
            if locked.rowcount == 0:  # type: ignore[attr-defined]  # UPDATE gives a CursorResult
                session.add(AuditHeadRow(id=_HEAD_ID, seq=0, hash=head_hash(key, 0, GENESIS)))
                session.flush()
            head = session.get(AuditHeadRow, _HEAD_ID)
            assert head is not None
            last = session.get(AuditRow, head.seq) if head.seq else None
            prev_hash, seq = (last.hash if last is not None else GENESIS), head.seq
            rows = []
            for record in records:
                seq += 1
                row = AuditRow(
                    seq=seq, time=utcnow(), prev_hash=prev_hash, hash="", **_fields(record)
                )
                row.hash = row_hash(key, prev_hash, _content(row))
                prev_hash = row.hash
                rows.append(row)
            session.add_all(rows)
            head.seq, head.hash = seq, head_hash(key, seq, prev_hash)
            session.flush()
            return [r.to_entity() for r in rows]

    def list(
        self,
        *,
        project: str | None = None,
        action: str | None = None,
        before: int | None = None,
        limit: int = 100,
    ) -> list[AuditEvent]:
        """Newest events first, optionally of one project/action, older than seq ``before``."""
        query = select(AuditRow)
        if project is not None:
            query = query.where(AuditRow.project == project)
        if action is not None:
            query = query.where(AuditRow.action == action)
        if before is not None:
            query = query.where(AuditRow.seq < before)
        with self._session() as session:
            rows = session.scalars(query.order_by(AuditRow.seq.desc()).limit(limit)).all()
            return [r.to_entity() for r in rows]

    def verify(self, *, key: bytes, chunk: int = 1000) -> AuditVerification:
        """Recompute the chain up to the head; report every row that does not fit.

        Rows appended while it runs are left for the next run; rows beyond the
        head that no writer accounts for are reported.
        """
        problems: list[str] = []
        prev_hash, expected, rows = GENESIS, 1, 0
        with self._session() as session:
            head = session.get(AuditHeadRow, _HEAD_ID)
            end = head.seq if head is not None else 0
            while expected <= end:
                batch = session.scalars(
                    select(AuditRow)
                    .where(AuditRow.seq >= expected, AuditRow.seq <= end)
                    .order_by(AuditRow.seq)
                    .limit(chunk)
                ).all()
                if not batch:
                    break
                for row in batch:
                    rows += 1
                    problems += _check(key, row, expected, prev_hash)
                    prev_hash, expected = row.hash, row.seq + 1
            if head is not None and (
                expected - 1 != end or head.hash != head_hash(key, end, prev_hash)
            ):
                problems.append(
                    f"the head says the log ends at row {end} but the rows end at {expected - 1} "
                    "(rows at the end were deleted, or the head was edited)"
                )
        with self._session() as session:
            newest = session.scalar(select(func.max(AuditRow.seq))) or 0
            head = session.get(AuditHeadRow, _HEAD_ID)
            if newest > (head.seq if head is not None else 0):
                problems.append(f"rows after the head (up to {newest}) were added without the key")
        return AuditVerification(ok=not problems, rows=rows, head_seq=end, problems=problems)


def _check(key: bytes, row: AuditRow, expected: int, prev_hash: str) -> list[str]:
    problems = []
    if row.seq != expected:
        problems.append(f"rows {expected}..{row.seq - 1} are missing (deleted)")
    if row.prev_hash != prev_hash:
        problems.append(f"row {row.seq}: does not link to the row before it")
    if row_hash(key, row.prev_hash, _content(row)) != row.hash:
        problems.append(f"row {row.seq}: content does not match its hash (edited)")
    return problems


def _fields(record: AuditRecord) -> dict[str, Any]:
    return {
        "actor": record.actor[:127],
        "key_id": record.key_id,
        "project": record.project,
        "action": record.action[:63],
        "resource": record.resource[:2000],
        "outcome": record.outcome[:31],
        "status": record.status,
        "request_id": record.request_id,
        "input_hash": record.input_hash,
        "details": record.details,
    }
