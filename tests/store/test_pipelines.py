"""Pipeline versions in the store: numbered, content-addressed, aliased, per project."""

from __future__ import annotations

import pytest

from aimass.errors import Conflict, InvalidName, NotFound
from aimass.refs import parse_ref

SPEC = {"steps": [{"name": "m", "type": "model", "model": "churn@1"}]}


def create(store, spec=SPEC, digest="a" * 64, name="triage", project="default"):
    return store.pipelines.create_version(
        project, name, digest=digest, spec=spec, description="d", created_by="local:me"
    )


def test_versions_are_numbered_and_identical_specs_are_not_stored_twice(store):
    first, created = create(store)
    assert (first.ref, created, first.models) == ("triage@1", True, ("churn",))
    again, created = create(store)
    assert (again.version, created) == (1, False)
    other = {"steps": [{"name": "m", "type": "model", "model": "churn@2"}]}
    second, created = create(store, other, digest="b" * 64)
    assert (second.version, created) == (2, True)
    assert [v.version for v in store.pipelines.versions("default", "triage")] == [1, 2]
    assert [p.ref for p in store.pipelines.list("default")] == ["triage@2"]
    assert store.pipelines.get("default", "triage", 1).spec == SPEC
    assert first.created_by == "local:me" and first.description == "d"


def test_aliases_resolve_and_move(store):
    create(store)
    create(store, digest="b" * 64)
    moved = store.pipelines.set_alias("default", "triage", "production", 1)
    assert moved.aliases == ("production",)
    assert store.pipelines.resolve("default", parse_ref("triage@production")).version == 1
    store.pipelines.set_alias("default", "triage", "production", 2)
    assert store.pipelines.resolve("default", parse_ref("triage@production")).version == 2
    assert store.pipelines.resolve("default", parse_ref("triage")).version == 2
    assert store.pipelines.get("default", "triage", 1).aliases == ()
    store.pipelines.delete_alias("default", "triage", "production")
    with pytest.raises(NotFound) as info:
        store.pipelines.resolve("default", parse_ref("triage@production"))
    assert "has no alias 'production' (aliases: none)" in info.value.message
    assert "aimass pipelines alias triage production VERSION" in info.value.message


def test_missing_things_are_named(store):
    with pytest.raises(NotFound) as info:
        store.pipelines.resolve("default", parse_ref("ghost@staging"))
    assert "pipeline 'ghost' not found" in info.value.message
    create(store)
    with pytest.raises(NotFound) as info:
        store.pipelines.set_alias("default", "triage", "production", 7)
    assert "has no version 7 (latest is 1)" in info.value.message
    with pytest.raises(InvalidName):
        store.pipelines.set_alias("default", "triage", "Prod uction", 1)


def test_projects_do_not_see_each_others_pipelines(store):
    store.projects.create("other")
    create(store)
    assert store.pipelines.list("other") == []
    with pytest.raises(NotFound):
        store.pipelines.resolve("other", parse_ref("triage@1"))


def test_evaluations_are_recorded_per_report_name(store):
    create(store)
    store.pipelines.record_evaluation("default", "triage", 1, "s-v1-test", {"accuracy": 0.5})
    store.pipelines.record_evaluation("default", "triage", 1, "s-v1-train", {"accuracy": 0.9})
    again = store.pipelines.record_evaluation(
        "default", "triage", 1, "s-v1-test", {"accuracy": 0.75}
    )
    assert again.evaluations == {"s-v1-test": {"accuracy": 0.75}, "s-v1-train": {"accuracy": 0.9}}
    assert store.pipelines.get("default", "triage").evaluations == again.evaluations
    with pytest.raises(NotFound, match="no version 2"):
        store.pipelines.record_evaluation("default", "triage", 2, "x", {})


def test_a_version_is_deleted_only_once_no_alias_holds_it(store):
    create(store)
    create(store, digest="b" * 64)
    store.pipelines.set_alias("default", "triage", "production", 1)
    with pytest.raises(Conflict, match="held by alias\\(es\\) production"):
        store.pipelines.delete_version("default", "triage", 1)
    store.pipelines.delete_alias("default", "triage", "production")
    assert store.pipelines.delete_version("default", "triage", 1).version == 1
    assert [v.version for v in store.pipelines.versions("default", "triage")] == [2]
    with pytest.raises(NotFound):
        store.pipelines.delete_version("default", "triage", 1)
