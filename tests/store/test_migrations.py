"""Migrations reproduce the ORM schema; old databases are refused with the fix."""

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text

from aimass.errors import ErrorCode, SchemaOutOfDate
from aimass.store import Store
from aimass.store.schema import current_revision, ensure_schema, head_revision, upgrade
from aimass.store.session import make_engine
from aimass.store.tables import Base


def test_migrating_an_empty_database_reproduces_the_orm_metadata(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'm.db'}")
    upgrade(engine)
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert diff == []
    assert current_revision(engine) == head_revision(engine)


def test_a_new_database_is_created_at_head(tmp_path):
    store = Store.open(f"sqlite:///{tmp_path / 'new.db'}")
    assert current_revision(store.engine) == head_revision(store.engine)
    assert [p.name for p in store.projects.list()] == ["default"]


def test_an_out_of_date_database_is_refused_with_the_command_that_fixes_it(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    upgrade(engine)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '0000'"))
    with pytest.raises(SchemaOutOfDate) as info:
        ensure_schema(engine)
    assert info.value.code == ErrorCode.FAILED_PRECONDITION
    assert "aimass db upgrade" in info.value.message


def test_a_foreign_database_is_not_touched(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'foreign.db'}")
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE stuff (id INTEGER)"))
    with pytest.raises(SchemaOutOfDate):
        ensure_schema(engine)
    with engine.connect() as connection:
        tables = connection.execute(text("SELECT name FROM sqlite_master")).scalars().all()
    assert tables == ["stuff"]
