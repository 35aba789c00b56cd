"""Database errors reach callers as aimass errors with the same code on SQLite and
PostgreSQL (a duplicate, a broken reference, a value the column cannot hold)."""

import pytest

from aimass.errors import AlreadyExists, Conflict, ErrorCode, InvalidArgument
from aimass.store import Store


def test_a_duplicate_is_already_exists(store):
    def create():
        store.keys.create("dup", name="k", project="default", scopes=["read"], secret_hash="h" * 64)

    create()
    with pytest.raises(AlreadyExists):
        create()


def test_a_broken_reference_is_a_conflict_not_a_duplicate(store):
    with pytest.raises(Conflict) as info:
        store.jobs.log("no-such-job", "hello")
    assert info.value.code == ErrorCode.CONFLICT
    assert "reference" in info.value.message


@pytest.mark.services
def test_a_value_too_long_for_its_column_is_an_invalid_argument(postgres_url):
    # SQLite stores any length; PostgreSQL enforces VARCHAR(n).
    store = Store.open(postgres_url)
    job = store.jobs.create("default", "train", {})
    with pytest.raises(InvalidArgument) as info:
        store.jobs.log(job.id, "hello", level="x" * 40)
    assert "too long" in info.value.message
    store.close()
