"""API keys: records and keyed hashes only; the secret is shown once and never stored."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from aimass.entities import ApiKey
from aimass.errors import NotFound
from aimass.refs import validate_name
from aimass.store._common import SessionFactory, project_row
from aimass.store.tables import ApiKeyRow

__all__ = ["ApiKeyRepository"]


class ApiKeyRepository:
    """Create, look up, list, revoke and touch API keys."""

    def __init__(self, session: SessionFactory) -> None:
        self._session = session

    def create(
        self,
        key_id: str,
        *,
        name: str,
        project: str | None,
        scopes: Sequence[str],
        secret_hash: str,
        expires_at: datetime | None = None,
        created_by: str | None = None,
        predict_budget: int | None = None,
        output_policy: str | None = None,
        limits: Mapping[str, int | str] | None = None,
    ) -> ApiKey:
        """Store a new key record (``project=None``: an all-projects admin key).

        ``predict_budget``, ``output_policy`` and ``limits`` are stored as given: the
        caller (:class:`~aimass.workspace.keys.KeyRing`) validates them.
        """
        validate_name(name, kind="key")
        with self._session() as session:
            proj = project_row(session, project) if project is not None else None
            row = ApiKeyRow(
                id=key_id,
                name=name,
                project=proj,
                scopes=list(scopes),
                secret_hash=secret_hash,
                expires_at=expires_at,
                revoked=False,
                created_by=created_by,
                predict_budget=predict_budget,
                output_policy=output_policy,
                limits=dict(limits) if limits else None,
            )
            session.add(row)
            session.flush()
            return row.to_entity()

    def _row(self, session: Session, key_id: str, project: str | None) -> ApiKeyRow:
        row = session.get(ApiKeyRow, key_id)
        foreign = project is not None and (
            row is None or row.project is None or row.project.name != project
        )
        if row is None or foreign:
            raise NotFound(f"API key {key_id!r} not found", resource="api_key", id=key_id)
        return row

    def get(self, key_id: str, *, project: str | None = None) -> ApiKey:
        """The key ``key_id`` (restricted to keys of ``project`` when given)."""
        with self._session() as session:
            return self._row(session, key_id, project).to_entity()

    def lookup(self, key_id: str) -> tuple[ApiKey, str] | None:
        """The key and its stored hash, or ``None`` (for authentication)."""
        with self._session() as session:
            row = session.get(ApiKeyRow, key_id)
            return (row.to_entity(), row.secret_hash) if row is not None else None

    def list(self, *, project: str | None = None) -> list[ApiKey]:
        """Keys of ``project`` (every key when ``None``), oldest first."""
        query = select(ApiKeyRow)
        with self._session() as session:
            if project is not None:
                query = query.where(ApiKeyRow.project_id == project_row(session, project).id)
            rows = session.scalars(query.order_by(ApiKeyRow.created_at, ApiKeyRow.id)).all()
            return [r.to_entity() for r in rows]

    def revoke(self, key_id: str, *, project: str | None = None) -> ApiKey:
        """Revoke a key (idempotent); it is refused from then on."""
        with self._session() as session:
            row = self._row(session, key_id, project)
            row.revoked = True
            session.flush()
            return row.to_entity()

    def update(
        self, key_id: str, changes: Mapping[str, Any], *, project: str | None = None
    ) -> ApiKey:
        """Change ``predict_budget``, ``output_policy`` and/or ``limits`` (the whole
        mapping; an empty one clears them) of a key; other fields never change."""
        unknown = set(changes) - {"predict_budget", "output_policy", "limits"}
        assert not unknown, f"not updatable: {unknown}"
        with self._session() as session:
            row = self._row(session, key_id, project)
            for name, value in changes.items():
                if name == "limits":
                    value = dict(value) if value else None
                setattr(row, name, value)
            session.flush()
            return row.to_entity()

    def limits(self, key_id: str) -> dict[str, int | str]:
        """The limits stored with a key (empty for none, or for an unknown key)."""
        with self._session() as session:
            row = session.get(ApiKeyRow, key_id)
            return dict(row.limits or {}) if row is not None else {}

    def touch(self, key_id: str, when: datetime) -> None:
        """Record a successful use."""
        with self._session() as session:
            session.execute(
                update(ApiKeyRow).where(ApiKeyRow.id == key_id).values(last_used_at=when)
            )

    def count_admins(self) -> int:
        """All-projects admin keys that are not revoked."""
        with self._session() as session:
            rows = session.scalars(
                select(ApiKeyRow).where(
                    ApiKeyRow.project_id.is_(None), ApiKeyRow.revoked.is_(False)
                )
            ).all()
            return len(rows)
