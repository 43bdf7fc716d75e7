"""Callback requests, against SQLite and PostgreSQL (see `storage_fixtures`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from ast_pbx.storage.callbacks import UNSET, CallbackRecord, CallbackStore
from ast_pbx.storage.db import Database
from tests.storage_fixtures import (  # noqa: F401
    database_fixture,
    postgres_url_fixture,
    url_fixture,
)

MSK = timezone(timedelta(hours=3))
T0 = datetime(2026, 3, 2, 7, 0, tzinfo=UTC)


def minutes(n: float) -> timedelta:
    return timedelta(minutes=n)


@pytest.fixture
def store(database: Database) -> CallbackStore:
    return CallbackStore(database)


def ids(records: list[CallbackRecord]) -> list[int]:
    return [record.id for record in records]


def test_add_and_get_round_trip(store: CallbackStore) -> None:
    added = store.add("+79001234567", T0.astimezone(MSK), call_id="chan-1")
    assert added.id > 0
    assert added == CallbackRecord(
        id=added.id,
        caller="+79001234567",
        requested_at=T0,
        source="ivr",
        call_id="chan-1",
        done=False,
        call_not_before=None,
        operator=None,
        called_at=None,
        callback_call_id=None,
    )
    got = store.get(added.id)
    assert got == added
    assert got is not None and got.requested_at.tzinfo == UTC
    assert store.get(added.id + 100) is None


def test_add_from_the_api_and_long_values_are_cut(store: CallbackStore) -> None:
    added = store.add("9" * 100, T0, source="api")
    assert added.source == "api"
    assert added.caller == "9" * 64
    assert added.call_id is None


def test_naive_times_are_refused(store: CallbackStore) -> None:
    with pytest.raises(ValueError, match="naive"):
        store.add("100", datetime(2026, 3, 2, 7, 0))
    added = store.add("100", T0)
    with pytest.raises(ValueError, match="naive"):
        store.open(datetime(2026, 3, 2, 7, 0))
    with pytest.raises(ValueError, match="naive"):
        store.update(added.id, call_not_before=datetime(2026, 3, 2, 8, 0))
    with pytest.raises(ValueError, match="naive"):
        store.called(added.id, "anna", datetime(2026, 3, 2, 8, 0), "chan-2")


def test_open_is_not_done_and_due_oldest_first(store: CallbackStore) -> None:
    later = store.add("300", T0 + minutes(2))
    first = store.add("100", T0)
    done = store.add("200", T0 + minutes(1))
    store.update(done.id, done=True)
    put_off = store.add("400", T0 + minutes(3))
    store.update(put_off.id, call_not_before=T0 + minutes(30))
    due_now = store.add("500", T0 + minutes(4))
    store.update(due_now.id, call_not_before=T0 + minutes(10))

    now = T0 + minutes(10)
    assert ids(store.open(now)) == [first.id, later.id, due_now.id]
    assert ids(store.open(now, limit=2)) == [first.id, later.id]
    assert ids(store.open(T0 + minutes(30))) == [first.id, later.id, put_off.id, due_now.id]


def test_list_filters_newest_first(store: CallbackStore) -> None:
    a = store.add("+79001112233", T0)
    b = store.add("+79004445566", T0 + minutes(1), source="api")
    c = store.add("+79001119999", T0 + minutes(2))
    store.update(b.id, done=True)

    assert ids(store.list()) == [c.id, b.id, a.id]
    assert ids(store.list(start=T0 + minutes(1))) == [c.id, b.id]
    assert ids(store.list(end=T0 + minutes(2))) == [b.id, a.id]  # end is exclusive
    assert ids(store.list(start=T0, end=T0 + minutes(1))) == [a.id]
    assert ids(store.list(caller="111")) == [c.id, a.id]
    assert ids(store.list(caller="%")) == []  # a fragment, not a LIKE pattern
    assert ids(store.list(done=True)) == [b.id]
    assert ids(store.list(done=False)) == [c.id, a.id]
    assert ids(store.list(limit=1, offset=1)) == [b.id]


def test_update_done_and_call_not_before(store: CallbackStore) -> None:
    added = store.add("100", T0)
    put_off = store.update(added.id, call_not_before=T0 + minutes(5))
    assert put_off is not None and put_off.call_not_before == T0 + minutes(5)
    # Not given: left as is.
    closed = store.update(added.id, done=True)
    assert closed is not None and closed.done
    assert closed.call_not_before == T0 + minutes(5)
    unchanged = store.update(added.id, call_not_before=UNSET)
    assert unchanged == closed
    # None clears it.
    cleared = store.update(added.id, done=False, call_not_before=None)
    assert cleared is not None and not cleared.done and cleared.call_not_before is None
    assert store.get(added.id) == cleared
    assert store.update(added.id + 100, done=True) is None


def test_called_notes_operator_time_and_call(store: CallbackStore) -> None:
    added = store.add("100", T0)
    called = store.called(added.id, "anna", (T0 + minutes(3)).astimezone(MSK), "chan-9")
    assert called is not None
    assert (called.operator, called.called_at, called.callback_call_id) == (
        "anna",
        T0 + minutes(3),
        "chan-9",
    )
    assert not called.done  # closing is the operator's decision
    again = store.called(added.id, "boris", T0 + minutes(9), None)
    assert again is not None and again.operator == "boris" and again.callback_call_id is None
    assert store.get(added.id) == again
    assert store.called(added.id + 100, "anna", T0, "x") is None
