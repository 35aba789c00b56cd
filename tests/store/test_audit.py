"""The audit chain: appends link, and verify finds any edited, deleted or truncated row."""

import itertools

import pytest
from sqlalchemy import text

from aimass.store import AuditRecord

KEY = b"k" * 32


def fill(store, n=5):
    return store.audit.append(
        [
            AuditRecord(
                actor="key:a",
                action="models.predict",
                resource=f"/r/{i}",
                outcome="ok",
                project="default",
                input_hash="ab" * 32,
            )
            for i in range(n)
        ],
        key=KEY,
    )


def test_rows_link_and_verify(store):
    events = fill(store)
    assert [e.seq for e in events] == [1, 2, 3, 4, 5]
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(events))
    assert store.audit.verify(key=KEY).ok
    assert [e.seq for e in store.audit.list(limit=2)] == [5, 4]


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        (
            "UPDATE audit_log SET outcome = 'ok-edited' WHERE seq = 3",
            "row 3: content does not match",
        ),
        (
            "UPDATE audit_log SET details = '{\"x\": 1}' WHERE seq = 2",
            "row 2: content does not match",
        ),
        ("DELETE FROM audit_log WHERE seq = 3", "rows 3..3 are missing"),
        ("DELETE FROM audit_log WHERE seq = 5", "the head says the log ends at row 5"),
        ("UPDATE audit_head SET seq = 4", "the head says"),
    ],
)
def test_any_edited_or_deleted_row_is_found(store, sql, expected):
    fill(store)
    with store.engine.begin() as connection:
        connection.execute(text(sql))
    result = store.audit.verify(key=KEY)
    assert not result.ok
    assert any(expected in p for p in result.problems), result.problems


def test_a_forged_chain_needs_the_key(store):
    fill(store)
    assert not store.audit.verify(key=b"another key " * 3).ok


def test_rows_added_after_the_head_without_the_key_are_reported(store):
    fill(store)
    with store.engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO audit_log (seq, time, actor, action, resource, outcome, details, prev_hash, hash) "
                "SELECT 6, time, actor, action, resource, outcome, details, hash, hash FROM audit_log WHERE seq = 5"
            )
        )
    result = store.audit.verify(key=KEY)
    assert any("rows after the head" in p for p in result.problems)


def test_concurrent_appends_keep_one_chain(store):
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda _: fill(store, 3), range(16)))
    result = store.audit.verify(key=KEY)
    assert result.ok and result.rows == 48
