"""Migrations reproduce the ORM schema on SQLite and PostgreSQL; old databases are
refused with the fix; every revision downgrades again."""

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from aimass.errors import ErrorCode, SchemaOutOfDate
from aimass.store import Store
from aimass.store.schema import (
    alembic_config,
    current_revision,
    ensure_schema,
    head_revision,
    upgrade,
)
from aimass.store.session import make_engine
from aimass.store.tables import Base


def schema_diff(engine):
    with engine.connect() as connection:
        return compare_metadata(MigrationContext.configure(connection), Base.metadata)


def test_migrating_an_empty_database_reproduces_the_orm_metadata(store_uri):
    engine = make_engine(store_uri)
    upgrade(engine)
    assert schema_diff(engine) == []
    assert current_revision(engine) == head_revision(engine)
    engine.dispose()


def test_every_revision_downgrades_and_upgrades_again(store_uri):
    engine = make_engine(store_uri)
    upgrade(engine)
    command.downgrade(alembic_config(engine), "base")
    assert current_revision(engine) is None
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    upgrade(engine)
    assert schema_diff(engine) == []
    engine.dispose()


def test_a_new_database_is_created_at_head(store_uri):
    store = Store.open(store_uri)
    assert current_revision(store.engine) == head_revision(store.engine)
    assert [p.name for p in store.projects.list()] == ["default"]
    store.close()


def test_an_out_of_date_database_is_refused_with_the_command_that_fixes_it(store_uri):
    engine = make_engine(store_uri)
    upgrade(engine)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '0000'"))
    with pytest.raises(SchemaOutOfDate) as info:
        ensure_schema(engine)
    assert info.value.code == ErrorCode.FAILED_PRECONDITION
    assert "aimass db upgrade" in info.value.message
    engine.dispose()


def test_a_foreign_database_is_not_touched(store_uri):
    engine = make_engine(store_uri)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE stuff (id INTEGER)"))
    with pytest.raises(SchemaOutOfDate):
        ensure_schema(engine)
    assert inspect(engine).get_table_names() == ["stuff"]
    engine.dispose()
