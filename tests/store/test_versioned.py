"""Datasets and bases: numbered versions, content addressing, clear lookups."""

import pytest

from aimass.errors import InvalidName, NotFound

FIELDS = {
    "uri": "artifacts:datasets/x.parquet",
    "format": "jsonl",
    "schema": {
        "text_field": "text",
        "label_field": "label",
        "label_type": "string",
        "extra_fields": [],
        "split_source": "seeded",
    },
    "num_rows": 3,
    "splits": {"train": 1, "validation": 1, "test": 1},
    "stats": {"classes": ["a", "b"]},
    "provenance": {"source": "file"},
}


def test_identical_content_returns_the_existing_version(store):
    first, created = store.datasets.create_version("default", "reviews", digest="d1", **FIELDS)
    again, created_again = store.datasets.create_version(
        "default", "reviews", digest="d1", **FIELDS
    )
    assert (created, created_again) == (True, False)
    assert again == first
    second, _ = store.datasets.create_version("default", "reviews", digest="d2", **FIELDS)
    assert second.version == 2
    assert store.datasets.get("default", "reviews").version == 2
    assert store.datasets.get("default", "reviews", 1).digest == "d1"
    assert [v.version for v in store.datasets.versions("default", "reviews")] == [1, 2]
    assert [v.name for v in store.datasets.list("default")] == ["reviews"]


def test_lookup_errors(store):
    store.datasets.create_version("default", "reviews", digest="d1", **FIELDS)
    with pytest.raises(NotFound, match=r"has no version 4 \(latest is 1\)"):
        store.datasets.get("default", "reviews", 4)
    with pytest.raises(NotFound, match="aimass datasets list"):
        store.datasets.get("default", "nope")


def test_names_are_validated_before_any_query(store):
    with pytest.raises(InvalidName):
        store.datasets.create_version("default", "../../etc", digest="d", **FIELDS)
    with pytest.raises(InvalidName):
        store.bases.get("default", "a/b")


def test_a_deleted_version_number_is_never_given_out_again(store):
    from tests.store.conftest import register
    from tests.store.test_pipelines import create

    for digest in ("d1", "d2", "d3"):
        store.datasets.create_version("default", "reviews", digest=digest, **FIELDS)
    store.datasets.delete_version("default", "reviews", 3)
    store.datasets.delete_version("default", "reviews", 2)
    again, created = store.datasets.create_version("default", "reviews", digest="d3", **FIELDS)
    assert (again.version, created) == (4, True)  # the same content is a new version now
    store.datasets.delete_version("default", "reviews", 1)
    store.datasets.delete_version("default", "reviews", 4)
    assert (
        store.datasets.create_version("default", "reviews", digest="d5", **FIELDS)[0].version == 5
    )
    # Per name and per kind: another dataset, or a base of the same name, starts at 1.
    assert store.datasets.create_version("default", "other", digest="d1", **FIELDS)[0].version == 1
    base_fields = {"uri": "artifacts:bundles/b", "architecture": "bert", "family": "encoder"}
    base_fields |= {"num_parameters": 1, "provenance": {}}
    assert (
        store.bases.create_version("default", "reviews", digest="b", **base_fields)[0].version == 1
    )

    register(store, digest="a" * 64)
    register(store, digest="b" * 64)
    store.registry.delete_version("default", "churn", 2)
    assert register(store, digest="c" * 64).version == 3

    create(store)
    store.pipelines.delete_version("default", "triage", 1)
    assert create(store, digest="b" * 64)[0].version == 2
