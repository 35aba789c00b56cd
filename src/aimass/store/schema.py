"""Schema revisions: create a fresh database at head, refuse an out-of-date one.

Migrations live in ``migrations/versions`` (Alembic). A new, empty database is
migrated to head automatically; an existing one at an older revision is refused
with the command that upgrades it, so a shared PostgreSQL database is never
changed behind an operator's back. On PostgreSQL, checking and migrating hold an
advisory lock, so several servers starting at once on one new database create it once.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect

from aimass.errors import SchemaOutOfDate
from aimass.store.locks import database_lock

__all__ = ["alembic_config", "current_revision", "ensure_schema", "head_revision", "upgrade"]

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(engine: Engine) -> Config:
    """An Alembic config bound to ``engine`` (no ini file needed)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    # The config is ini-style: '%' (in a URL-quoted password) must be doubled.
    url = engine.url.render_as_string(hide_password=False).replace("%", "%%")
    config.set_main_option("sqlalchemy.url", url)
    config.attributes["engine"] = engine
    return config


def head_revision(engine: Engine) -> str:
    """The newest revision this aimass knows."""
    head = ScriptDirectory.from_config(alembic_config(engine)).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (``None`` when never migrated)."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Migrate the database to ``revision``."""
    with database_lock(engine, "schema"):
        command.upgrade(alembic_config(engine), revision)


def ensure_schema(engine: Engine) -> None:
    """Migrate an empty database to head; refuse one at an older revision."""
    head = head_revision(engine)
    if current_revision(engine) == head:
        return
    with database_lock(engine, "schema"):
        # Another process may have migrated it while this one waited for the lock.
        current = current_revision(engine)
        if current == head:
            return
        if current is None and not inspect(engine).get_table_names():
            command.upgrade(alembic_config(engine), "head")
            return
    raise SchemaOutOfDate(
        f"the metadata database is at schema revision {current or 'none'}, this aimass "
        f"needs {head}: back it up, then run 'aimass db upgrade'",
        current=current,
        head=head,
    )
