"""Root flags (--version, --api-key) and 'aimass serve --job-threads' (and its old name)."""

from __future__ import annotations

import io

import pytest
from typer.testing import CliRunner

from aimass._version import __version__
from aimass.cli import app

runner = CliRunner()


def test_version_flag_prints_the_version_and_exits():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout == f"aimass {__version__}\n"
    assert runner.invoke(app, ["version"]).stdout == result.stdout


def test_api_key_flag_reaches_the_settings_and_never_the_output(monkeypatch):
    seen = {}

    def configure(settings, *, verbose):
        seen["settings"] = settings

    monkeypatch.setattr("aimass.cli.configure", configure)
    secret = "aimass_0123456789ab_flagsecret"
    result = runner.invoke(app, ["--url", "http://127.0.0.1:9", "--api-key", secret, "version"])
    assert result.exit_code == 0 and secret not in result.output
    assert seen["settings"].api_key.get_secret_value() == secret
    assert secret not in repr(seen["settings"])


@pytest.fixture
def served(monkeypatch, tmp_path):
    """Run 'aimass serve' up to uvicorn: what create_app was asked for, nothing started."""
    monkeypatch.setenv("AIMASS_HOME", str(tmp_path / "home"))
    calls = {}

    def create_app(settings, *, workspace=None, job_workers=None, freeze_gc=False):
        calls["job_workers"] = job_workers
        calls["freeze_gc"] = freeze_gc
        return object()

    monkeypatch.setattr("aimass.server.create_app", create_app)
    monkeypatch.setattr("uvicorn.run", lambda app, **options: calls.setdefault("ran", True))
    return calls


def test_serve_job_threads_sets_the_threads_that_run_jobs(served):
    result = runner.invoke(app, ["serve", "--job-threads", "3"])
    assert result.exit_code == 0, result.output
    # A server process lives until it exits: it freezes the GC once started.
    assert served == {"job_workers": 3, "freeze_gc": True, "ran": True}
    assert "deprecated" not in result.stderr


def test_serve_workers_still_works_with_a_deprecation_warning(served):
    result = runner.invoke(app, ["serve", "--workers", "0"])
    assert result.exit_code == 0, result.output
    assert served["job_workers"] == 0
    assert "--workers is deprecated" in result.stderr and "--job-threads" in result.stderr


def test_serve_refuses_both_names_and_hides_the_old_one(served):
    both = runner.invoke(app, ["serve", "--workers", "1", "--job-threads", "2"])
    assert both.exit_code == 1 and "give only --job-threads" in both.stderr
    assert "ran" not in served
    shown = runner.invoke(app, ["serve", "--help"], env={"COLUMNS": "200"})
    assert "--job-threads" in shown.stdout and "--workers" not in shown.stdout


def _commands(command, path=("aimass",)):
    """(path, command) for ``command`` and every command under it."""
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from _commands(sub, (*path, name))


def test_every_command_summarises_itself_in_one_line():
    # The first paragraph of a docstring is the command's line in its group's --help;
    # a hard line break there splits that line in the middle of the table.
    import typer

    for path, command in _commands(typer.main.get_command(app)):
        summary = (command.help or "").split("\n\n")[0].strip()
        assert summary, f"{' '.join(path)} has no help"
        assert "\n" not in summary, f"{' '.join(path)}: put its summary on one line: {summary!r}"


def test_a_value_wider_than_its_column_is_folded_never_cut(monkeypatch):
    from rich.console import Console

    from aimass.cli import _common

    narrow = Console(width=40, record=True, file=io.StringIO())
    monkeypatch.setattr(_common, "console", narrow)
    job_id = "0474c6bb146c433794984928a6684d5a"
    _common.table("jobs", ["id", "kind", "status"], [[job_id, "train", "succeeded"]])
    text = narrow.export_text()
    assert "…" not in text
    first_column = "".join(line.split("│")[1].strip() for line in text.splitlines() if "│" in line)
    assert job_id in first_column
