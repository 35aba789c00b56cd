"""``aimass quickstart --lang zh`` on stand-ins: a small sample and a packaged tiny BERT.

The real run (the Chinese reviews, m3e-small) is ``tests/test_slow_e2e.py``.
"""

import importlib
import itertools
import json

import pytest
from typer.testing import CliRunner

from aimass.cli import app
from aimass.data.samples import SampleDataset, get_sample, register_sample
from tests.packaged import fake_packaged_base

runner = CliRunner()
# ``aimass.cli.train`` the attribute is the command function; the module holds the recipes.
cli_train = importlib.import_module("aimass.cli.train")


@pytest.fixture
def zh_stand_ins(tmp_path, monkeypatch, tiny_bert_dir):
    monkeypatch.setenv("AIMASS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("AIMASS_DEVICE", "cpu")
    real = get_sample("chinese-reviews")

    def first_rows(root):
        rows = list(real.read(root))
        return itertools.chain(rows[:60], rows[-60:])  # both labels: the file is grouped

    register_sample(
        SampleDataset(**{**real.__dict__, "name": "zh-small", "read": first_rows}), force=True
    )
    fake_packaged_base(
        tmp_path / "site",
        tiny_bert_dir,
        monkeypatch,
        name="fake-zh",
        license="research only",
        commercial_use=False,
    )
    zh = cli_train._QUICKSTARTS["zh"]
    small = cli_train._Quickstart(
        **{
            **zh.__dict__,
            "sample": "zh-small",
            "base": "fake-zh",
            "config": {"mode": "finetune", "epochs": 1, "lr": 1e-3},
            "deidentify": {"mode": "mask", "recognizers": ["cn-mobile", "email"]},
        }
    )
    monkeypatch.setitem(cli_train._QUICKSTARTS, "zh", small)
    fake_packaged_base(tmp_path / "site", tiny_bert_dir, monkeypatch, name="fake-zh-commercial")
    commercial = cli_train._Quickstart(
        **{**small.__dict__, "base": "fake-zh-commercial", "config": {"epochs": 1, "lr": 2e-3}}
    )
    monkeypatch.setitem(cli_train._COMMERCIAL_QUICKSTARTS, "zh", commercial)


def test_the_chinese_quickstart_masks_trains_predicts_and_explains(zh_stand_ins):
    result = runner.invoke(app, ["quickstart", "--lang", "zh", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["model"]["name"] == "zh-sentiment"
    assert out["model"]["aliases"] == ["production"]
    assert [p["text"] for p in out["predictions"]] == list(cli_train._QUICKSTARTS["zh"].texts)
    assert {p["label"] for p in out["predictions"]} <= {"pos", "neg"}
    words = out["explanation"]["explanation"]["words"]
    assert "".join(w["word"] for w in words) == out["predictions"][0]["text"]
    shown = json.loads(runner.invoke(app, ["datasets", "show", "zh-small", "--json"]).stdout)
    assert shown["provenance"]["deidentification"]["fields"] == ["text"]
    # Without --json the base's license restriction is printed.
    again = runner.invoke(app, ["quickstart", "--lang", "zh"])
    assert again.exit_code == 0, again.output
    assert "research only" in again.output


def test_an_unknown_language_names_the_known_ones(tmp_path, monkeypatch):
    monkeypatch.setenv("AIMASS_HOME", str(tmp_path / "home"))
    result = runner.invoke(app, ["quickstart", "--lang", "fr"])
    assert result.exit_code != 0
    assert "en, zh" in result.output


def test_commercial_use_only_takes_the_commercially_usable_chinese_quickstart(
    zh_stand_ins, monkeypatch
):
    monkeypatch.setenv("AIMASS_COMMERCIAL_USE_ONLY", "true")
    result = runner.invoke(app, ["quickstart", "--lang", "zh", "--json"])
    assert result.exit_code == 0, result.output
    said = " ".join(result.stderr.split())  # rich wraps the line
    assert "training the commercially usable recipe (fake-zh-commercial)" in said
    out = json.loads(result.stdout)
    assert out["model"]["name"] == "zh-sentiment"
    assert out["model"]["lineage"]["base"] == "fake-zh-commercial@1"
    assert out["model"]["lineage"]["config"]["lr"] == 2e-3  # the commercial recipe's settings
    assert out["explanation"] is not None
    listed = json.loads(runner.invoke(app, ["bases", "list", "--json"]).stdout)
    registered = [b["name"] for b in listed["registered"]]
    assert registered == ["fake-zh-commercial"]  # the research base untouched


def test_a_commercial_use_only_server_gets_the_commercially_usable_quickstart(
    zh_stand_ins, tmp_path, monkeypatch
):
    """The policy and the packages are the server's: ``about`` and ``bases.packaged``."""
    from aimass._version import __version__
    from tests.conftest import live_server

    server = live_server(
        tmp_path / "server-home", job_workers=1, serve_runners=0, commercial_use_only=True
    )
    url, key, _app = next(server)
    try:
        monkeypatch.setenv("AIMASS_URL", url)
        monkeypatch.setenv("AIMASS_API_KEY", key)
        result = runner.invoke(app, ["quickstart", "--lang", "zh", "--json"])
        assert result.exit_code == 0, result.output
        said = " ".join(result.stderr.split())
        assert f"the server at {url} trains only commercially usable weights" in said
        out = json.loads(result.stdout)
        assert out["model"]["lineage"]["base"] == "fake-zh-commercial@1"
        shown = runner.invoke(app, ["version"])
        assert f"server at {url}: aimass {__version__}" in " ".join(shown.output.split())
    finally:
        next(server, None)
    monkeypatch.delenv("AIMASS_URL")
    # This machine's home has no such setting: here the research recipe trains.
    result = runner.invoke(app, ["quickstart", "--lang", "zh", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["model"]["lineage"]["base"] == "fake-zh@1"
