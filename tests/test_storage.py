"""Storage against SQLite (a temporary file) and PostgreSQL (a scratch database).

PostgreSQL tests are marked `postgres` and skipped only if the server is not there
(the fixtures are in `storage_fixtures.py`).
"""

from __future__ import annotations

import sqlite3
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from ast_pbx.errors import EXIT_USAGE
from ast_pbx.storage.calls import CallLog, CallRecord
from ast_pbx.storage.db import Database, StorageError, migrations_dir, open_database
from ast_pbx.storage.models import Base
from tests.storage_fixtures import database_fixture, postgres_url_fixture, url_fixture  # noqa: F401

MSK = timezone(timedelta(hours=3))
T0 = datetime(2026, 3, 2, 7, 0, tzinfo=UTC)


@pytest.fixture
def log(database: Database) -> CallLog:
    return CallLog(database)


# Schema and migrations


def test_migrate_twice_is_idempotent(url: str) -> None:
    with open_database(url) as database:
        assert database.current_revision() is None
        database.migrate()
        database.migrate()
        assert database.current_revision() == database.head_revision()
        assert sa.inspect(database.engine).has_table("calls")


def test_head_of_package_is_recorded_in_database(database: Database) -> None:
    head = database.head_revision()
    assert head == "0004"
    with database.engine.connect() as connection:
        recorded = connection.execute(sa.text("SELECT version_num FROM alembic_version")).all()
    assert recorded == [(head,)]


def test_models_and_migrations_do_not_drift(database: Database) -> None:
    """What `alembic check` does: the migrated schema is exactly the models'."""
    with database.engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "compare_server_default": True}
        )
        assert compare_metadata(context, Base.metadata) == []


def test_indexes_and_unique_channel(database: Database) -> None:
    inspector = sa.inspect(database.engine)
    indexed = {tuple(index["column_names"]) for index in inspector.get_indexes("calls")}
    assert {("started_at",), ("caller",), ("called",)} <= indexed
    unique = inspector.get_unique_constraints("calls")
    assert [c["column_names"] for c in unique] == [["channel_id"]]


def test_migrations_ship_inside_the_package() -> None:
    location = migrations_dir()
    assert (location / "env.py").is_file()
    assert (location / "script.py.mako").is_file()
    assert (location / "versions" / "0001_calls.py").is_file()


def test_sqlite_creates_directory_and_uses_wal(tmp_path: Path) -> None:
    file = tmp_path / "deep" / "er" / "astpbx.db"
    with open_database(f"sqlite:///{file}") as database:
        database.migrate()
        with database.engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    assert file.is_file()


# Errors


def test_unreachable_database_masks_password() -> None:
    with pytest.raises(StorageError) as caught:
        open_database("postgresql://u:secret@127.0.0.1:1/x")
    message = str(caught.value)
    assert "secret" not in message
    assert "postgresql://u:***@127.0.0.1:1/x" in message
    assert "x: cannot connect: " in message  # names what failed
    assert caught.value.exit_code == EXIT_USAGE


@pytest.mark.parametrize(
    "url",
    [
        "postgres://u:secret@127.0.0.1/x",
        "sqlite+nodriver:///x.db",
        "mysql+nodriver://u:secret@127.0.0.1/x",
        "no url at all://u:secret@h",
    ],
)
def test_unusable_url_is_a_storage_error(url: str) -> None:
    with pytest.raises(StorageError) as caught:
        open_database(url)
    assert "secret" not in str(caught.value)


def test_sqlite_file_that_cannot_be_opened(tmp_path: Path) -> None:
    (tmp_path / "astpbx.db").mkdir()  # a directory where the file should be
    with pytest.raises(StorageError, match="cannot connect"):
        open_database(f"sqlite:///{tmp_path / 'astpbx.db'}")


# The call log


def test_call_lifecycle(log: CallLog) -> None:
    call_id = log.started(
        "1772434800.17",
        "+79001234567",
        "90000",
        at=T0.astimezone(MSK),  # any zone in, UTC out
        trunk="rt",
        external=True,
        config_version="3f2a9c",
    )
    assert log.visited("1772434800.17", ["90000"])
    assert log.visited("1772434800.17", ["92000", "1001"])
    assert log.answered("1772434800.17", T0 + timedelta(seconds=5))
    assert log.ended(
        "1772434800.17",
        at=T0 + timedelta(seconds=65),
        outcome="phone 1001",
        reason="caller hung up",
    )
    call = log.get("1772434800.17")
    assert call is not None
    assert call.id == call_id
    assert call.started_at == T0
    assert call.answered_at == T0 + timedelta(seconds=5)
    assert call.ended_at == T0 + timedelta(seconds=65)
    for moment in (call.started_at, call.answered_at, call.ended_at):
        assert moment is not None
        assert moment.utcoffset() == timedelta(0)
        assert moment.tzinfo is UTC
    assert call.path == ("90000", "92000", "1001")
    assert (call.caller, call.called, call.trunk) == ("+79001234567", "90000", "rt")
    assert (call.outcome, call.reason) == ("phone 1001", "caller hung up")
    assert call.external
    assert call.config_version == "3f2a9c"
    assert not call.marked
    assert call.recording is None
    assert call.duration == timedelta(seconds=65)
    assert call.talk_time == timedelta(seconds=60)


def test_first_answer_and_first_end_stay(log: CallLog) -> None:
    log.started("c", "1001", "1002", at=T0)
    log.answered("c", T0 + timedelta(seconds=1))
    log.answered("c", T0 + timedelta(seconds=9))
    log.ended("c", at=T0 + timedelta(seconds=10), outcome="hangup", reason="caller hung up")
    log.ended("c", at=T0 + timedelta(seconds=20), outcome="unknown-number", reason=None)
    call = log.get("c")
    assert call is not None
    assert call.answered_at == T0 + timedelta(seconds=1)
    assert (call.ended_at, call.outcome) == (T0 + timedelta(seconds=10), "hangup")


def test_unknown_channel_is_not_an_error(log: CallLog) -> None:
    assert log.ended("nope", at=T0, outcome="hangup", reason="caller hung up") is False
    assert log.answered("nope", T0) is False
    assert log.visited("nope", ["90000"]) is False
    assert log.recorded("nope", "x.wav") is False
    assert log.get("nope") is None
    assert log.mark(424242) is False


def test_duplicate_channel_is_a_storage_error(log: CallLog) -> None:
    log.started("c", "1001", "1002", at=T0)
    with pytest.raises(StorageError, match="statement failed"):
        log.started("c", "1001", "1002", at=T0)


def test_naive_time_is_refused(log: CallLog) -> None:
    with pytest.raises(ValueError, match="naive"):
        log.started("c", "1001", "1002", at=datetime(2026, 3, 2, 10, 0))
    with pytest.raises(ValueError, match="naive"):
        log.history(datetime(2026, 3, 2), T0)


def test_long_values_are_cut_to_fit(log: CallLog) -> None:
    log.started("c", "9" * 100, "1002", at=T0)
    log.ended("c", at=T0, outcome="hangup", reason="r" * 300)
    call = log.get("c")
    assert call is not None
    assert (call.caller, call.reason) == ("9" * 64, "r" * 128)


def test_mark(log: CallLog) -> None:
    call_id = log.started("c", "1001", "1002", at=T0)
    assert log.mark(call_id)
    call = log.get("c")
    assert call is not None and call.marked
    assert log.mark(call_id, marked=False)
    call = log.get("c")
    assert call is not None and not call.marked


def test_mark_by_channel(log: CallLog) -> None:
    log.started("c", "1001", "1002", at=T0)
    assert log.mark_channel("c")
    call = log.get("c")
    assert call is not None and call.marked
    assert log.mark_channel("c", marked=False)
    assert not log.mark_channel("no-such-channel")


def test_recorded(log: CallLog) -> None:
    log.started("c", "1001", "1002", at=T0)
    assert log.recorded("c", "/var/lib/astpbx/recordings/c.wav")
    call = log.get("c")
    assert call is not None and call.recording == "/var/lib/astpbx/recordings/c.wav"


def _some_calls(log: CallLog) -> dict[str, int]:
    calls = {
        "a": ("+79001234567", "90000", T0),
        "b": ("+79007654321", "90000", T0 + timedelta(hours=1)),
        "c": ("1001", "92000", T0 + timedelta(hours=2)),
        "d": (None, "1002", T0 + timedelta(days=1)),
        "e": ("100%_", "1_0%", T0 + timedelta(hours=3)),
    }
    return {
        channel: log.started(channel, caller, called, at=at)
        for channel, (caller, called, at) in calls.items()
    }


def _channels(records: list[CallRecord]) -> list[str]:
    return [record.channel_id for record in records]


def test_history_by_period_newest_first(log: CallLog) -> None:
    _some_calls(log)
    day = log.history(T0, T0 + timedelta(days=1))
    assert _channels(day) == ["e", "c", "b", "a"]  # the end is excluded
    # The period may be given in any zone.
    assert _channels(log.history(T0.astimezone(MSK), T0 + timedelta(hours=1))) == ["a"]
    assert log.history(T0 - timedelta(days=2), T0 - timedelta(days=1)) == []
    assert _channels(log.history(T0, T0 + timedelta(days=2), limit=2)) == ["d", "e"]


def test_history_by_number_fragment(log: CallLog) -> None:
    _some_calls(log)
    period = (T0 - timedelta(days=1), T0 + timedelta(days=2))
    assert _channels(log.history(*period, caller="4567")) == ["a"]
    assert _channels(log.history(*period, caller="+7900")) == ["b", "a"]
    assert _channels(log.history(*period, called="900")) == ["b", "a"]
    assert _channels(log.history(*period, caller="7900", called="90000")) == ["b", "a"]
    assert _channels(log.history(*period, called="1002")) == ["d"]
    # LIKE wildcards in a fragment are plain characters.
    assert _channels(log.history(*period, caller="%_")) == ["e"]
    assert _channels(log.history(*period, called="_0%")) == ["e"]
    assert log.history(*period, caller="555") == []


def test_history_marked_only(log: CallLog) -> None:
    ids = _some_calls(log)
    log.mark(ids["b"])
    log.mark(ids["d"])
    period = (T0 - timedelta(days=1), T0 + timedelta(days=2))
    assert _channels(log.history(*period, marked_only=True)) == ["d", "b"]
    assert _channels(log.history(*period, caller="7900", marked_only=True)) == ["b"]


def test_log_from_many_threads(log: CallLog) -> None:
    """The engine calls the log through asyncio.to_thread: threads share the pool."""

    def one_call(n: int) -> None:
        channel = f"ch{n}"
        log.started(channel, f"+7900{n:07d}", "90000", at=T0 + timedelta(seconds=n))
        log.visited(channel, ["90000"])
        log.ended(channel, at=T0 + timedelta(seconds=n + 1), outcome="hangup", reason="done")

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(one_call, range(80)))
    calls = log.history(T0, T0 + timedelta(hours=1))
    assert len(calls) == 80
    assert all(call.path == ("90000",) and call.outcome == "hangup" for call in calls)


def test_sqlite_is_the_plain_file(tmp_path: Path) -> None:
    """The default URL from `system` is a normal SQLite file other tools can read."""
    file = tmp_path / "astpbx.db"
    with open_database(f"sqlite:///{file}") as database:
        database.migrate()
        CallLog(database).started("c", "1001", "1002", at=T0)
    with sqlite3.connect(file) as connection:
        rows = connection.execute("SELECT channel_id, started_at, path FROM calls").fetchall()
    connection.close()
    assert rows == [("c", "2026-03-02 07:00:00.000000", "[]")]


def test_calls_logged_after_an_id_come_in_log_order(log: CallLog) -> None:
    before = log.last_id()
    late = datetime(2030, 1, 1, tzinfo=UTC)
    early = datetime(2020, 1, 1, tzinfo=UTC)
    log.started("later-clock", "1", "90000", at=late)
    log.started("earlier-clock", "2", "90000", at=early)  # a clock moved back
    log.started("elsewhere", "3", "91000", at=early)
    after = log.logged_after(before, called="90000")
    assert [c.channel_id for c in after] == ["later-clock", "earlier-clock"]
    assert log.last_id() == after[-1].id + 1


def test_the_end_can_carry_the_whole_path_and_the_answer(log: CallLog) -> None:
    start = datetime(2026, 3, 3, 7, 0, tzinfo=UTC)
    log.started("c1", "+7900", "90000", at=start)
    assert log.ended(
        "c1",
        at=start + timedelta(seconds=9),
        outcome="queue 92000",
        reason="caller hung up in the queue",
        path=["90000", "92000"],
        answered_at=start + timedelta(seconds=1),
    )
    record = log.get("c1")
    assert record is not None
    assert record.path == ("90000", "92000")
    assert record.answered_at == start + timedelta(seconds=1)
    assert record.talk_time == timedelta(seconds=8)
