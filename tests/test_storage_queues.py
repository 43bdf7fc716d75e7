"""Queue statistics and operators, against SQLite and PostgreSQL (see `storage_fixtures`)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from alembic import command

from ast_pbx.storage import operators
from ast_pbx.storage.calls import CallLog
from ast_pbx.storage.db import Database, open_database
from ast_pbx.storage.models import Operator
from ast_pbx.storage.operators import OperatorStore
from ast_pbx.storage.queues import MemberTotals, QueueCallRecord, QueueStats, QueueTotals
from tests.storage_fixtures import (  # noqa: F401
    _empty_postgres,
    database_fixture,
    postgres_url_fixture,
    url_fixture,
)

MSK = timezone(timedelta(hours=3))
T0 = datetime(2026, 3, 2, 7, 0, tzinfo=UTC)
DAY = (T0 - timedelta(days=1), T0 + timedelta(days=1))


def seconds(n: float) -> timedelta:
    return timedelta(seconds=n)


@pytest.fixture
def stats(database: Database) -> QueueStats:
    return QueueStats(database)


@pytest.fixture
def store(database: Database) -> OperatorStore:
    return OperatorStore(database)


def only_row(stats: QueueStats, call_id: str) -> QueueCallRecord:
    [row] = [row for row in stats.rows(*DAY) if row.call_id == call_id]
    return row


# Schema and migration


def test_tables_indexes_and_unique_columns(database: Database) -> None:
    inspector = sa.inspect(database.engine)
    indexed = {tuple(index["column_names"]) for index in inspector.get_indexes("queue_calls")}
    assert indexed == {("call_id",), ("queue",), ("caller",), ("entered_at",), ("member",)}
    unique = inspector.get_unique_constraints("operators")
    assert sorted(c["column_names"] for c in unique) == [["bind_code"], ["phone"]]


def test_operator_accepts_by_default_in_the_schema(
    database: Database, store: OperatorStore
) -> None:
    """The server default, for rows written by hand or by later migrations."""
    with database.engine.begin() as connection:
        connection.execute(sa.text("INSERT INTO operators (login) VALUES ('ivanova')"))
    operator = store.get("ivanova")
    assert operator is not None and operator.accepting


def test_upgrade_from_0001_keeps_calls_and_downgrade_drops_the_tables(url: str) -> None:
    with open_database(url) as database:
        with database.engine.begin() as connection:
            command.upgrade(database.alembic_config(connection), "0001")
        with database.engine.begin() as connection:  # a call logged before the upgrade
            connection.execute(
                sa.text(
                    "INSERT INTO calls (channel_id, started_at, called, path, external, marked)"
                    " VALUES ('c', :at, '92000', '[]', false, false)"
                ),
                {"at": T0.replace(tzinfo=None)},
            )
        database.migrate()
        assert database.current_revision() == database.head_revision()
        QueueStats(database).entered("c", "92000", "1001", T0)
        with database.engine.begin() as connection:
            command.downgrade(database.alembic_config(connection), "0001")
        inspector = sa.inspect(database.engine)
        for table in ("queue_calls", "operators", "dialer_tasks", "dialer_attempts", "callbacks"):
            assert not inspector.has_table(table)
        assert "recording_purged_at" not in {c["name"] for c in inspector.get_columns("calls")}
        database.migrate()  # and up again, the call still there
        assert CallLog(database).get("c") is not None


# Queue waits


def test_wait_lifecycle(stats: QueueStats) -> None:
    stats.entered("c1", "92000", "+79001234567", T0.astimezone(MSK))  # any zone in, UTC out
    row = only_row(stats, "c1")
    assert (row.queue, row.caller, row.entered_at) == ("92000", "+79001234567", T0)
    assert row.left_at is None and row.outcome is None and row.wait is None

    assert stats.answered("c1", "1001", T0 + seconds(12), operator="ivanova")
    assert stats.talk_ended("c1", T0 + seconds(72))
    row = only_row(stats, "c1")
    assert row.answered_at == row.left_at == T0 + seconds(12)
    assert (row.member, row.operator, row.outcome) == ("1001", "ivanova", "answered")
    assert row.talk_ended_at == T0 + seconds(72)
    assert (row.wait, row.talk) == (seconds(12), seconds(60))
    for moment in (row.entered_at, row.answered_at, row.left_at, row.talk_ended_at):
        assert moment is not None and moment.tzinfo is UTC


@pytest.mark.parametrize("outcome", ["abandoned", "moved", "sent_away"])
def test_leaving_unanswered(stats: QueueStats, outcome: str) -> None:
    stats.entered("c1", "92000", "1005", T0)
    assert stats.left("c1", outcome, T0 + seconds(20))
    row = only_row(stats, "c1")
    assert (row.outcome, row.left_at, row.wait, row.talk) == (
        outcome,
        T0 + seconds(20),
        seconds(20),
        None,
    )
    assert row.answered_at is None and row.member is None


def test_answer_without_operator(stats: QueueStats) -> None:
    stats.entered("c1", "92000", "1005", T0)
    assert stats.answered("c1", "1002", T0 + seconds(3))
    row = only_row(stats, "c1")
    assert (row.member, row.operator) == ("1002", None)


def test_caller_moved_to_another_queue_then_answered(stats: QueueStats) -> None:
    stats.entered("c1", "92000", "1005", T0)
    assert stats.left("c1", "moved", T0 + seconds(30))
    stats.entered("c1", "93000", "1005", T0 + seconds(30))
    assert stats.answered("c1", "1002", T0 + seconds(45))
    assert stats.talk_ended("c1", T0 + seconds(100))
    first, second = sorted(stats.rows(*DAY), key=lambda row: row.entered_at)
    assert (first.queue, first.outcome, first.wait, first.member) == (
        "92000",
        "moved",
        seconds(30),
        None,
    )
    assert (second.queue, second.outcome, second.wait, second.talk) == (
        "93000",
        "answered",
        seconds(15),
        seconds(55),
    )


def test_caller_entering_the_same_queue_twice(stats: QueueStats) -> None:
    """A waiting-time handler may send the caller back into the queue it left."""
    stats.entered("c1", "92000", "1005", T0)
    stats.left("c1", "moved", T0 + seconds(60))
    stats.entered("c1", "92000", "1005", T0 + seconds(70))
    assert stats.answered("c1", "1001", T0 + seconds(80))
    latest, earlier = stats.rows(*DAY)
    assert (latest.outcome, latest.wait) == ("answered", seconds(10))
    assert (earlier.outcome, earlier.answered_at) == ("moved", None)


def test_answered_again_after_a_transfer_back_into_the_queue(stats: QueueStats) -> None:
    """Answered, sent back into a queue and answered again: two waits, two talks."""
    stats.entered("c1", "92000", "1005", T0)
    stats.answered("c1", "1001", T0 + seconds(5))
    assert stats.talk_ended("c1", T0 + seconds(45))
    stats.entered("c1", "92000", "1005", T0 + seconds(50))
    stats.answered("c1", "1002", T0 + seconds(60))
    assert stats.talk_ended("c1", T0 + seconds(90))
    assert not stats.talk_ended("c1", T0 + seconds(99))
    latest, earlier = stats.rows(*DAY)
    assert (latest.member, latest.wait, latest.talk) == ("1002", seconds(10), seconds(30))
    assert (earlier.member, earlier.wait, earlier.talk) == ("1001", seconds(5), seconds(40))


def test_unknown_or_finished_waits_return_false(stats: QueueStats) -> None:
    assert not stats.answered("nope", "1001", T0)
    assert not stats.left("nope", "abandoned", T0)
    assert not stats.talk_ended("nope", T0)
    stats.entered("c1", "92000", "1005", T0)
    assert not stats.talk_ended("c1", T0 + seconds(1))  # not answered
    stats.answered("c1", "1001", T0 + seconds(2))
    assert not stats.answered("c1", "1002", T0 + seconds(3))  # the first answer stays
    assert not stats.left("c1", "abandoned", T0 + seconds(4))
    stats.entered("c2", "92000", "1006", T0)
    stats.left("c2", "abandoned", T0 + seconds(5))
    assert not stats.talk_ended("c2", T0 + seconds(6))
    assert not stats.left("c2", "moved", T0 + seconds(7))
    row = only_row(stats, "c1")
    assert (row.member, row.outcome, row.left_at) == ("1001", "answered", T0 + seconds(2))
    assert only_row(stats, "c2").outcome == "abandoned"


@pytest.mark.parametrize("outcome", ["answered", "hangup", "", "Abandoned"])
def test_left_outcome_is_checked(stats: QueueStats, outcome: str) -> None:
    stats.entered("c1", "92000", "1005", T0)
    with pytest.raises(ValueError, match="queue outcome"):
        stats.left("c1", outcome, T0 + seconds(1))
    assert only_row(stats, "c1").left_at is None


def test_naive_times_are_refused(stats: QueueStats) -> None:
    naive = datetime(2026, 3, 2, 10, 0)
    with pytest.raises(ValueError, match="naive"):
        stats.entered("c1", "92000", "1005", naive)
    stats.entered("c1", "92000", "1005", T0)
    with pytest.raises(ValueError, match="naive"):
        stats.answered("c1", "1001", naive)
    with pytest.raises(ValueError, match="naive"):
        stats.operators_since(naive)
    with pytest.raises(ValueError, match="naive"):
        stats.summary(naive, T0)
    with pytest.raises(ValueError, match="naive"):
        stats.rows(T0, naive)


def test_long_values_are_cut_to_fit(stats: QueueStats) -> None:
    stats.entered("c" * 80, "9" * 80, "7" * 100, T0)
    assert stats.answered("c" * 80, "1" * 70, T0 + seconds(1), operator="o" * 70)
    [row] = stats.rows(*DAY)
    assert (row.call_id, row.queue, row.caller) == ("c" * 64, "9" * 64, "7" * 64)
    assert (row.member, row.operator) == ("1" * 64, "o" * 64)


# Sticky members


def answered_call(
    stats: QueueStats, call_id: str, caller: str | None, member: str, at: datetime
) -> None:
    stats.entered(call_id, "92000", caller, at - seconds(10))
    stats.answered(call_id, member, at)


def test_operators_since_keeps_the_latest_answer_from_since_on(stats: QueueStats) -> None:
    answered_call(stats, "a1", "+7900111", "1001", T0 - seconds(1))  # before: not counted
    answered_call(stats, "a2", "+7900111", "1002", T0)  # exactly at `since`: counted
    answered_call(stats, "b2", "+7900222", "1003", T0 + timedelta(hours=2))  # logged first
    answered_call(stats, "b1", "+7900222", "1001", T0 + timedelta(hours=1))
    answered_call(stats, "c1", "+7900333", "1001", T0 - timedelta(hours=1))
    answered_call(stats, "n1", None, "1001", T0 + seconds(5))  # no caller id
    stats.entered("d1", "92000", "+7900444", T0 + seconds(5))
    stats.left("d1", "abandoned", T0 + seconds(9))
    assert stats.operators_since(T0) == {"+7900111": "1002", "+7900222": "1003"}
    assert stats.operators_since(T0.astimezone(MSK) + timedelta(microseconds=1)) == {
        "+7900222": "1003"
    }
    assert stats.operators_since(T0 + timedelta(days=1)) == {}


# Reports


def seed_report(stats: QueueStats) -> None:
    """Waits of 10, 30, 20, 50 and 60 s in 92000 (one still waiting), 5 s in 93000."""
    stats.entered("before", "92000", "1", T0 - seconds(1))  # outside the period
    stats.answered("before", "1001", T0 + seconds(1))
    stats.entered("c1", "92000", "+7900111", T0)
    stats.answered("c1", "1001", T0 + seconds(10), operator="ivanova")
    stats.talk_ended("c1", T0 + seconds(70))
    stats.entered("c2", "92000", "+7900222", T0 + seconds(60))
    stats.answered("c2", "1002", T0 + seconds(90))
    stats.talk_ended("c2", T0 + seconds(210))
    stats.entered("c3", "92000", "+7900333", T0 + seconds(120))
    stats.left("c3", "abandoned", T0 + seconds(140))
    stats.entered("c4", "92000", "+7900444", T0 + seconds(200))
    stats.answered("c4", "1001", T0 + seconds(250))  # still talking
    stats.entered("c5", "92000", "+7900555", T0 + seconds(300))  # still waiting
    stats.entered("c6", "92000", "+7900666", T0 + seconds(400))
    stats.left("c6", "moved", T0 + seconds(460))
    stats.entered("c6", "93000", "+7900666", T0 + seconds(460))
    stats.left("c6", "sent_away", T0 + seconds(465))
    stats.entered("after", "92000", "2", T0 + timedelta(hours=1))  # the end is excluded


def test_summary_per_queue_and_member(stats: QueueStats) -> None:
    seed_report(stats)
    summary = stats.summary(T0.astimezone(MSK), T0 + timedelta(hours=1))
    assert summary.queues == (
        QueueTotals(
            queue="92000",
            entered=6,
            answered=3,
            abandoned=1,
            moved=1,
            sent_away=0,
            mean_wait_seconds=pytest.approx(34.0),
            max_wait_seconds=60.0,
            talk_seconds=180.0,
        ),
        QueueTotals(
            queue="93000",
            entered=1,
            answered=0,
            abandoned=0,
            moved=0,
            sent_away=1,
            mean_wait_seconds=5.0,
            max_wait_seconds=5.0,
            talk_seconds=0.0,
        ),
    )
    assert summary.queues[0].waiting == 1
    assert summary.members == (
        MemberTotals("92000", "1001", answered=2, mean_wait_seconds=30.0, talk_seconds=60.0),
        MemberTotals("92000", "1002", answered=1, mean_wait_seconds=30.0, talk_seconds=120.0),
    )


def test_summary_of_an_empty_period_and_of_waits_not_over(stats: QueueStats) -> None:
    empty = stats.summary(*DAY)
    assert (empty.queues, empty.members) == ((), ())
    stats.entered("c1", "92000", "1005", T0)
    [queue] = stats.summary(*DAY).queues
    assert (queue.entered, queue.waiting) == (1, 1)
    assert (queue.mean_wait_seconds, queue.max_wait_seconds, queue.talk_seconds) == (
        None,
        None,
        0.0,
    )


def test_rows_by_period_and_number_fragment(stats: QueueStats) -> None:
    seed_report(stats)
    stats.entered("odd", "92000", "100%_", T0 + seconds(500))
    period = (T0, T0 + timedelta(hours=1))
    assert [r.call_id for r in stats.rows(*period)] == [
        "odd",
        "c6",
        "c6",
        "c5",
        "c4",
        "c3",
        "c2",
        "c1",
    ]
    assert [r.call_id for r in stats.rows(*period, "+7900")][-1] == "c1"
    assert [r.queue for r in stats.rows(*period, "666")] == ["93000", "92000"]
    assert [r.call_id for r in stats.rows(*period, "%_")] == ["odd"]  # wildcards are plain
    assert stats.rows(*period, "999") == []
    assert [r.call_id for r in stats.rows(*period, limit=2)] == ["odd", "c6"]
    assert [r.call_id for r in stats.rows(T0 - seconds(1), T0)] == ["before"]


def test_waits_from_many_threads(stats: QueueStats) -> None:
    """The engine calls through asyncio.to_thread: threads share the pool."""

    def one_call(n: int) -> None:
        call_id = f"ch{n}"
        stats.entered(call_id, "92000", f"+7900{n:07d}", T0 + seconds(n))
        stats.answered(call_id, "1001", T0 + seconds(n + 2))
        stats.talk_ended(call_id, T0 + seconds(n + 5))

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(one_call, range(60)))
    [queue] = stats.summary(*DAY).queues
    assert (queue.entered, queue.answered, queue.mean_wait_seconds) == (60, 60, 2.0)
    assert queue.talk_seconds == 180.0


# Operators


def fixed_codes(monkeypatch: pytest.MonkeyPatch, *numbers: int) -> None:
    """Make `secrets.randbelow` (as the store draws codes) return `numbers` in turn."""
    drawn = iter(numbers)
    monkeypatch.setattr(operators.secrets, "randbelow", lambda _space: next(drawn))


def test_new_code_creates_the_operator(store: OperatorStore) -> None:
    assert store.get("ivanova") is None
    code = store.new_code("ivanova", T0.astimezone(MSK))
    assert re.fullmatch(r"\d{5}", code)
    operator = store.get("ivanova")
    assert operator is not None
    assert (operator.bind_code, operator.phone, operator.accepting) == (code, None, True)
    assert operator.code_expires_at == T0 + timedelta(minutes=10)
    assert operator.code_expires_at is not None and operator.code_expires_at.tzinfo is UTC


def test_new_code_replaces_the_previous_one(store: OperatorStore) -> None:
    first = store.new_code("ivanova", T0)
    second = store.new_code("ivanova", T0 + seconds(30), ttl=timedelta(minutes=1))
    assert second != first  # the first was still live, so still taken when drawing
    operator = store.get("ivanova")
    assert operator is not None
    assert (operator.bind_code, operator.code_expires_at) == (second, T0 + seconds(90))
    assert store.bind(first, "1001", T0 + seconds(40)) is None
    assert store.bind(second, "1001", T0 + seconds(40)) == "ivanova"


def test_codes_are_unique_among_live_ones(
    store: OperatorStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    fixed_codes(monkeypatch, 7, 7, 7, 8)
    assert store.new_code("ivanova", T0) == "00007"
    assert store.new_code("petrov", T0 + seconds(1)) == "00008"  # 00007 drawn twice: taken


def test_an_expired_code_is_free_again(
    store: OperatorStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    fixed_codes(monkeypatch, 42, 42)
    assert store.new_code("ivanova", T0) == "00042"
    assert store.new_code("petrov", T0 + timedelta(minutes=10)) == "00042"
    ivanova = store.get("ivanova")
    assert ivanova is not None
    assert (ivanova.bind_code, ivanova.code_expires_at) == (None, None)


def test_codes_are_five_digits_zero_padded(
    store: OperatorStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    fixed_codes(monkeypatch, 0, 99_999)
    assert store.new_code("a", T0) == "00000"
    assert store.new_code("b", T0) == "99999"


def test_bind(store: OperatorStore) -> None:
    code = store.new_code("ivanova", T0)
    assert store.bind(code, "1001", (T0 + seconds(20)).astimezone(MSK)) == "ivanova"
    operator = store.get("ivanova")
    assert operator is not None
    assert (operator.phone, operator.bind_code, operator.code_expires_at) == ("1001", None, None)
    assert operator.bound_at == T0 + seconds(20)
    assert store.login_of_phone("1001") == "ivanova"
    assert store.bind(code, "1002", T0 + seconds(30)) is None  # a code binds once


def test_wrong_code_binds_nobody(store: OperatorStore) -> None:
    code = store.new_code("ivanova", T0)
    wrong = f"{(int(code) + 1) % 100_000:05d}"
    assert store.bind(wrong, "1001", T0 + seconds(5)) is None
    assert store.bind("", "1001", T0 + seconds(5)) is None
    assert store.login_of_phone("1001") is None
    operator = store.get("ivanova")
    assert operator is not None and operator.bind_code == code  # still usable


def test_expired_code_binds_nobody_and_is_cleared(store: OperatorStore) -> None:
    code = store.new_code("ivanova", T0, ttl=timedelta(minutes=5))
    assert store.bind(code, "1001", T0 + timedelta(minutes=5)) is None  # expiry is exclusive
    operator = store.get("ivanova")
    assert operator is not None
    assert (operator.bind_code, operator.code_expires_at, operator.phone) == (None, None, None)
    code = store.new_code("ivanova", T0, ttl=timedelta(minutes=5))
    assert store.bind(code, "1001", T0 + timedelta(minutes=5) - seconds(1)) == "ivanova"


def test_binding_a_taken_phone_unbinds_its_operator(store: OperatorStore) -> None:
    assert store.bind(store.new_code("ivanova", T0), "1001", T0) == "ivanova"
    assert store.bind(store.new_code("petrov", T0), "1001", T0 + seconds(9)) == "petrov"
    ivanova, petrov = store.all()
    assert (ivanova.login, ivanova.phone, ivanova.bound_at) == ("ivanova", None, None)
    assert (petrov.login, petrov.phone, petrov.bound_at) == ("petrov", "1001", T0 + seconds(9))
    assert store.login_of_phone("1001") == "petrov"


def test_binding_again_moves_the_operator(store: OperatorStore) -> None:
    store.bind(store.new_code("ivanova", T0), "1001", T0)
    assert store.bind(store.new_code("ivanova", T0), "1001", T0 + seconds(1)) == "ivanova"
    assert store.bind(store.new_code("ivanova", T0), "1002", T0 + seconds(2)) == "ivanova"
    assert store.login_of_phone("1001") is None
    assert store.login_of_phone("1002") == "ivanova"


def test_unbind(store: OperatorStore) -> None:
    assert not store.unbind("ivanova")
    store.bind(store.new_code("ivanova", T0), "1001", T0)
    assert store.unbind("ivanova")
    operator = store.get("ivanova")
    assert operator is not None and (operator.phone, operator.bound_at) == (None, None)
    assert store.login_of_phone("1001") is None
    assert store.unbind("ivanova")  # known, already free


def test_accepting_switch(store: OperatorStore) -> None:
    assert store.set_accepting("petrov", False)  # the row is created
    store.bind(store.new_code("ivanova", T0), "1001", T0)
    assert store.set_accepting("ivanova", False)
    assert [(o.login, o.accepting) for o in store.all()] == [("ivanova", False), ("petrov", False)]
    assert store.set_accepting("ivanova", True)
    operator = store.get("ivanova")
    assert operator is not None and (operator.accepting, operator.phone) == (True, "1001")


def test_operator_arguments_are_checked(store: OperatorStore) -> None:
    with pytest.raises(ValueError, match="login"):
        store.new_code("", T0)
    with pytest.raises(ValueError, match="login"):
        store.set_accepting("x" * 65, True)
    with pytest.raises(ValueError, match="lifetime"):
        store.new_code("ivanova", T0, ttl=timedelta(0))
    with pytest.raises(ValueError, match="naive"):
        store.new_code("ivanova", datetime(2026, 3, 2, 10, 0))
    with pytest.raises(ValueError, match="naive"):
        store.bind("00000", "1001", datetime(2026, 3, 2, 10, 0))
    assert store.all() == []


def test_long_phone_is_cut_to_fit(store: OperatorStore) -> None:
    store.bind(store.new_code("ivanova", T0), "1" * 80, T0)
    assert store.login_of_phone("1" * 80) == "ivanova"
    operator = store.get("ivanova")
    assert operator is not None and operator.phone == "1" * 64


def test_operators_from_many_threads(store: OperatorStore) -> None:
    """New rows and codes raced for by concurrent transactions: each gets its own."""
    logins = [f"op{n}" for n in range(16)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        codes = list(pool.map(lambda login: store.new_code(login, T0), logins))
        list(pool.map(lambda n: store.set_accepting("shared", n % 2 == 0), range(16)))
    assert len(set(codes)) == len(logins)
    assert {o.login: o.bind_code for o in store.all() if o.login != "shared"} == dict(
        zip(logins, codes, strict=True)
    )


@pytest.fixture
def postgres_database(postgres_url: str) -> Iterator[Database]:
    _empty_postgres(postgres_url)
    with open_database(postgres_url) as database:
        database.migrate()
        yield database


@pytest.mark.postgres
def test_a_code_taken_by_a_concurrent_transaction_is_drawn_again(
    postgres_database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL only: on SQLite the first write locks the file, so no one can cut in."""
    store = OperatorStore(postgres_database)
    fresh_code = operators._fresh_code
    drawn: list[str] = []

    def racing(taken: set[str | None]) -> str:
        if drawn:
            code = fresh_code(taken)
        else:
            # Another engine commits the same code between our read and our write.
            code = "00007"
            with postgres_database.engine.begin() as connection:
                connection.execute(
                    sa.insert(Operator).values(
                        login="rival", bind_code=code, code_expires_at=T0 + timedelta(hours=1)
                    )
                )
        drawn.append(code)
        return code

    monkeypatch.setattr(operators, "_fresh_code", racing)
    code = store.new_code("ivanova", T0)
    assert drawn[0] == "00007" and code == drawn[1] != "00007"
    assert {o.login: o.bind_code for o in store.all()} == {"rival": "00007", "ivanova": code}
