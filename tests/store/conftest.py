import pytest

from aimass.entities import Lineage
from aimass.store import Store


@pytest.fixture
def store(tmp_path):
    s = Store.open(f"sqlite:///{tmp_path / 'store.db'}")
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
