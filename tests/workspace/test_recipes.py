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
        workspace, name="zh", preset="tiny", vocab_size=500, pretrain_epochs=1, epochs=1
    )
    assert version.aliases == ("production",)
    assert version.task == "token-classification"
    names = {b.name for b in workspace.store.bases.list("default")}
    assert names == {"zh-tok", "zh-tiny", "zh-pretrained"}
    pretrained = workspace.base("zh-pretrained")
    assert pretrained.provenance["source"] == "model" and pretrained.family == "encoder"
    assert version.lineage.base == "zh-pretrained@1"
    assert {"precision", "recall", "f1"} <= set(version.metrics["test"])
    [result] = workspace.predict("zh@production", ["江泽民在北京。"])
    assert isinstance(result["entities"], list)
    # a second run finds every step done and only moves the alias
    again = train_chinese_ner(
        workspace, name="zh", preset="tiny", vocab_size=500, pretrain_epochs=1, epochs=1
    )
    assert again.version == version.version
