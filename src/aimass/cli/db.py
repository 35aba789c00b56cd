"""``aimass db``: the metadata database's schema revisions, encryption and backups."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from aimass.cli._common import JsonOpt, command, console, emit_json, settings

app = typer.Typer(help="Metadata database: schema, encryption, backups.", no_args_is_help=True)


def _engine() -> Any:
    """An engine on the home's database, keyed when it is encrypted."""
    from aimass.artifacts.database_key import database_key
    from aimass.store.session import make_engine

    return make_engine(settings().resolved_store_uri, key=database_key(settings()))


@app.command("current")
@command
def current(json_out: JsonOpt = False) -> None:
    """The database's schema revision and the one this aimass needs."""
    from aimass.artifacts.database_key import database_status
    from aimass.store.schema import current_revision, head_revision

    engine = _engine()
    info = {
        "current": current_revision(engine),
        "head": head_revision(engine),
        **database_status(settings()),
    }
    engine.dispose()
    if json_out:
        emit_json(info)
    else:
        state = {True: "encrypted", False: "plaintext", None: "server"}[info["encrypted"]]
        console.print(
            f"database at {info['current'] or 'none'} ({state}); this aimass needs {info['head']}"
        )


@app.command("upgrade")
@command
def upgrade() -> None:
    """Migrate the database to this aimass's schema (back it up first)."""
    from aimass.store.schema import head_revision
    from aimass.store.schema import upgrade as run_upgrade

    settings().home.mkdir(parents=True, exist_ok=True)
    engine = _engine()
    run_upgrade(engine)
    console.print(f"database upgraded to {head_revision(engine)}")
    engine.dispose()


@app.command("encrypt")
@command
def encrypt(json_out: JsonOpt = False) -> None:
    """Encrypt a plaintext SQLite metadata database in place (stop servers and jobs first).

    SQLCipher encrypts every page; its key is wrapped by the master key, in the file
    beside the database ending in ``.key``.
    """
    from aimass.artifacts.database_key import encrypt_database

    with console.status("encrypting the metadata database ..."):
        done = encrypt_database(settings())
    if json_out:
        emit_json(done)
    elif done.get("already"):
        console.print(f"{done['database']} is already encrypted")
    else:
        console.print(
            f"[bold]{done['database']}[/] is encrypted; its key is in {done['database']}.key, "
            "wrapped by the master key: back up both together, and the master key apart"
        )


@app.command("backup")
@command
def backup(
    destination: Annotated[
        Path, typer.Argument(help="A new file to write the copy to (its key file beside it).")
    ],
    json_out: JsonOpt = False,
) -> None:
    """Copy the live metadata database consistently, encrypted as it is, with its key file.

    SQLite's online backup: servers may keep writing meanwhile.
    """
    from aimass.artifacts.database_key import backup_database

    with console.status(f"copying the metadata database to {destination} ..."):
        done = backup_database(settings(), destination)
    if json_out:
        emit_json(done)
    else:
        extra = f" and its key file {done['key_file']}" if done["key_file"] else ""
        console.print(f"copied the metadata database to [bold]{done['copy']}[/]{extra}")
