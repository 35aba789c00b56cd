"""``aimass secrets``: the keys that encrypt artifacts at rest and sign bundles."""

from __future__ import annotations

import base64
import secrets as random
from typing import Annotated, Any

import typer

from aimass.cli._common import JsonOpt, command, console, emit_json, local_workspace, settings

app = typer.Typer(
    help="Encryption keys of artifacts at rest and the bundle-signing key (local home).",
    no_args_is_help=True,
)


@app.command("status")
@command
def status(json_out: JsonOpt = False) -> None:
    """Where the master keys come from, what artifacts are encrypted and signed with."""
    from aimass.workspace.secrets import secrets_status

    ws = local_workspace("secrets status")
    info = secrets_status(ws.settings, ws.artifacts)
    if json_out:
        emit_json(info)
        return
    state = "on" if info["encrypt_at_rest"] else "off (new artifacts are written in plaintext)"
    console.print(f"encryption at rest: {state}")
    console.print(f"master keys: {info['key_source']} {info['key_location']}")
    console.print(f"active key: {info['active_key'] or '-'}; keys held: {len(info['keys'])}")
    for kid, count in sorted(info["encrypted_files"].items()):
        console.print(f"  {count} files wrapped by {kid}")
    console.print(f"plaintext files: {info['plaintext_files']}")
    database = info["metadata_database"]
    if database["encrypted"] is not None:
        state = f"encrypted, key wrapped by {database.get('key_id')}"
        console.print(
            f"metadata database: {state if database['encrypted'] else 'plaintext'}"
            + ("" if database["encrypted"] else " ('aimass db encrypt' encrypts it)")
        )
    console.print(
        f"signing key: {info['signing_key']} (trusted: {', '.join(info['trusted_keys'])})"
    )
    unsigned = info["unsigned_bundles"]
    console.print(f"bundles: {info['bundles']}, unsigned: {len(unsigned)}")
    if unsigned or info["plaintext_files"]:
        console.print("run 'aimass secrets migrate' to sign and encrypt what predates them")


@app.command("rotate")
@command
def rotate(
    keep_old: Annotated[
        bool, typer.Option("--keep-old", help="Keep the old master keys in the key file.")
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Re-wrap every data key under a new master key (the ciphertexts stay as they are).

    With the key file a new key is made; with AIMASS_MASTER_KEY or a key command, set
    a keyring whose active key is the new one first, then run this.
    """
    from aimass.workspace.secrets import rotate_master_key

    ws = local_workspace("secrets rotate")
    report = rotate_master_key(ws.settings, ws.artifacts, retire=not keep_old)
    if json_out:
        emit_json(report)
        return
    console.print(
        f"master key {report['previous_key']} → {report['active_key']}: "
        f"{report['rewrapped_files']} files re-wrapped, {report['already_active']} already were"
        + ("; the metadata database's key re-wrapped" if report["database_key_rewrapped"] else "")
    )
    if report["retired_keys"]:
        console.print(f"retired from the key file: {', '.join(report['retired_keys'])}")
    elif report["source"] != "file":
        console.print(f"every file now needs only {report['active_key']}; drop the others")


@app.command("migrate")
@command
def migrate(json_out: JsonOpt = False) -> None:
    """Sign the bundles and encrypt the artifacts written before this aimass did so."""
    from aimass.workspace.secrets import migrate_artifacts

    ws = local_workspace("secrets migrate")
    report: dict[str, Any] = migrate_artifacts(ws.settings, ws.artifacts)
    if json_out:
        emit_json(report)
        return
    console.print(
        f"signed {len(report['signed_bundles'])} bundles, encrypted "
        f"{report['encrypted_files']} artifacts"
    )
    for key, reason in report["refused_bundles"].items():
        console.print(f"[red]not signed[/red] {key}: {reason}")
    if report["refused_bundles"]:
        raise typer.Exit(1)


@app.command("new-key")
@command
def new_key() -> None:
    """Print a fresh random master key (base64) for AIMASS_MASTER_KEY or a KMS."""
    typer.echo(base64.b64encode(random.token_bytes(32)).decode())


@app.command("public-key")
@command
def public_key() -> None:
    """Print this home's bundle-signing public key (PEM), for verifying exported bundles."""
    from aimass.workspace.secrets import signing_key

    settings().home.mkdir(parents=True, exist_ok=True)
    typer.echo(signing_key(settings()).public_pem(), nl=False)
