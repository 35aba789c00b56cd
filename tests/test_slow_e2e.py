"""Slow end-to-end tests with the real MiniLM weights and real data (CI runs these).

They are the proof that the product works, not only its parts: the quickstart
on Rotten Tomatoes in features mode, a short full fine-tune, and the Chinese
review sample on the same path.
"""

import json

import pytest
from typer.testing import CliRunner

from aimass.cli import app
from aimass.jobs.train import TrainSpec

runner = CliRunner()
pytestmark = pytest.mark.slow


def test_quickstart_features_mode_reaches_75_percent(tmp_path, monkeypatch):
    monkeypatch.setenv("AIMASS_HOME", str(tmp_path / "home"))
    result = runner.invoke(app, ["quickstart", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    model = out["model"]
    assert model["aliases"] == ["production"]
    assert model["metrics"]["test"]["accuracy"] >= 0.75
    assert model["metrics"]["test"]["count"] == 1275
    labels = [p["label"] for p in out["predictions"]]
    assert labels[0] == "fresh" and labels[1] == "rotten"
    # A second run reuses the dataset, the base and the trained version.
    again = runner.invoke(app, ["quickstart", "--json"])
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["model"]["version"] == model["version"]
    card = runner.invoke(app, ["models", "card", "sentiment@production"]).stdout
    assert "rotten-tomatoes@1" in card and "minilm@1" in card


def test_finetune_minilm_on_a_subset_learns(workspace, tmp_path):
    dataset, _ = workspace.import_sample("rotten-tomatoes")
    base, _ = workspace.import_base("minilm")
    # A 1,500-row subset keeps this under a few minutes on two cores.
    from aimass.data.tables import read_split

    rows = read_split(workspace.artifacts.resolve(dataset.uri), None)
    subset = tmp_path / "subset.jsonl"
    with open(subset, "w") as handle:
        for text, label in list(zip(rows.texts, rows.labels, strict=True))[:1500]:
            handle.write(json.dumps({"text": text, "label": label}) + "\n")
    workspace.import_dataset(subset, name="rt-subset")
    version = workspace.train(
        TrainSpec(
            dataset="rt-subset",
            base=base.ref,
            model="ft",
            config={"mode": "finetune", "epochs": 1, "batch_size": 16},
        )
    )
    assert version.metrics["validation"]["accuracy"] >= 0.7
    result = workspace.predict("ft", ["A wonderful, moving film.", "A dull and lifeless mess."])
    assert [r["label"] for r in result] == ["fresh", "rotten"]


def test_chinese_reviews_features_mode(workspace):
    workspace.import_sample("chinese-reviews")
    workspace.import_base("minilm")
    version = workspace.train(
        TrainSpec(
            dataset="chinese-reviews",
            base="minilm",
            model="zh",
            config={"mode": "features", "epochs": 10},
        )
    )
    # MiniLM's vocabulary is English-first; the number documents what it gets on Chinese.
    assert version.metrics["test"]["accuracy"] >= 0.6
