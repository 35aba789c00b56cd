"""Query-budget counters: inputs each budgeted key sent per UTC day, kept in the store.

Kept in the database (not in the server's memory) so a restart, or a second server
process on the same store, neither forgets nor double-counts what a key spent.
One row per key and day; only keys that carry a budget ever write one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import delete, select, update

from aimass.errors import AlreadyExists
from aimass.store._common import SessionFactory
from aimass.store.tables import KeyUsageRow

__all__ = ["Spend", "UsageRepository"]


@dataclass(frozen=True)
class Spend:
    """The outcome of asking to spend ``inputs`` of a key's daily budget.

    Attributes:
        accepted: Whether the inputs were counted (all of them) or refused (none).
        used: Inputs counted for the day, after this call.
        budget: The budget the call was checked against.
    """

    accepted: bool
    used: int
    budget: int

    @property
    def left(self) -> int:
        """Inputs the key may still send today."""
        return max(0, self.budget - self.used)


class UsageRepository:
    """Count inputs against per-key daily budgets, atomically."""

    def __init__(self, session: SessionFactory) -> None:
        self._session = session

    def spend(self, key_id: str, inputs: int, *, budget: int, day: date) -> Spend:
        """Count ``inputs`` for ``key_id`` on ``day`` unless that would pass ``budget``.

        All or nothing: a call that would pass the budget counts nothing. The check
        and the increment are one conditional ``UPDATE``, so concurrent calls (threads,
        processes) can never together spend more than the budget.
        """
        key = day.isoformat()
        for _ in range(3):  # a concurrent first insert of the day makes us retry once
            if self._increment(key_id, key, inputs, budget):
                return Spend(True, self.used(key_id, day=day), budget)
            used = self.used(key_id, day=day)
            if used > 0 or inputs > budget:
                return Spend(False, used, budget)
            try:
                self._insert(key_id, key, inputs)
            except AlreadyExists:
                continue
            return Spend(True, inputs, budget)
        return Spend(False, self.used(key_id, day=day), budget)

    def used(self, key_id: str, *, day: date) -> int:
        """Inputs counted for ``key_id`` on ``day``."""
        with self._session() as session:
            found = session.scalar(
                select(KeyUsageRow.inputs).where(
                    KeyUsageRow.key_id == key_id, KeyUsageRow.day == day.isoformat()
                )
            )
            return int(found or 0)

    def _increment(self, key_id: str, day: str, inputs: int, budget: int) -> bool:
        with self._session() as session:
            result = session.execute(
                update(KeyUsageRow)
                .where(
                    KeyUsageRow.key_id == key_id,
                    KeyUsageRow.day == day,
                    KeyUsageRow.inputs + inputs <= budget,
                )
                .values(inputs=KeyUsageRow.inputs + inputs)
            )
            return bool(getattr(result, "rowcount", 0))

    def _insert(self, key_id: str, day: str, inputs: int) -> None:
        with self._session() as session:
            # Older days are never read again: a key keeps one row.
            session.execute(
                delete(KeyUsageRow).where(KeyUsageRow.key_id == key_id, KeyUsageRow.day < day)
            )
            session.add(KeyUsageRow(key_id=key_id, day=day, inputs=inputs))
