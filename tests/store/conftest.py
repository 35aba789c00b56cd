import pytest

from aimass.entities import Lineage
from aimass.store import Store


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.services)])
def store_uri(request, tmp_path):
    """The URL of an empty metadata database: a SQLite file, then a PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def store(store_uri):
    s = Store.open(store_uri)
    yield s
    s.close()


def lineage(**overrides):
    values = {
        "dataset": "d@1",
        "dataset_digest": "dd",
        "base": "b@1",
        "base_digest": "bd",
        "job_id": "j",
        "task": "classification",
        "config": {"lr": 0.1},
        "code_version": "test",
    }
    return Lineage(**{**values, **overrides})


def register(store, name="churn", project="default", **overrides):
    fields = {
        "task": "classification",
        "digest": "a" * 64,
        "uri": "artifacts:bundles/x",
        "metrics": {"test": {"accuracy": 0.9}},
        "lineage": lineage(),
        "config_digest": "c" * 64,
    }
    return store.registry.create_version(project, name, **{**fields, **overrides})
