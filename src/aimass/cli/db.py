"""``aimass db``: schema revisions of the metadata database."""

from __future__ import annotations

import typer

from aimass.cli._common import JsonOpt, command, console, emit_json, settings

app = typer.Typer(help="Metadata database schema.", no_args_is_help=True)


@app.command("current")
@command
def current(json_out: JsonOpt = False) -> None:
    """The database's schema revision and the one this aimass needs."""
    from aimass.store.schema import current_revision, head_revision
    from aimass.store.session import make_engine

    engine = make_engine(settings().resolved_store_uri)
    info = {"current": current_revision(engine), "head": head_revision(engine)}
    engine.dispose()
    if json_out:
        emit_json(info)
    else:
        console.print(f"database at {info['current'] or 'none'}; this aimass needs {info['head']}")


@app.command("upgrade")
@command
def upgrade() -> None:
    """Migrate the database to this aimass's schema (back it up first)."""
    from aimass.store.schema import head_revision
    from aimass.store.schema import upgrade as run_upgrade
    from aimass.store.session import make_engine

    settings().home.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings().resolved_store_uri)
    run_upgrade(engine)
    console.print(f"database upgraded to {head_revision(engine)}")
    engine.dispose()
