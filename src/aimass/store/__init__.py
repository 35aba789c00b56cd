"""The metadata store: projects, datasets, base models, the registry, pipelines and jobs.

SQLAlchemy 2 over SQLite (default) or PostgreSQL. Every method runs in one
managed session and returns entities, never ORM rows.

Example:
    >>> store = Store.open("sqlite:///:memory:")
    >>> store.projects.get("default").name
    'default'
"""

from __future__ import annotations

from contextlib import AbstractContextManager

from sqlalchemy.exc import DatabaseError
from sqlalchemy.orm import Session, sessionmaker

from aimass.store.audit import AuditRecord, AuditRepository, AuditVerification
from aimass.store.jobs import JobRepository
from aimass.store.keys import ApiKeyRepository
from aimass.store.locks import database_lock
from aimass.store.pipelines import PipelineRepository
from aimass.store.projects import DEFAULT_PROJECT, ProjectRepository
from aimass.store.rates import RateRepository
from aimass.store.references import ReferenceRepository
from aimass.store.registry import RegistryRepository
from aimass.store.schema import ensure_schema
from aimass.store.session import make_engine, managed_session, unreadable
from aimass.store.slots import SlotLeaseRepository
from aimass.store.usage import UsageRepository
from aimass.store.versioned import BaseModelRepository, DatasetRepository

__all__ = ["DEFAULT_PROJECT", "AuditRecord", "AuditVerification", "Store"]


class Store:
    """Facade over the feature repositories of one metadata database.

    Args:
        uri: SQLAlchemy URL (``sqlite:///path.db``, ``postgresql+psycopg://...``).
        migrate: Migrate an empty database to the current schema on open.
        key: The 32-byte key of an encrypted SQLite database (SQLCipher); ``None``:
            plaintext (see :mod:`aimass.artifacts.database_key`).
    """

    def __init__(self, uri: str, *, migrate: bool = True, key: bytes | None = None) -> None:
        self.uri = uri
        self.engine = make_engine(uri, key=key)
        if migrate:
            try:
                ensure_schema(self.engine)
            except DatabaseError as exc:
                if "file is not a database" not in str(exc):
                    raise  # not about the key: unreachable, locked, ... as before
                self.engine.dispose()
                raise unreadable(uri, encrypted=key is not None) from None
        maker = sessionmaker(self.engine, expire_on_commit=False)

        def session() -> AbstractContextManager[Session]:
            return managed_session(maker)

        self.projects = ProjectRepository(session)
        self.datasets = DatasetRepository(session)
        self.bases = BaseModelRepository(session)
        self.registry = RegistryRepository(session)
        self.pipelines = PipelineRepository(session)
        self.jobs = JobRepository(session)
        self.keys = ApiKeyRepository(session)
        self.audit = AuditRepository(session)
        self.usage = UsageRepository(session)
        self.references = ReferenceRepository(session)
        self.rates = RateRepository(self.engine)
        self.slots = SlotLeaseRepository(self.engine)
        self.projects.ensure(DEFAULT_PROJECT)

    def lock(self, name: str) -> AbstractContextManager[None]:
        """Hold the named lock across every process on this database (PostgreSQL
        advisory lock; a no-op on SQLite), for check-then-act steps no row guards."""
        return database_lock(self.engine, name)

    @classmethod
    def open(cls, uri: str, *, key: bytes | None = None) -> Store:
        """Open (and on first use create) the store at ``uri`` (``key``: see the class)."""
        return cls(uri, key=key)

    def close(self) -> None:
        """Release the database connections."""
        self.engine.dispose()
