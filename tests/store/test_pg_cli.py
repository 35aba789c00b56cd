"""``aimass db current`` / ``aimass db upgrade`` on SQLite and PostgreSQL, and URLs whose
password needs escaping."""

import json
import secrets
from urllib.parse import quote

import pytest
from typer.testing import CliRunner

from aimass.cli import app
from aimass.store import Store
from aimass.store.schema import head_revision, upgrade
from aimass.store.session import make_engine


def db(store_uri, *args):
    result = CliRunner().invoke(app, ["db", *args], env={"AIMASS_DATABASE_URL": store_uri})
    assert result.exit_code == 0, result.output
    return result.stdout


def test_db_current_and_upgrade_bring_an_old_database_to_head(store_uri):
    engine = make_engine(store_uri)
    upgrade(engine, "0002")
    head = head_revision(engine)
    engine.dispose()
    before = json.loads(db(store_uri, "current", "--json"))
    assert (before["current"], before["head"]) == ("0002", head)
    # Made plaintext (no key file beside it): it stays so; a server database is not ours.
    assert before["encrypted"] is (False if store_uri.startswith("sqlite") else None)
    assert f"database upgraded to {head}" in db(store_uri, "upgrade")
    after = json.loads(db(store_uri, "current", "--json"))
    assert (after["current"], after["head"]) == (head, head)
    store = Store.open(store_uri)
    assert [p.name for p in store.projects.list()] == ["default"]
    store.close()


@pytest.mark.services
def test_a_password_with_url_escapes_works(postgres_server, postgres_url):
    # '%' in a URL-quoted password once broke Alembic's config (ini interpolation).
    password = f"p%@:/{secrets.token_hex(4)}"
    role = f"r_{secrets.token_hex(4)}"
    database = postgres_url.rsplit("/", 1)[1]
    with postgres_server.connect() as connection:
        connection.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
        connection.execute(f"ALTER DATABASE {database} OWNER TO {role}")
    url = f"postgresql+psycopg://{role}:{quote(password, safe='')}@127.0.0.1:{postgres_server.port}/{database}"
    db(url, "upgrade")
    store = Store.open(url)
    assert store.projects.get("default").name == "default"
    store.close()
