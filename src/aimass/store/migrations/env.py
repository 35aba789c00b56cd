"""Alembic environment: runs aimass migrations on the engine aimass hands it."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from aimass.store.tables import Base

config = context.config
target_metadata = Base.metadata


def run_migrations() -> None:
    """Run migrations online, on the engine in ``config.attributes`` when given."""
    engine = config.attributes.get("engine")
    if engine is None:
        url = config.get_main_option("sqlalchemy.url")
        if url is None:
            raise SystemExit("no database to migrate: run 'aimass db upgrade'")
        engine = create_engine(url)
    with engine.begin() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            # SQLite cannot ALTER most things in place; batch mode copies tables.
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("aimass migrations run online only: use 'aimass db upgrade'")
run_migrations()
