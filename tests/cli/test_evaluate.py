"""The CLI for explanations and reports: ``predict --explain``, ``evaluate``, ``reports``."""

import json
import re

import pytest
from typer.testing import CliRunner

from aimass.cli import app
from tests.conftest import trained_workspace

runner = CliRunner()


def run(*args, ok=True):
    result = runner.invoke(app, [str(a) for a in args])
    if ok:
        assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="module")
def home(tmp_path_factory, tiny_bert_dir):
    """An aimass home with the tiny classifier 'm' trained on dataset 's'."""
    root = tmp_path_factory.mktemp("cli-trust")
    trained_workspace(root / "home", tiny_bert_dir, root / "data").close()
    return root / "home"


@pytest.fixture(autouse=True)
def _env(home, monkeypatch):
    monkeypatch.setenv("AIMASS_HOME", str(home))
    monkeypatch.setenv("AIMASS_DEVICE", "cpu")
    monkeypatch.setenv("AIMASS_NUM_THREADS", "1")


def test_predict_explain_shows_coloured_words():
    result = run("predict", "m", "the film was good and happy", "--explain", "occlusion")
    out = result.stdout
    assert "explains the probability of" in out and "(occlusion)" in out
    assert "the film was good and happy" in out
    assert "for:" in out or "against:" in out


def test_predict_explain_json_has_scores_with_offsets():
    text = "good film, not bad"
    result = run("predict", "m", text, "--explain", "integrated-gradients", "--json")
    [row] = json.loads(result.stdout)
    e = row["explanation"]
    assert row["text"] == text and e["method"] == "integrated-gradients"
    assert [w["word"] for w in e["words"]] == ["good", "film", ",", "not", "bad"]
    assert all(text[w["start"] : w["end"]] == w["word"] for w in e["words"])
    assert "convergence_delta" in e["details"]


def test_predict_explain_with_an_unknown_method_is_a_clean_error():
    result = run("predict", "m", "good film", "--explain", "lime", ok=False)
    assert result.exit_code == 1
    assert "INVALID_ARGUMENT" in result.output and "unknown explainer 'lime'" in result.output


def test_evaluate_writes_the_report_and_lists_it(tmp_path):
    downloads = tmp_path / "tmp"  # tests/cli/conftest.py points tempfile there
    out = tmp_path / "out" / "report.html"
    result = run(
        "evaluate",
        "m@1",
        "--dataset",
        "s",
        "--group-field",
        "group",
        "--min-group-size",
        "5",
        "--robustness-sample",
        "30",
        "--explain-examples",
        "1",
        "--no-memory",
        "--perturbation",
        "typos",
        "--perturbation",
        "casing",
        "--out",
        out,
        "--json",
    )
    payload = json.loads(result.stdout)
    assert payload["attachment"]["name"] == "s-v1-test-by-group"
    assert payload["html"] == str(out)
    assert out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    document = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))
    assert document == payload["report"]
    robustness = document["sections"]["robustness"]["data"]
    assert {r["perturbation"] for r in robustness["results"]} == {"typos", "casing"}
    listed = json.loads(run("reports", "list", "m@1", "--json").stdout)
    assert [a["name"] for a in listed] == ["s-v1-test-by-group"]
    copy = tmp_path / "copy.html"
    run("reports", "get", "m@1", "--out", copy)
    assert copy.read_bytes() == out.read_bytes()
    card = run("models", "card", "m@1").stdout
    assert "Latest report `s-v1-test-by-group`" in card
    # Reports written to --out leave no copy in the temporary folders they came through.
    assert list(downloads.iterdir()) == []


@pytest.mark.parametrize(
    "command", [["evaluate", "m@1", "--dataset", "s"], ["reports", "get", "m@1"]]
)
def test_an_out_path_that_is_not_html_is_refused_before_any_work(command):
    result = run(*command, "--out", "report.txt", ok=False)
    assert result.exit_code == 2
    message = " ".join(result.output.split())
    assert "'report.txt' should name an .html file" in message


def test_evaluate_prints_a_summary_without_json(tmp_path):
    result = run(
        "evaluate",
        "m@1",
        "--dataset",
        "s",
        "--split",
        "validation",
        "--no-memory",
        "--robustness-sample",
        "20",
        "--explain-examples",
        "0",
        "--perturbation",
        "whitespace",
    )
    assert "accuracy" in result.stdout and "report:" in result.stdout
    assert re.search(r"verdict: (pass|warn|fail) \(the reasons are in the report\)", result.stdout)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--group-field", "region"], "group field 'region' does not exist in dataset s@1"),
        (["--split", "dev"], "unknown split 'dev'"),
    ],
)
def test_evaluate_errors_are_clean(args, message):
    result = run("evaluate", "m@1", "--dataset", "s", *args, ok=False)
    assert result.exit_code == 1
    assert message in " ".join(result.output.split())


def test_reports_get_without_a_report():
    result = run("reports", "get", "m@1", "--name", "nope", "--out", "x.html", ok=False)
    assert result.exit_code == 1 and "NOT_FOUND" in result.output


def test_words_are_shaded_green_for_and_red_against():
    from aimass.cli.evaluate import explanation_text

    e = {
        "text": "good and bad",
        "output": "logit",
        "words": [
            {"word": "good", "start": 0, "end": 4, "score": 0.5},
            {"word": "and", "start": 5, "end": 8, "score": 0.0},
            {"word": "bad", "start": 9, "end": 12, "score": -0.25},
        ],
    }
    text = explanation_text(e["text"], e["words"])
    assert text.plain == "good and bad"
    styles = {text.plain[s.start : s.end]: str(s.style) for s in text.spans}
    assert styles["good"] == "black on rgb(57,177,101)"  # full-strength green (85 %)
    assert styles["and"] == "black on rgb(255,255,255)"  # no effect, no colour
    r, g, _b = (int(x) for x in styles["bad"].split("rgb(")[1].rstrip(")").split(","))
    assert r > g  # red, at half strength


@pytest.mark.parametrize(
    "args",
    [
        ["predict", "m", "good film", "--explain", "occlusion"],
        ["evaluate", "m@1", "--dataset", "s"],
        ["reports", "list", "m@1"],
        ["reports", "get", "m@1", "--out", "x.html"],
    ],
)
def test_remote_mode_goes_to_the_server(monkeypatch, args):
    # Nothing listens on port 9: the commands reach for the server and say it is not there
    # (tests/server/test_trust_api.py drives the same backend against a live app).
    monkeypatch.setenv("AIMASS_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AIMASS_API_KEY", "aimass_x_y")
    result = run(*args, ok=False)
    assert result.exit_code == 1
    assert "UNAVAILABLE" in result.output
