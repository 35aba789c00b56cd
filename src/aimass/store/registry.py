"""The model registry: registered models, numbered versions, aliases, attachments."""

from __future__ import annotations

import dataclasses
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from aimass.entities import Attachment, Lineage, ModelVersion, RegisteredModel
from aimass.errors import Conflict, InvalidArgument, NotFound
from aimass.refs import LATEST, Ref, validate_name
from aimass.store._clock import aware, utcnow
from aimass.store._common import (
    SessionFactory,
    describe_versions,
    next_version,
    project_row,
    retire_version,
    retry_on_duplicate,
)
from aimass.store.tables import AttachmentRow, ModelAliasRow, ModelVersionRow, RegisteredModelRow

__all__ = ["RegistryRepository"]


def _model_entity(row: RegisteredModelRow) -> RegisteredModel:
    aliases = {a.alias: a.version_row.version for a in row.aliases}
    return RegisteredModel(
        project=row.project.name,
        name=row.name,
        description=row.description,
        created_at=aware(row.created_at),
        latest_version=row.versions[-1].version if row.versions else 0,
        aliases=dict(sorted(aliases.items())),
    )


def validate_alias(alias: str) -> str:
    """An alias is a slug that is neither all digits nor ``latest``."""
    validate_name(alias, kind="alias")
    if alias.isdigit() or alias == LATEST:
        raise InvalidArgument(
            f"alias {alias!r} is reserved: all-digit aliases read as versions and "
            f"'{LATEST}' always means the newest version; choose another, e.g. 'production'",
            alias=alias,
        )
    return alias


class RegistryRepository:
    """Registered models and their versions, scoped by project."""

    def __init__(self, session: SessionFactory) -> None:
        self._session = session

    # -- lookups -------------------------------------------------------------

    def _model_row(
        self, session: Session, project: str, name: str, *, lock: bool = False
    ) -> RegisteredModelRow:
        # Every write locks the model's row first (SELECT ... FOR UPDATE on PostgreSQL;
        # SQLite locks the whole database on write): writers of one model, in any
        # process, take turns, so version numbers, aliases and deletions stay consistent.
        validate_name(name, kind="model")
        proj = project_row(session, project)
        query = select(RegisteredModelRow).where(
            RegisteredModelRow.project_id == proj.id, RegisteredModelRow.name == name
        )
        row = session.scalar(query.with_for_update() if lock else query)
        if row is None:
            raise NotFound(
                f"model {name!r} not found in project {project!r}; see 'aimass models list'",
                resource="model",
                name=name,
            )
        return row

    def _version_row(
        self, session: Session, project: str, ref: Ref, *, lock: bool = False
    ) -> ModelVersionRow:
        model = self._model_row(session, project, ref.name, lock=lock)
        if not model.versions:
            raise NotFound(f"model {ref.name!r} has no versions", resource="model", name=ref.name)
        if ref.version is not None:
            for row in model.versions:
                if row.version == ref.version:
                    return row
            raise NotFound(
                f"model {ref.name!r} has no version {ref.version} "
                f"({describe_versions([v.version for v in model.versions])})",
                resource="model_version",
                name=ref.name,
                version=ref.version,
            )
        if ref.alias in (None, LATEST):
            return model.versions[-1]
        for alias in model.aliases:
            if alias.alias == ref.alias:
                return alias.version_row
        known = ", ".join(sorted(a.alias for a in model.aliases)) or "none"
        raise NotFound(
            f"model {ref.name!r} has no alias {ref.alias!r} (aliases: {known}); "
            f"set one with 'aimass models alias {ref.name} VERSION {ref.alias}'",
            resource="model_alias",
            name=ref.name,
            alias=ref.alias,
        )

    def get_model(self, project: str, name: str) -> RegisteredModel:
        """The registered model ``name``."""
        with self._session() as session:
            return _model_entity(self._model_row(session, project, name))

    def list_models(self, project: str) -> list[RegisteredModel]:
        """Every registered model in ``project``, by name."""
        with self._session() as session:
            proj = project_row(session, project)
            rows = session.scalars(
                select(RegisteredModelRow)
                .where(RegisteredModelRow.project_id == proj.id)
                .order_by(RegisteredModelRow.name)
            ).all()
            return [_model_entity(r) for r in rows]

    def get_version(self, project: str, ref: Ref) -> ModelVersion:
        """Resolve ``name@version``, ``name@alias`` or ``name@latest``."""
        with self._session() as session:
            return self._version_row(session, project, ref).to_entity()

    def list_versions(self, project: str, name: str) -> list[ModelVersion]:
        """Every version of ``name``, oldest first."""
        with self._session() as session:
            return [v.to_entity() for v in self._model_row(session, project, name).versions]

    def trained_from(self, project: str, *, field: str, ref: str) -> list[str]:
        """The versions (``name@version``) whose lineage names ``ref`` as its ``field``
        (``dataset`` or ``base``), oldest first."""
        return self.trained_from_each(project, field=field).get(ref, [])

    def trained_from_each(self, project: str, *, field: str) -> dict[str, list[str]]:
        """Every ``ref`` some lineage names as its ``field`` → those versions, oldest
        first: one read for a page that shows the users of several refs."""
        with self._session() as session:
            proj = project_row(session, project)
            rows = session.execute(
                select(RegisteredModelRow.name, ModelVersionRow.version, ModelVersionRow.lineage)
                .join(ModelVersionRow.model)
                .where(RegisteredModelRow.project_id == proj.id)
                .order_by(ModelVersionRow.id)
            ).all()
        users: dict[str, list[str]] = {}
        for name, version, lineage in rows:
            if isinstance(lineage.get(field), str):
                users.setdefault(lineage[field], []).append(f"{name}@{version}")
        return users

    def find_by_config_digest(
        self, project: str, name: str, config_digest: str
    ) -> ModelVersion | None:
        """The newest version of ``name`` trained from identical inputs, if any."""
        with self._session() as session:
            try:
                model = self._model_row(session, project, name)
            except NotFound:
                return None
            for row in reversed(model.versions):
                if row.config_digest == config_digest:
                    return row.to_entity()
            return None

    # -- writes --------------------------------------------------------------

    def create_version(
        self,
        project: str,
        name: str,
        *,
        task: str,
        digest: str,
        uri: str,
        metrics: dict[str, Any],
        lineage: Lineage,
        config_digest: str,
        privacy: dict[str, Any] | None = None,
        description: str = "",
    ) -> ModelVersion:
        """Register a new version of ``name`` (creating the model on first use)."""
        validate_name(name, kind="model")
        fields = {
            "task": task,
            "digest": digest,
            "uri": uri,
            "metrics": metrics,
            "lineage": dataclasses.asdict(lineage),
            "privacy": privacy,
            "config_digest": config_digest,
        }
        # Two processes creating the same new model race on its name: the loser retries.
        return retry_on_duplicate(lambda: self._create_version(project, name, description, fields))

    def _create_version(
        self, project: str, name: str, description: str, fields: dict[str, Any]
    ) -> ModelVersion:
        with self._session() as session:
            proj = project_row(session, project)
            model = session.scalar(
                select(RegisteredModelRow)
                .where(RegisteredModelRow.project_id == proj.id, RegisteredModelRow.name == name)
                .with_for_update()
            )
            if model is None:
                model = RegisteredModelRow(project=proj, name=name, description=description)
                session.add(model)
                session.flush()
            version = next_version(
                session,
                ModelVersionRow.version,
                ModelVersionRow.model_id == model.id,
                retired=(proj.id, "model", name),
            )
            row = ModelVersionRow(model=model, version=version, **fields)
            session.add(row)
            session.flush()
            return row.to_entity()

    def set_alias(self, project: str, name: str, alias: str, version: int) -> ModelVersion:
        """Point ``alias`` at ``version`` (moving it if it points elsewhere)."""
        validate_alias(alias)
        return retry_on_duplicate(lambda: self._set_alias(project, name, alias, version))

    def _set_alias(self, project: str, name: str, alias: str, version: int) -> ModelVersion:
        with self._session() as session:
            ref = Ref(name=name, version=version)
            target = self._version_row(session, project, ref, lock=True)
            model = target.model
            current = next((a for a in model.aliases if a.alias == alias), None)
            if current is None:
                session.add(ModelAliasRow(model=model, alias=alias, version_row=target))
            else:
                current.version_row = target
                current.updated_at = utcnow()
            session.flush()
            session.refresh(target)
            return target.to_entity()

    def delete_alias(self, project: str, name: str, alias: str) -> None:
        """Remove ``alias`` from model ``name``."""
        validate_alias(alias)
        with self._session() as session:
            model = self._model_row(session, project, name, lock=True)
            current = next((a for a in model.aliases if a.alias == alias), None)
            if current is None:
                raise NotFound(
                    f"model {name!r} has no alias {alias!r}", resource="model_alias", alias=alias
                )
            session.delete(current)

    def delete_version(self, project: str, name: str, version: int) -> ModelVersion:
        """Delete a version that no alias points at; returns what was deleted."""
        with self._session() as session:
            ref = Ref(name=name, version=version)
            row = self._version_row(session, project, ref, lock=True)
            if row.aliases:
                held = ", ".join(sorted(a.alias for a in row.aliases))
                raise Conflict(
                    f"model {name!r} version {version} is held by alias(es) {held}; "
                    "move or delete the aliases first",
                    aliases=held,
                )
            entity = row.to_entity()
            retire_version(session, (row.model.project_id, "model", name), version)
            session.delete(row)
            return entity

    def update_version(
        self,
        project: str,
        ref: Ref,
        *,
        metrics: dict[str, Any] | None = None,
        privacy: dict[str, Any] | None = None,
    ) -> ModelVersion:
        """Merge ``metrics`` into a version's metrics and/or set its privacy record."""
        with self._session() as session:
            row = self._version_row(session, project, ref, lock=True)
            if metrics:
                row.metrics = {**row.metrics, **metrics}
            if privacy is not None:
                row.privacy = privacy
            session.flush()
            return row.to_entity()

    def attach(
        self,
        project: str,
        ref: Ref,
        *,
        kind: str,
        name: str,
        uri: str,
        summary: dict[str, Any],
    ) -> Attachment:
        """Attach (or replace) a report named ``name`` of ``kind`` to a version."""
        validate_name(kind, kind="attachment kind")
        validate_name(name, kind="attachment")
        with self._session() as session:
            version = self._version_row(session, project, ref, lock=True)
            row = session.scalar(
                select(AttachmentRow).where(
                    AttachmentRow.version_id == version.id,
                    AttachmentRow.kind == kind,
                    AttachmentRow.name == name,
                )
            )
            if row is None:
                row = AttachmentRow(version_row=version, kind=kind, name=name)
                session.add(row)
            row.uri, row.summary = uri, summary
            session.flush()
            return row.to_entity()

    def attachments(self, project: str, ref: Ref, *, kind: str | None = None) -> list[Attachment]:
        """Attachments of a version, newest first, optionally of one ``kind``."""
        with self._session() as session:
            version = self._version_row(session, project, ref)
            query = select(AttachmentRow).where(AttachmentRow.version_id == version.id)
            if kind is not None:
                query = query.where(AttachmentRow.kind == kind)
            rows = session.scalars(
                query.order_by(AttachmentRow.created_at.desc(), AttachmentRow.id.desc())
            ).all()
            return [r.to_entity() for r in rows]
