"""The ``aimass`` command line (Typer). Thin: every command calls the workspace.

Heavy modules (torch, SQLAlchemy) are imported inside commands, so ``aimass
--help`` stays fast.
"""

from __future__ import annotations

from typing import Annotated

import typer

from aimass._version import __version__
from aimass.cli import (
    bases,
    datasets,
    db,
    evaluate,
    jobs,
    lm,
    models,
    pii,
    pipelines,
    results,
    secrets,
    service,
)
from aimass.cli._common import backend, command, configure, console, reset, settings
from aimass.cli.distill import distill
from aimass.cli.gc import gc
from aimass.cli.privacy import audit_privacy
from aimass.cli.train import predict, quickstart, train
from aimass.settings import load_settings

__all__ = ["app", "main"]

app = typer.Typer(
    name="aimass",
    help="Self-hosted model-as-a-service for transformer models on sensitive data.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
app.add_typer(datasets.app, name="datasets")
app.add_typer(bases.app, name="bases")
app.add_typer(models.app, name="models")
app.add_typer(pipelines.app, name="pipelines")
app.add_typer(db.app, name="db")
app.add_typer(secrets.app, name="secrets")
service.register(app)
app.add_typer(pii.app, name="pii")
app.command("audit-privacy")(audit_privacy)
app.add_typer(evaluate.app, name="reports")
app.command("evaluate")(evaluate.evaluate)
app.command("train")(train)
app.command("distill")(distill)
app.command("gc")(gc)
app.command("predict")(predict)
app.command("quickstart")(quickstart)
app.command("generate")(lm.generate)
app.add_typer(lm.tokenizers_app, name="tokenizers")
app.add_typer(lm.recipes_app, name="recipes")
bases.app.command("scratch")(lm.scratch)
bases.app.command("from-model")(lm.from_model)
bases.app.command("shrink")(lm.shrink)
jobs.jobs.command("results")(results.jobs_results)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"aimass {__version__}")
        raise typer.Exit()


@app.callback()
def _entry(
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Log progress to stderr.")
    ] = False,
    url: Annotated[
        str | None,
        typer.Option(
            "--url", help="Talk to this aimass server (else AIMASS_URL; else the local home)."
        ),
    ] = None,
    api_key: Annotated[
        str | None,
        typer.Option(
            "--api-key",
            help="The API key sent to the server (else AIMASS_API_KEY, which is safer: a "
            "command line is visible to other users of this machine).",
            show_default=False,
        ),
    ] = None,
    _version: Annotated[
        bool,
        typer.Option(
            "--version", is_eager=True, callback=_print_version, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Read settings once, at the edge, and set up logging."""
    reset()
    overrides = {"url": url, "api_key": api_key}
    configure(
        load_settings(**{k: v for k, v in overrides.items() if v is not None}), verbose=verbose
    )


@app.command("version")
@command
def version() -> None:
    """Print the aimass version, and with --url the server's."""
    console.print(f"aimass {__version__}")
    url = settings().url
    if url:
        console.print(f"server at {url}: aimass {backend().about().version}")


def main() -> None:
    """Console-script entry point."""
    app()
