"""The model registry: versions, aliases, lookups and their error messages."""

import pytest

from aimass.errors import AlreadyExists, Conflict, ErrorCode, InvalidArgument, NotFound
from aimass.refs import parse_ref
from tests.store.conftest import register


def test_versions_auto_increment_per_model(store):
    assert [register(store).version for _ in range(3)] == [1, 2, 3]
    assert register(store, name="other").version == 1
    model = store.registry.get_model("default", "churn")
    assert model.latest_version == 3


def test_lineage_metrics_and_privacy_round_trip(store):
    version = register(store, privacy={"epsilon": 8.0})
    again = store.registry.get_version("default", parse_ref("churn@1"))
    assert again == version
    assert again.lineage.config == {"lr": 0.1}
    assert again.metrics["test"]["accuracy"] == 0.9
    assert again.privacy == {"epsilon": 8.0}


def test_aliases_resolve_move_and_are_listed(store):
    register(store)
    register(store)
    store.registry.set_alias("default", "churn", "production", 1)
    assert store.registry.get_version("default", parse_ref("churn@production")).version == 1
    moved = store.registry.set_alias("default", "churn", "production", 2)
    assert moved.aliases == ("production",)
    assert store.registry.get_version("default", parse_ref("churn@1")).aliases == ()
    assert store.registry.get_model("default", "churn").aliases == {"production": 2}
    assert store.registry.get_version("default", parse_ref("churn")).version == 2


@pytest.mark.parametrize("alias", ["latest", "12"])
def test_reserved_aliases_are_refused(store, alias):
    register(store)
    with pytest.raises(InvalidArgument):
        store.registry.set_alias("default", "churn", alias, 1)


def test_not_found_messages_say_what_exists(store):
    register(store)
    with pytest.raises(NotFound, match=r"has no version 7 \(latest is 1\)"):
        store.registry.get_version("default", parse_ref("churn@7"))
    with pytest.raises(NotFound, match="no alias 'staging'"):
        store.registry.get_version("default", parse_ref("churn@staging"))
    with pytest.raises(NotFound, match="model 'nope' not found"):
        store.registry.get_version("default", parse_ref("nope"))
    with pytest.raises(NotFound, match="project 'elsewhere' does not exist"):
        store.registry.get_version("elsewhere", parse_ref("churn"))


def test_projects_isolate_models(store):
    store.projects.create("team-b")
    register(store, project="team-b")
    with pytest.raises(NotFound):
        store.registry.get_model("default", "churn")
    assert [m.name for m in store.registry.list_models("team-b")] == ["churn"]


def test_duplicate_project_is_refused(store):
    with pytest.raises(AlreadyExists):
        store.projects.create("default")


def test_aliased_versions_cannot_be_deleted(store):
    register(store)
    register(store)
    store.registry.set_alias("default", "churn", "production", 1)
    with pytest.raises(Conflict) as info:
        store.registry.delete_version("default", "churn", 1)
    assert info.value.code == ErrorCode.CONFLICT
    assert store.registry.delete_version("default", "churn", 2).version == 2
    assert [v.version for v in store.registry.list_versions("default", "churn")] == [1]


def test_find_by_config_digest(store):
    register(store, config_digest="x" * 64)
    register(store, config_digest="y" * 64)
    assert store.registry.find_by_config_digest("default", "churn", "x" * 64).version == 1
    assert store.registry.find_by_config_digest("default", "churn", "z" * 64) is None
    assert store.registry.find_by_config_digest("default", "missing", "x" * 64) is None


def test_attachments_replace_by_kind_and_name(store):
    register(store)
    ref = parse_ref("churn@1")
    store.registry.attach(
        "default", ref, kind="evaluation", name="test", uri="u1", summary={"a": 1}
    )
    store.registry.attach(
        "default", ref, kind="evaluation", name="test", uri="u2", summary={"a": 2}
    )
    found = store.registry.attachments("default", ref)
    assert [(a.uri, a.summary) for a in found] == [("u2", {"a": 2})]


def test_update_version_merges_metrics(store):
    register(store)
    updated = store.registry.update_version(
        "default", parse_ref("churn@1"), metrics={"evaluation": {"f1": 0.5}}
    )
    assert updated.metrics["test"]["accuracy"] == 0.9
    assert updated.metrics["evaluation"] == {"f1": 0.5}
