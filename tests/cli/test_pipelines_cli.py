"""``aimass pipelines`` on a local home: create from JSON and YAML, list, show, versions,
alias, predict, and spec errors that name the step."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from aimass.cli import app
from tests.conftest import register_copy, trained_workspace

runner = CliRunner()

SPEC = {
    "steps": [
        {"name": "clean", "type": "deidentify", "recognizers": ["email", "phone"], "next": "lang"},
        {"name": "lang", "type": "route", "routes": {"zh": "zh"}, "default": "en"},
        {"name": "zh", "type": "model", "model": "m2@1", "next": "gate"},
        {"name": "en", "type": "model", "model": "m@latest", "next": "gate"},
        {"name": "gate", "type": "threshold", "min_score": 0.5},
    ]
}
YAML = """\
steps:
  - {name: both, type: ensemble, models: [m@1, m2@1], next: names}
  - name: names
    type: labels
    map: {pos: positive, neg: negative}
"""


@pytest.fixture(scope="module")
def built(tmp_path_factory, tiny_bert_dir):
    root = tmp_path_factory.mktemp("pipelines-cli")
    ws = trained_workspace(root / "home", tiny_bert_dir, root / "data")
    register_copy(ws, "m@1", "m2", config_digest="m2")
    ws.close()
    return root


@pytest.fixture
def home(built, monkeypatch):
    monkeypatch.setenv("AIMASS_HOME", str(built / "home"))
    monkeypatch.setenv("AIMASS_DEVICE", "cpu")
    return built


def run(*args, ok=True):
    result = runner.invoke(app, [str(a) for a in args])
    if ok:
        assert result.exit_code == 0, result.output
    return result


def run_json(*args):
    return json.loads(run(*args, "--json").stdout)


def test_create_show_alias_and_predict(home, tmp_path):
    spec = tmp_path / "triage.json"
    spec.write_text(json.dumps(SPEC))
    made = run_json("pipelines", "create", spec, "--name", "triage", "--description", "demo")
    assert (made["name"], made["version"], made["created"]) == ("triage", 1, True)
    assert "pinned to m@1" in run("pipelines", "create", spec, "--name", "triage").stdout
    assert [p["name"] for p in run_json("pipelines", "list")] == ["triage"]
    assert run_json("pipelines", "versions", "triage")[0]["models"] == ["m", "m2"]
    assert run_json("pipelines", "alias", "triage", "production", "1")["aliases"] == ["production"]
    shown = run("pipelines", "show", "triage@production").stdout
    assert "clean(deidentify)" in shown and "m, m2" in shown

    results = run_json(
        "pipelines", "predict", "triage@production", "good great film", "这部电影很好"
    )
    assert results[0]["text"] == "good great film" and results[0]["label"] == "pos"
    assert results[0]["decided_by"] == {"step": "en", "model": "m@1"}
    assert results[1]["decided_by"]["step"] == "zh"
    table = run("pipelines", "predict", "triage", "bad awful plot").stdout
    assert "en (m@1)" in table and "neg" in table


def test_a_yaml_spec_with_an_ensemble(home, tmp_path):
    spec = tmp_path / "vote.yaml"
    spec.write_text(YAML)
    made = run_json("pipelines", "create", spec, "--name", "vote")
    assert made["spec"]["steps"][0]["models"] == ["m@1", "m2@1"]
    results = run_json("pipelines", "predict", "vote", "good great film")
    assert results[0]["label"] == "positive"
    assert results[0]["decided_by"] == {"step": "both", "models": ["m@1", "m2@1"]}


def test_spec_errors_name_the_step_and_exit_nonzero(home, tmp_path):
    spec = tmp_path / "bad.json"
    spec.write_text(json.dumps({"steps": [{"name": "m", "type": "modle", "model": "m@1"}]}))
    result = run("pipelines", "create", spec, "--name", "bad", ok=False)
    assert result.exit_code != 0
    assert "step 'm': unknown type 'modle'" in result.output
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    result = run("pipelines", "create", broken, "--name", "bad", ok=False)
    assert "is not valid JSON" in result.output


def test_evaluate_records_a_report_on_the_version(home, tmp_path):
    spec = tmp_path / "graded.json"
    spec.write_text(json.dumps(SPEC))
    run("pipelines", "create", spec, "--name", "graded")
    quick = ["--robustness-sample", "20", "--explain-examples", "1", "--min-group-size", "5"]
    out = run_json("pipelines", "evaluate", "graded@1", "--dataset", "s", *quick)
    assert out["pipeline"]["evaluations"][out["report"]]["dataset"] == "s@1"
    assert out["document"]["model"]["architecture"] == "pipeline"
    assert out["document"]["summary"]["rows"] > 0
    table = run(
        "pipelines", "evaluate", "graded", "--dataset", "s", *quick, "--out", tmp_path / "r.html"
    )
    assert "accuracy" in table.stdout and (tmp_path / "r.json").is_file()
    assert f"report {out['report']}" in run("pipelines", "show", "graded").stdout

    # An ensemble answering 'positive'/'negative' cannot be scored on 'pos'/'neg' rows.
    vote = tmp_path / "renamed.yaml"
    vote.write_text(YAML)
    run("pipelines", "create", vote, "--name", "renamed")
    refused = run("pipelines", "evaluate", "renamed", "--dataset", "s", ok=False)
    assert refused.exit_code != 0
    assert "pipeline renamed@1: the dataset's labels do not match the pipeline's" in refused.output


def test_unalias_and_delete_a_version(home, tmp_path):
    spec = tmp_path / "gone.json"
    spec.write_text(json.dumps(SPEC))
    run("pipelines", "create", spec, "--name", "gone")
    run("pipelines", "alias", "gone", "staging", "1")
    held = run("pipelines", "delete-version", "gone", "1", "--yes", ok=False)
    assert held.exit_code != 0 and "held by alias(es) staging" in held.output
    assert "removed alias 'staging'" in run("pipelines", "unalias", "gone", "staging").stdout
    assert run_json("pipelines", "delete-version", "gone", "1", "--yes")["version"] == 1
    missing = run("pipelines", "show", "gone", ok=False)
    assert missing.exit_code != 0
