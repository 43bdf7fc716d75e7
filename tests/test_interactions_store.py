"""The interaction history, against SQLite and PostgreSQL (see `storage_fixtures`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from ast_pbx.storage.db import Database
from ast_pbx.storage.interactions import InteractionRecord, InteractionStore
from tests.storage_fixtures import (  # noqa: F401
    database_fixture,
    postgres_url_fixture,
    url_fixture,
)

MSK = timezone(timedelta(hours=3))
T0 = datetime(2026, 3, 2, 7, 0, tzinfo=UTC)
PHONE = "+79896128555"


@pytest.fixture
def store(database: Database) -> InteractionStore:
    return InteractionStore(database)


def test_add_and_get_round_trip(store: InteractionStore) -> None:
    added = store.add(
        PHONE, T0.astimezone(MSK), call_id="chan-1", caller_name="Иванов Иван", operator="123"
    )
    assert added == InteractionRecord(
        id=added.id,
        phone=PHONE,
        at=T0,
        direction="in",
        call_id="chan-1",
        caller_name="Иванов Иван",
        question_group=None,
        question=None,
        answer=None,
        operator="123",
        updated_at=None,
    )
    got = store.get(added.id)
    assert got == added
    assert got is not None and got.at.tzinfo == UTC
    assert store.get(added.id + 100) is None


def test_for_phone_is_that_number_newest_first_and_limited(store: InteractionStore) -> None:
    first = store.add(PHONE, T0)
    other = store.add("+79001112233", T0 + timedelta(minutes=1))
    third = store.add(PHONE, T0 + timedelta(minutes=2), "out")
    second = store.add(PHONE, T0 + timedelta(minutes=1))
    history = store.for_phone(PHONE)
    assert [r.id for r in history] == [third.id, second.id, first.id]
    assert history[0].direction == "out"
    assert [r.id for r in store.for_phone(PHONE, limit=2)] == [third.id, second.id]
    assert [r.id for r in store.for_phone("+79001112233")] == [other.id]
    assert store.for_phone("+7989612855") == []  # exactly the number, not a part of it


def test_update_writes_the_texts_and_who_handled_it(store: InteractionStore) -> None:
    added = store.add(PHONE, T0, caller_name="Иванов Иван")
    later = T0 + timedelta(minutes=5)
    updated = store.update(
        added.id,
        question_group="Регистрация ИП",
        question="Сроки регистрации",
        answer="Пять рабочих дней",
        operator="123",
        at=later.astimezone(MSK),
    )
    assert updated is not None
    assert (updated.question_group, updated.question, updated.answer) == (
        "Регистрация ИП",
        "Сроки регистрации",
        "Пять рабочих дней",
    )
    assert updated.operator == "123"
    assert updated.updated_at == later
    assert updated.caller_name == "Иванов Иван"  # None keeps it
    assert store.get(added.id) == updated
    cleared = store.update(
        added.id,
        question_group="",
        question="",
        answer="",
        operator="123",
        at=later,
        caller_name="",
    )
    assert cleared is not None
    assert (cleared.question_group, cleared.question, cleared.answer) == (None, None, None)
    assert cleared.caller_name is None
    assert (
        store.update(
            added.id + 100, question_group="", question="", answer="", operator="x", at=later
        )
        is None
    )


def test_one_entry_per_call(store: InteractionStore) -> None:
    record, new = store.add_for_call(PHONE, T0, "chan-7", caller_name="Иванов", operator="123")
    assert new
    again, new_again = store.add_for_call(PHONE, T0 + timedelta(seconds=1), "chan-7")
    assert not new_again
    assert again == record
    assert store.for_call("chan-7") == record
    assert store.for_call("chan-8") is None
    assert len(store.for_phone(PHONE)) == 1


def test_long_values_are_cut_and_long_texts_kept(store: InteractionStore) -> None:
    text = "в" * 10_000
    added = store.add(
        "9" * 100, T0, caller_name="Я" * 300, question_group="г" * 200, question=text, answer=text
    )
    assert added.phone == "9" * 64
    assert added.caller_name == "Я" * 256
    assert added.question_group == "г" * 128
    assert added.question == text and added.answer == text
    assert store.for_phone("9" * 100) == [added]


def test_naive_times_and_odd_directions_are_refused(store: InteractionStore) -> None:
    with pytest.raises(ValueError, match="naive"):
        store.add(PHONE, datetime(2026, 3, 2, 7, 0))
    with pytest.raises(ValueError, match="direction"):
        store.add(PHONE, T0, "sideways")  # type: ignore[arg-type]
    added = store.add(PHONE, T0)
    with pytest.raises(ValueError, match="naive"):
        store.update(
            added.id,
            question_group=None,
            question=None,
            answer=None,
            operator=None,
            at=datetime(2026, 3, 2, 8, 0),
        )
