"""``aimass keys create/show/update`` and ``aimass projects set-limits/show`` on a local home."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from aimass.cli import app

runner = CliRunner()


def run(*args, ok=True):
    result = runner.invoke(app, [str(a) for a in args])
    if ok:
        assert result.exit_code == 0, result.output
    return result


def run_json(*args):
    return json.loads(run(*args, "--json").stdout)


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("AIMASS_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_keys_carry_a_budget_a_policy_and_limits_from_creation_to_update(home):
    created = run_json(
        "keys",
        "create",
        "app",
        "--scope",
        "predict",
        "--predict-budget",
        "100",
        "--output-policy",
        "top_k=1,round=2",
        "--limit",
        "max_streams_per_key=2",
        "--limit",
        "requests_per_key=60/minute",
    )
    record = created["record"]
    assert record["predict_budget"] == 100 and record["output_policy"] == "top_k=1,round=2"
    assert record["limits"] == {"max_streams_per_key": 2, "requests_per_key": "60/minute"}
    key_id = record["id"]
    assert run_json("keys", "show", key_id) == record
    listed = run_json("keys", "list")
    assert next(k for k in listed if k["id"] == key_id)["predict_budget"] == 100

    updated = run_json(
        "keys",
        "update",
        key_id,
        "--predict-budget",
        "unlimited",
        "--output-policy",
        "labels",
        "--limit",
        "max_streams_per_key=",
    )
    assert updated["predict_budget"] is None and updated["output_policy"] == "labels"
    assert updated["limits"] == {"requests_per_key": "60/minute"}
    assert "output policy:  labels" in run("keys", "show", key_id).stdout

    actions = [e["action"] for e in run_json("audit", "list")]
    assert "keys.create" in actions and "keys.update" in actions
    update = next(e for e in run_json("audit", "list") if e["action"] == "keys.update")
    assert update["details"]["output_policy"] == "labels"
    assert update["details"]["changed"] == ["limits", "output_policy", "predict_budget"]


def test_project_limits_are_set_shown_and_removed(home):
    shown = run_json(
        "projects",
        "set-limits",
        "default",
        "--limit",
        "max_epochs=3",
        "--limit",
        "max_job_seconds=600",
    )
    assert shown["limits"] == {"max_epochs": 3, "max_job_seconds": 600}
    assert run_json("projects", "show", "default")["limits"]["max_epochs"] == 3
    assert run_json("projects", "set-limits", "default", "--limit", "max_epochs=")["limits"] == {
        "max_job_seconds": 600
    }
    assert any(e["action"] == "projects.update" for e in run_json("audit", "list"))


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["keys", "create", "x", "--scope", "predict", "--limit", "max_epochs=3"], ["max_epochs"]),
        (["keys", "create", "x", "--scope", "predict", "--limit", "oops"], ["NAME=VALUE"]),
        (["keys", "create", "x", "--scope", "predict", "--output-policy", "top=3"], ["top=3"]),
        (["projects", "set-limits", "default", "--limit", "max_epochs=-2"], ["max_epochs", "-2"]),
        (
            ["projects", "set-limits", "default", "--limit", "requests_per_key=1/s"],
            ["requests_per_key"],
        ),
        (["keys", "update", "abcdef012345", "--predict-budget", "lots"], ["lots", "unlimited"]),
    ],
)
def test_bad_limits_and_policies_exit_1_naming_them(home, args, words):
    result = run(*args, ok=False)
    assert result.exit_code == 1, result.output
    for word in words:
        assert word in result.output
