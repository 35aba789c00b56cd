"""The CLI end to end on a tiny model: every command, --json output, clean errors."""

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from aimass.cli import app
from tests.conftest import sentiment_rows, write_jsonl

runner = CliRunner()


def run(*args, ok=True):
    result = runner.invoke(app, [str(a) for a in args])
    if ok:
        assert result.exit_code == 0, result.output
    return result


def run_json(*args):
    return json.loads(run(*args, "--json").stdout)


@pytest.fixture
def home(tmp_path, monkeypatch, tiny_bert_dir):
    monkeypatch.setenv("AIMASS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("AIMASS_DEVICE", "cpu")
    data = write_jsonl(tmp_path / "s.jsonl", sentiment_rows(200))
    run("datasets", "import", data, "--name", "reviews")
    run("bases", "import", tiny_bert_dir, "--name", "tiny")
    return tmp_path


def test_full_flow(home):
    out = run_json("datasets", "list")
    assert [d["name"] for d in out] == ["reviews"]
    shown = run_json("datasets", "show", "reviews@1")
    assert shown["stats"]["label_counts"]["train"] == {"neg": 80, "pos": 80}
    assert run_json("bases", "list")["registered"][0]["name"] == "tiny"
    versions = run_json("bases", "versions", "tiny")
    assert [b["version"] for b in versions] == [1]
    assert versions[0]["provenance"]["source"] == "directory"
    assert "directory" in run("bases", "versions", "tiny").stdout
    assert run_json("bases", "show", "tiny@1")["provenance"]["source"] == "directory"
    assert "license" in run("bases", "show", "tiny").stdout

    trained = run_json(
        "train",
        "--dataset",
        "reviews",
        "--base",
        "tiny",
        "--name",
        "sentiment",
        "--mode",
        "finetune",
        "--epochs",
        "3",
        "--lr",
        "0.001",
        "--batch-size",
        "16",
        "--alias",
        "staging",
    )
    assert trained["version"] == 1
    assert trained["aliases"] == ["staging"]
    assert trained["metrics"]["test"]["accuracy"] >= 0.9

    run("models", "alias", "sentiment", "1", "production")
    model = run_json("models", "list")[0]
    assert model["aliases"] == {"production": 1, "staging": 1}
    assert run_json("models", "show", "sentiment@production")["lineage"]["dataset"] == "reviews@1"
    assert run_json("models", "versions", "sentiment")[0]["version"] == 1

    preds = run_json("predict", "sentiment@production", "good great film", "bad awful movie")
    assert [p["label"] for p in preds] == ["pos", "neg"]

    card = run("models", "card", "sentiment@1").stdout
    assert card.startswith("# Model card: sentiment v1")
    assert "## Metrics" in card and "reviews@1" in card

    run("models", "export", "sentiment@1", home / "export")
    assert (home / "export" / "model.safetensors").is_file()

    human = run("predict", "sentiment", "good great film").stdout
    assert "pos" in human

    for kind, spec in [
        ("evaluate", {"model": "sentiment@1", "dataset": "reviews"}),
        ("optimize", {"model": "sentiment@1"}),
        ("audit-privacy", {"model": "sentiment@1", "dataset": "reviews", "max_examples": 20}),
    ]:
        queued = run_json("jobs", "submit", kind, "--spec", json.dumps(spec))
        assert queued["kind"] == kind and queued["status"] == "queued"
        run("jobs", "cancel", queued["id"])
    scoring = {"model": "sentiment@1", "dataset": "reviews", "output": "scored"}
    queued = run_json("jobs", "submit", "batch-predict", "--spec", json.dumps(scoring))
    assert queued["kind"] == "batch-predict" and queued["spec"]["model"] == "sentiment@1"
    run("jobs", "cancel", queued["id"])
    owned = run("jobs", "submit", "evaluate", "--spec", '{"project": "x"}', ok=False)
    assert "unknown field(s) project" in owned.stderr, "--project is the command's option"
    unknown = run("jobs", "submit", "fly", "--spec", "{}", ok=False)
    assert "use one of train, batch-predict, evaluate, optimize, audit-privacy" in unknown.stderr

    refused = run("models", "delete-version", "sentiment", "1", "--yes", ok=False)
    assert refused.exit_code == 1
    assert "Error [CONFLICT]" in refused.stderr
    held = run("bases", "delete-version", "tiny", "1", "--yes", ok=False)
    assert "tiny@1 is the base of sentiment@1" in held.stderr
    run("models", "unalias", "sentiment", "production")
    run("models", "unalias", "sentiment", "staging")
    assert run_json("models", "delete-version", "sentiment", "1", "--yes")["version"] == 1

    # Erasure: the data, the model and the base go from the registry, then from disk.
    assert run_json("datasets", "delete-version", "reviews", "1", "--yes")["version"] == 1
    assert run_json("bases", "delete-version", "tiny", "1", "--yes")["name"] == "tiny"
    collected = run_json("gc", "--older-than", "0")
    removed = {g["key"].split("/")[0] for g in collected["removed"]}
    assert {"bundles", "datasets"} <= removed and collected["referenced"] == 0
    artifacts = home / "home" / "artifacts"
    assert [list((artifacts / d).iterdir()) for d in ("datasets", "bundles")] == [[], []]


def test_predict_from_a_file(home, tmp_path):
    trained = run_json(
        "train",
        "--dataset",
        "reviews",
        "--base",
        "tiny",
        "--name",
        "m",
        "--mode",
        "finetune",
        "--epochs",
        "2",
        "--lr",
        "0.001",
        "--batch-size",
        "16",
        "--eval-steps",
        "4",
        "--patience",
        "9",
        "--layer-lr-decay",
        "0.9",
        "--label-smoothing",
        "0.1",
        "--adversarial-epsilon",
        "0.5",
    )
    # 160 training rows, 10 steps an epoch: evaluated every 4th step and at each epoch's end
    assert [h["step"] for h in trained["metrics"]["history"]] == [4, 8, 10, 12, 16, 20]
    assert trained["lineage"]["config"]["eval_steps"] == 4
    assert trained["lineage"]["config"]["patience"] == 9
    assert trained["lineage"]["config"]["layer_lr_decay"] == 0.9
    assert trained["lineage"]["config"]["label_smoothing"] == 0.1
    assert trained["lineage"]["config"]["adversarial_epsilon"] == 0.5
    best = trained["metrics"]["validation"]["step"]
    assert f"step {best})." in run("models", "card", "m@1").stdout
    texts = tmp_path / "in.txt"
    texts.write_text("good great film\n\nbad awful movie\n")
    preds = run_json("predict", "m", "--file", texts)
    assert len(preds) == 2


@pytest.mark.parametrize(
    ("args", "code", "text"),
    [
        (["datasets", "show", "nope"], "NOT_FOUND", "dataset 'nope' not found"),
        (
            ["datasets", "import", "missing.jsonl", "--name", "x"],
            "INVALID_ARGUMENT",
            "does not exist",
        ),
        (["datasets", "import-sample", "imdb"], "INVALID_ARGUMENT", "rotten-tomatoes"),
        (["models", "show", "ghost@2"], "NOT_FOUND", "model 'ghost' not found"),
        (["predict", "Bad/Name", "x"], "INVALID_ARGUMENT", "invalid model name"),
        (
            ["train", "--dataset", "reviews", "--base", "tiny", "--name", "m", "--task", "ner"],
            "INVALID_ARGUMENT",
            "unknown task",
        ),
        (["bases", "import", "/nonexistent/dir"], "INVALID_ARGUMENT", "packaged base"),
    ],
)
def test_errors_print_code_and_message_and_exit_1(home, args, code, text):
    result = run(*args, ok=False)
    assert result.exit_code == 1
    assert f"Error [{code}]" in result.stderr
    assert text in result.stderr
    assert "Traceback" not in result.output


def test_bad_dataset_line_is_named(home, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "a", "label": "x"}\n{"text": "b", "label": 2}\n')
    result = run("datasets", "import", bad, "--name", "bad", ok=False)
    assert "line 2: field 'label'" in result.stderr
    assert [d["name"] for d in run_json("datasets", "list")] == ["reviews"]


def test_db_commands(home):
    info = run_json("db", "current")
    assert info["current"] == info["head"]
    assert "upgraded" in run("db", "upgrade").stdout


def test_version():
    assert "aimass" in run("version").stdout


@pytest.mark.parametrize(
    "code",
    [
        "import aimass",
        "import aimass.cli",
        "import aimass.errors, aimass.entities, aimass.refs",
        "import aimass.client",
        "import aimass; aimass.Client",
    ],
)
def test_light_imports_do_not_load_torch(code):
    probe = f"{code}; import sys; print(sorted(m for m in ('torch', 'transformers', 'sqlalchemy', 'fastapi') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
