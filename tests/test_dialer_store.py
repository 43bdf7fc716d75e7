"""Autodialer tasks and attempts (`storage.dialer`), against SQLite and PostgreSQL.

Concurrency: worker threads with their own engines on PostgreSQL, and a worker process
killed with SIGKILL in the middle of an attempt, on both backends.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from ast_pbx.config.model import Dialer
from ast_pbx.storage import dialer
from ast_pbx.storage.db import Database, StorageError, open_database
from ast_pbx.storage.dialer import Claim, DialerStore, TaskBusy, TaskRecord, TaskSpec
from tests.storage_fixtures import (  # noqa: F401
    _empty_postgres,
    database_fixture,
    postgres_url_fixture,
    url_fixture,
)

ROOT = Path(__file__).resolve().parents[1]
MSK = timezone(timedelta(hours=3))
T0 = datetime(2026, 3, 2, 7, 0, tzinfo=UTC)
SETTINGS = Dialer(retry_after=30, max_unanswered=3, max_failed=5)
LEASE = timedelta(minutes=3)


def minutes(n: float) -> timedelta:
    return timedelta(minutes=n)


@pytest.fixture
def store(database: Database) -> DialerStore:
    return DialerStore(database)


def claim(
    store: DialerStore,
    now: datetime = T0,
    *,
    worker: str = "w1",
    limit: int = 10,
    in_window: bool = True,
    lease: timedelta = LEASE,
) -> list[Claim]:
    return store.claim(worker, now, limit=limit, lease=lease, in_window=in_window)


def claim_one(store: DialerStore, now: datetime = T0, *, worker: str = "w1") -> Claim:
    [only] = claim(store, now, worker=worker, limit=1)
    return only


def numbers(claims: list[Claim]) -> list[str]:
    return [c.task.number for c in claims]


# Adding


def test_add_and_get(store: DialerStore) -> None:
    moment = T0.astimezone(MSK)
    task, created = store.add(
        "+79990001122", "Ваши документы готовы", moment, repeat=2, external_id="case-1"
    )
    assert created
    assert task == store.get(task.id)
    assert task.number == "+79990001122" and task.text == "Ваши документы готовы"
    assert (task.repeat, task.priority, task.external_id) == (2, 0, "case-1")
    # Back in UTC, whatever the zone given or the session's zone on PostgreSQL.
    assert task.enqueued_at == T0 and task.enqueued_at.tzinfo == UTC
    assert not task.done and task.done_reason is None and task.not_before is None
    assert (task.attempts, task.unanswered, task.failed) == (0, 0, 0)
    assert task.lease_owner is None and task.lease_until is None
    assert task.attempt_started_at is None and not task.urgent
    assert store.attempts(task.id) == []
    assert store.get(task.id + 1000) is None


def test_add_is_idempotent_by_external_id(store: DialerStore) -> None:
    first, created = store.add("1001", "one", T0, external_id="x")
    again, created_again = store.add("2002", "other text", T0 + minutes(5), external_id="x")
    assert created and not created_again
    assert again == first  # the existing task, as it is: the re-submit changes nothing
    other, created_other = store.add("1001", "one", T0)  # no external id: always new
    assert created_other and other.id != first.id
    assert len(store.list()) == 2


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"number": None}, "number must be"),
        ({"number": " "}, "number must be"),
        ({"number": "1" * 65}, "longer than 64"),
        ({"text": ""}, "text must be"),
        ({"repeat": 0}, "repeat must be at least 1"),
        ({"priority": "high"}, "priority must be an integer"),
        ({"external_id": ""}, "external_id must be"),
        ({"external_id": "x" * 129}, "external_id must be"),
        ({"not_before": datetime(2026, 3, 2, 8, 0)}, "naive datetime"),
    ],
)
def test_add_refuses_bad_values(
    store: DialerStore, change: dict[str, object], message: str
) -> None:
    values: dict[str, object] = {"number": "1001", "text": "hello", **change}
    with pytest.raises(ValueError, match=message):
        store.add(now=T0, **values)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="naive datetime"):
        store.add("1001", "hello", datetime(2026, 3, 2, 7, 0))
    assert store.list() == []


def test_add_many(store: DialerStore) -> None:
    existing, _ = store.add("3003", "old", T0 - minutes(1), external_id="known")
    results = store.add_many(
        [
            TaskSpec("1001", "a", external_id="new"),
            TaskSpec("1002", "b", priority=2, not_before=T0 + minutes(10), repeat=3),
            # Repeats of an external id in the same batch are re-submits of the first.
            TaskSpec("9999", "ignored", external_id="new"),
            TaskSpec("9999", "ignored", external_id="known"),
        ],
        T0,
    )
    assert [created for _, created in results] == [True, True, False, False]
    first, second, repeat, known = (task for task, _ in results)
    assert repeat == first and first.number == "1001" and first.external_id == "new"
    assert (second.priority, second.not_before, second.repeat) == (2, T0 + minutes(10), 3)
    assert known == existing
    assert first == store.get(first.id) and second == store.get(second.id)
    assert len(store.list()) == 3
    assert store.add_many([], T0) == []


def test_add_many_is_all_or_nothing(store: DialerStore, monkeypatch: pytest.MonkeyPatch) -> None:
    good = TaskSpec("1001", "a", external_id="a")
    bad = TaskSpec(None, "b")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="dialer task 2: number must be"):
        store.add_many([good, bad, TaskSpec("1003", "c")], T0)
    assert store.list() == []
    # A failure in the database itself (the checks skipped): the transaction rolls back.
    monkeypatch.setattr(dialer, "_number", lambda number: number)
    with pytest.raises(StorageError):
        store.add_many([good, bad], T0)
    assert store.list() == []


def test_concurrent_adds_of_one_external_id_make_one_task(database: Database, url: str) -> None:
    barrier = threading.Barrier(6)

    def add(n: int) -> tuple[TaskRecord, bool]:
        with open_database(url) as own:
            barrier.wait()
            return DialerStore(own).add(f"100{n}", "hello", T0, external_id="same")

    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(add, range(6)))
    assert sorted(created for _, created in results) == [False] * 5 + [True]
    assert len({task.id for task, _ in results}) == 1
    assert len(DialerStore(database).list()) == 1


# Reading


def test_list_filters_newest_first(store: DialerStore) -> None:
    a, _ = store.add("+7 (999) 100%", "a", T0)
    b, _ = store.add("+79991002", "b", T0 + minutes(1))
    c, _ = store.add("+79992003", "c", T0 + minutes(2))
    finished = claim_one(store, T0 + minutes(3))  # the oldest, a
    store.finish(finished.attempt_id, "answered", T0 + minutes(4), SETTINGS)
    assert [t.id for t in store.list()] == [c.id, b.id, a.id]
    assert [t.id for t in store.list(done=True)] == [a.id]
    assert [t.id for t in store.list(done=False)] == [c.id, b.id]
    assert [t.id for t in store.list(number="100")] == [b.id, a.id]
    assert [t.id for t in store.list(number="0%")] == [a.id]  # % is a plain character
    assert [t.id for t in store.list(start=T0 + minutes(1))] == [c.id, b.id]
    assert [t.id for t in store.list(end=T0 + minutes(1))] == [a.id]
    window = store.list(start=T0.astimezone(MSK), end=T0 + minutes(2))
    assert [t.id for t in window] == [b.id, a.id]
    assert [t.id for t in store.list(limit=2)] == [c.id, b.id]
    assert [t.id for t in store.list(limit=2, offset=2)] == [a.id]


def test_counts_and_in_progress(store: DialerStore) -> None:
    for n in range(4):
        store.add(f"100{n}", "x", T0 + minutes(n))
    assert store.counts(T0) == {"waiting": 4, "in_progress": 0, "done": 0}
    first, second = claim(store, limit=2)
    store.finish(first.attempt_id, "answered", T0 + minutes(1), SETTINGS)
    assert store.counts(T0 + minutes(1)) == {"waiting": 2, "in_progress": 1, "done": 1}
    assert store.in_progress(T0 + minutes(1)) == 1
    # A lease that ran out is not "in progress" any more: the task waits to be dialed.
    assert store.in_progress(T0 + LEASE + minutes(1)) == 0
    assert store.counts(T0 + LEASE + minutes(1))["waiting"] == 3
    assert second.task.lease_until == T0 + LEASE


# Claiming


def test_claim_takes_a_lease_and_starts_an_attempt(store: DialerStore) -> None:
    task, _ = store.add("1001", "hello", T0 - minutes(5))
    [taken] = claim(store, T0, worker="engine-a")
    assert taken.task.id == task.id
    assert taken.task.lease_owner == "engine-a" and taken.task.lease_until == T0 + LEASE
    assert taken.task.attempts == 1 and taken.task.attempt_started_at == T0
    assert taken.task == store.get(task.id)
    [attempt] = store.attempts(task.id)
    assert attempt.id == taken.attempt_id and attempt.task_id == task.id
    assert (attempt.number, attempt.worker, attempt.started_at) == ("1001", "engine-a", T0)
    assert attempt.ended_at is None and attempt.outcome is None
    # Held: nobody gets it again while the lease lasts, the same worker neither.
    assert claim(store, T0 + minutes(1), worker="engine-b") == []
    assert claim(store, T0 + LEASE, worker="engine-a") == []


def test_claim_order_is_priority_then_age(store: DialerStore) -> None:
    store.add("late-0", "x", T0 + minutes(3))
    store.add("low-old", "x", T0 - minutes(10), priority=5)
    store.add("early-0", "x", T0 + minutes(1))
    store.add("urgent", "x", T0 + minutes(9), priority=-1)
    store.add("same-time-a", "x", T0 + minutes(2))
    store.add("same-time-b", "x", T0 + minutes(2))
    assert numbers(claim(store, T0 + minutes(10))) == [
        "urgent",
        "early-0",
        "same-time-a",
        "same-time-b",
        "late-0",
        "low-old",
    ]


def test_claim_limit(store: DialerStore) -> None:
    for n in range(5):
        store.add(f"100{n}", "x", T0 + minutes(n))
    assert claim(store, limit=0) == []
    assert numbers(claim(store, T0 + minutes(5), limit=2)) == ["1000", "1001"]
    assert numbers(claim(store, T0 + minutes(5), limit=2, worker="w2")) == ["1002", "1003"]
    assert numbers(claim(store, T0 + minutes(5), limit=2, worker="w3")) == ["1004"]
    assert claim(store, T0 + minutes(5), worker="w4") == []


def test_not_before(store: DialerStore) -> None:
    store.add("later", "x", T0, not_before=T0 + minutes(30))
    store.add("now", "x", T0 + minutes(1))
    assert numbers(claim(store, T0 + minutes(29))) == ["now"]
    assert claim(store, T0 + minutes(29), worker="w2") == []
    # Due at the very moment.
    assert numbers(claim(store, (T0 + minutes(30)).astimezone(MSK), worker="w3")) == ["later"]


def test_outside_the_window_only_urgent_tasks(store: DialerStore) -> None:
    store.add("normal", "x", T0 - minutes(2))
    store.add("urgent", "x", T0, priority=-1)
    assert numbers(claim(store, in_window=False)) == ["urgent"]
    assert claim(store, worker="w2", in_window=False) == []
    assert numbers(claim(store, worker="w3", in_window=True)) == ["normal"]


def test_claim_refuses_bad_arguments(store: DialerStore) -> None:
    store.add("1001", "x", T0)
    with pytest.raises(ValueError, match="lease must be positive"):
        claim(store, lease=timedelta(0))
    with pytest.raises(ValueError, match="worker name"):
        claim(store, worker="")
    with pytest.raises(ValueError, match="worker name"):
        claim(store, worker="w" * 65)
    with pytest.raises(ValueError, match="naive"):
        claim(store, datetime(2026, 3, 2, 7, 0))
    assert store.in_progress(T0) == 0


# Attempts and their outcomes


def test_attempt_events_keep_the_first(store: DialerStore) -> None:
    store.add("1001", "x", T0)
    taken = claim_one(store)
    store.attempt_event(taken.attempt_id, channel_id="dialer-1-1")
    store.attempt_event(taken.attempt_id, ringing_at=T0 + timedelta(seconds=3))
    store.attempt_event(
        taken.attempt_id,
        channel_id="other",
        ringing_at=T0 + timedelta(seconds=5),
        answered_at=(T0 + timedelta(seconds=9)).astimezone(MSK),
    )
    store.attempt_event(taken.attempt_id, answered_at=T0 + timedelta(seconds=20))
    store.attempt_event(taken.attempt_id)  # nothing given: nothing done
    store.attempt_event(taken.attempt_id + 100, ringing_at=T0)  # unknown: ignored
    [attempt] = store.attempts(taken.task.id)
    assert attempt.channel_id == "dialer-1-1"
    assert attempt.ringing_at == T0 + timedelta(seconds=3)
    assert attempt.answered_at == T0 + timedelta(seconds=9)


def test_answered_task_is_done(store: DialerStore) -> None:
    store.add("1001", "x", T0)
    taken = claim_one(store)
    task = store.finish(
        taken.attempt_id, "answered", T0 + minutes(1), SETTINGS, cause=16, cause_text="Normal"
    )
    assert task is not None and task == store.get(taken.task.id)
    assert task.done and task.done_reason == "answered"
    assert task.lease_owner is None and task.lease_until is None
    assert task.attempt_started_at is None and task.attempts == 1
    [attempt] = store.attempts(task.id)
    assert (attempt.outcome, attempt.ended_at) == ("answered", T0 + minutes(1))
    assert (attempt.cause, attempt.cause_text) == (16, "Normal")
    assert claim(store, T0 + minutes(60)) == []


def test_retry_after_no_answer(store: DialerStore) -> None:
    store.add("1001", "x", T0)
    first = claim_one(store)
    ended = T0 + minutes(1)
    task = store.finish(first.attempt_id, "no_answer", ended, SETTINGS, cause=19)
    assert task is not None and not task.done
    assert (task.unanswered, task.failed) == (1, 1)
    assert task.not_before == ended + minutes(30)
    assert task.lease_owner is None and task.attempt_started_at is None
    assert claim(store, ended + minutes(29)) == []
    second = claim_one(store, ended + minutes(30))
    assert second.task.id == task.id and second.task.attempts == 2
    assert [a.id for a in store.attempts(task.id)] == [first.attempt_id, second.attempt_id]


def test_max_unanswered_ends_the_task(store: DialerStore) -> None:
    store.add("1001", "x", T0)
    settings = Dialer(retry_after=10, max_unanswered=2, max_failed=5)
    now = T0
    task: TaskRecord | None = None
    for _ in range(2):
        taken = claim_one(store, now)
        now += minutes(1)
        task = store.finish(taken.attempt_id, "no_answer", now, settings)
        now += minutes(10)
    assert task is not None and task.done and task.done_reason == "max_unanswered"
    assert (task.attempts, task.unanswered, task.failed) == (2, 2, 2)
    assert task.not_before is None
    assert [a.outcome for a in store.attempts(task.id)] == ["no_answer", "no_answer"]
    assert claim(store, now + minutes(60)) == []


def test_max_failed_ends_the_task(store: DialerStore) -> None:
    store.add("1001", "x", T0)
    now = T0
    task: TaskRecord | None = None
    outcomes = ["busy", "failed", "no_answer", "failed", "busy"]
    for outcome in outcomes:
        taken = claim_one(store, now)
        task = store.finish(taken.attempt_id, outcome, now, SETTINGS, cause_text="x" * 100)
        assert task is not None
        now = task.not_before or now
    assert task is not None and task.done and task.done_reason == "max_failed"
    assert (task.attempts, task.unanswered, task.failed) == (5, 1, 5)
    attempts = store.attempts(task.id)
    assert [a.outcome for a in attempts] == outcomes
    assert all(a.cause_text == "x" * 64 for a in attempts)  # cut to the column


def test_finish_refuses_an_unknown_outcome(store: DialerStore) -> None:
    store.add("1001", "x", T0)
    taken = claim_one(store)
    with pytest.raises(ValueError, match="hung_up"):
        store.finish(taken.attempt_id, "hung_up", T0, SETTINGS)
    assert store.finish(taken.attempt_id + 100, "answered", T0, SETTINGS) is None


def test_finishing_twice_counts_once(store: DialerStore) -> None:
    store.add("1001", "x", T0)
    taken = claim_one(store)
    once = store.finish(taken.attempt_id, "busy", T0 + minutes(1), SETTINGS)
    twice = store.finish(taken.attempt_id, "answered", T0 + minutes(2), SETTINGS)
    assert once == twice and once is not None and once.failed == 1 and not once.done
    [attempt] = store.attempts(taken.task.id)
    assert (attempt.outcome, attempt.ended_at) == ("busy", T0 + minutes(1))


# Leases that run out


def test_lost_attempt_is_recovered_and_dialed_again(store: DialerStore) -> None:
    task, _ = store.add("1001", "x", T0)
    first = claim_one(store, worker="dead")
    # One unanswered attempt before, so that "counts nothing" shows.
    store.finish(first.attempt_id, "no_answer", T0, SETTINGS)
    start = T0 + minutes(30)
    lost = claim_one(store, start, worker="dead")
    assert store.recover(start + LEASE) == 0  # lease_until itself: not expired yet
    assert store.in_progress(start + LEASE) == 1
    assert store.recover(start + LEASE + timedelta(seconds=1)) == 1
    assert store.recover(start + LEASE + minutes(1)) == 0  # nothing left to recover
    freed = store.get(task.id)
    assert freed is not None
    assert freed.lease_owner is None and freed.lease_until is None
    assert freed.attempt_started_at is None and not freed.done
    assert (freed.attempts, freed.unanswered, freed.failed) == (2, 1, 1)
    attempt = store.attempts(task.id)[-1]
    assert attempt.id == lost.attempt_id
    assert (attempt.outcome, attempt.ended_at) == ("lost", start + LEASE + timedelta(seconds=1))
    # Dialed again at once, without counting the lost attempt.
    again = claim_one(store, start + LEASE + minutes(1), worker="alive")
    assert again.task.attempts == 3
    done = store.finish(again.attempt_id, "no_answer", start + LEASE + minutes(2), SETTINGS)
    assert done is not None and (done.unanswered, done.failed) == (2, 2)
    assert [a.outcome for a in store.attempts(task.id)] == ["no_answer", "lost", "no_answer"]


def test_claim_takes_over_an_expired_lease(store: DialerStore) -> None:
    task, _ = store.add("1001", "x", T0)
    old = claim_one(store, worker="slow")
    later = T0 + LEASE + minutes(1)
    new = claim_one(store, later, worker="fast")
    assert new.task.id == task.id and new.task.attempts == 2
    assert new.task.lease_owner == "fast"
    first, second = store.attempts(task.id)
    assert (first.outcome, first.ended_at, first.worker) == ("lost", later, "slow")
    assert second.id == new.attempt_id and second.ended_at is None
    # The slow worker is not done with its call: its lease is gone, not extended.
    assert not store.extend(task.id, "slow", later + LEASE)
    assert store.extend(task.id, "fast", later + minutes(10))
    # Its late outcome closes its attempt for the record but leaves the task alone.
    late = store.finish(old.attempt_id, "answered", later + minutes(1), SETTINGS)
    assert late == store.get(task.id)
    assert late is not None and not late.done and late.lease_owner == "fast"
    assert late.lease_until == later + minutes(10)
    assert store.attempts(task.id)[0].outcome == "answered"
    finished = store.finish(new.attempt_id, "busy", later + minutes(2), SETTINGS)
    assert finished is not None and finished.failed == 1 and finished.lease_owner is None


def test_a_recovered_attempt_that_ends_after_all_counts(store: DialerStore) -> None:
    task, _ = store.add("1001", "x", T0)
    taken = claim_one(store, worker="slow")
    assert store.recover(T0 + LEASE + minutes(1)) == 1
    # Nobody took the task over: the worker's real outcome is the truth.
    done = store.finish(taken.attempt_id, "answered", T0 + LEASE + minutes(2), SETTINGS)
    assert done is not None and done.done and done.done_reason == "answered"
    [attempt] = store.attempts(task.id)
    assert attempt.outcome == "answered"


def test_extend(store: DialerStore) -> None:
    task, _ = store.add("1001", "x", T0)
    assert not store.extend(task.id, "w1", T0 + minutes(5))  # no lease at all
    taken = claim_one(store)
    assert store.extend(task.id, "w1", T0 + minutes(10))
    assert not store.extend(task.id, "w2", T0 + minutes(20))
    # Kept past the first lease: nobody takes it over, recover leaves it alone.
    assert claim(store, T0 + minutes(9), worker="w2") == []
    assert store.recover(T0 + minutes(9)) == 0
    assert store.in_progress(T0 + minutes(9)) == 1
    store.finish(taken.attempt_id, "answered", T0 + minutes(9), SETTINGS)
    assert not store.extend(task.id, "w1", T0 + minutes(20))


# Deleting and dialing now


def test_delete(store: DialerStore) -> None:
    task, _ = store.add("1001", "x", T0)
    other, _ = store.add("1002", "x", T0 + minutes(1))
    taken = claim_one(store)
    with pytest.raises(TaskBusy, match=f"dialer task {task.id}"):
        store.delete(task.id, T0 + minutes(1))
    assert store.get(task.id) is not None
    # Once the lease ran out, the worker is gone: the task may go.
    assert store.delete(task.id, T0 + LEASE + minutes(1))
    assert store.get(task.id) is None and store.attempts(task.id) == []
    assert not store.delete(task.id, T0)
    # A finished attempt does not hold the task.
    second = claim_one(store, T0 + minutes(1))
    store.finish(second.attempt_id, "busy", T0 + minutes(2), SETTINGS)
    assert len(store.attempts(other.id)) == 1
    assert store.delete(other.id, T0 + minutes(2))
    assert store.attempts(other.id) == [] and store.list() == []
    assert taken.task.id == task.id


def test_without_now_the_clock_decides(store: DialerStore) -> None:
    now = datetime.now(UTC)
    task, _ = store.add("1001", "x", now)
    claim_one(store, now)
    assert store.in_progress() == 1
    assert store.counts() == {"waiting": 0, "in_progress": 1, "done": 0}
    with pytest.raises(TaskBusy):
        store.delete(task.id)
    assert store.delete(task.id, now + LEASE + minutes(1))


def test_dial_now(store: DialerStore) -> None:
    waiting, _ = store.add("later", "x", T0, not_before=T0 + minutes(600), priority=3)
    store.add("older", "x", T0 - minutes(60))
    urgent = store.dial_now(waiting.id, T0)
    assert urgent is not None and urgent == store.get(waiting.id)
    assert urgent.priority == -1 and urgent.urgent and urgent.not_before is None
    # First in line, and dialed outside the window.
    assert numbers(claim(store, T0, in_window=False)) == ["later"]
    assert store.dial_now(waiting.id + 100, T0) is None


def test_dial_now_opens_a_done_task_again(store: DialerStore) -> None:
    settings = Dialer(max_unanswered=1)
    task, _ = store.add("1001", "x", T0)
    taken = claim_one(store)
    done = store.finish(taken.attempt_id, "no_answer", T0 + minutes(1), settings)
    assert done is not None and done.done and done.done_reason == "max_unanswered"
    again = store.dial_now(task.id, T0 + minutes(2))
    assert again is not None and not again.done and again.done_reason is None
    assert (again.attempts, again.unanswered, again.failed) == (1, 1, 1)  # counters kept
    retry = claim_one(store, T0 + minutes(2))
    # One more unanswered attempt closes it again.
    final = store.finish(retry.attempt_id, "no_answer", T0 + minutes(3), settings)
    assert final is not None and final.done and final.unanswered == 2
    assert final.priority == -1  # urgent until done, and after


# Concurrency


@pytest.mark.postgres
@pytest.mark.parametrize("workers", [2, 4])
def test_concurrent_workers_never_share_a_task(postgres_url: str, workers: int) -> None:
    _empty_postgres(postgres_url)
    with open_database(postgres_url) as database:
        database.migrate()
        specs = [TaskSpec(f"+7999{n:07}", f"text {n}") for n in range(200)]
        DialerStore(database).add_many(specs, T0)
    ready = threading.Barrier(workers)

    def work(worker: str) -> list[int]:
        mine: list[int] = []
        rng = random.Random(worker)
        with open_database(postgres_url) as own:
            store = DialerStore(own)
            ready.wait()
            while True:
                limit = rng.randint(1, 3)
                claims = store.claim(worker, T0, limit=limit, lease=LEASE, in_window=True)
                if not claims:
                    if store.counts(T0)["waiting"] == 0:
                        return mine
                    continue
                assert len(claims) <= limit
                for taken in claims:
                    assert taken.task.lease_owner == worker
                    mine.append(taken.task.id)
                    store.attempt_event(taken.attempt_id, answered_at=T0)
                    finished = store.finish(taken.attempt_id, "answered", T0, SETTINGS)
                    assert finished is not None and finished.done

    with ThreadPoolExecutor(workers) as pool:
        results = list(pool.map(work, [f"worker-{n}" for n in range(workers)]))
    claimed = [task_id for mine in results for task_id in mine]
    assert len(claimed) == len(set(claimed)) == 200
    assert sum(1 for mine in results if mine) >= 2  # they really worked side by side
    with open_database(postgres_url) as database:
        store = DialerStore(database)
        assert store.counts(T0) == {"waiting": 0, "in_progress": 0, "done": 200}
        tasks = store.list(limit=1000)
        assert all(t.attempts == 1 and t.done_reason == "answered" for t in tasks)
        assert all(len(store.attempts(t.id)) == 1 for t in tasks[:20])


@pytest.mark.postgres
def test_concurrent_claims_hold_disjoint_tasks(postgres_url: str) -> None:
    """Claims that are never finished: every task goes to exactly one of the workers."""
    _empty_postgres(postgres_url)
    with open_database(postgres_url) as database:
        database.migrate()
        DialerStore(database).add_many([TaskSpec(f"{n}", "x") for n in range(120)], T0)
    ready = threading.Barrier(4)

    def work(worker: str) -> list[int]:
        with open_database(postgres_url) as own:
            store = DialerStore(own)
            ready.wait()
            mine: list[int] = []
            while claims := store.claim(worker, T0, limit=3, lease=LEASE, in_window=True):
                mine.extend(c.task.id for c in claims)
            return mine

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(work, [f"w{n}" for n in range(4)]))
    claimed = [task_id for mine in results for task_id in mine]
    assert len(claimed) == len(set(claimed)) == 120


# A worker killed in the middle of an attempt

KILLED_WORKER = """
import sys, time
from datetime import UTC, datetime, timedelta
from ast_pbx.storage.db import open_database
from ast_pbx.storage.dialer import DialerStore

database = open_database(sys.argv[1])
claims = DialerStore(database).claim(
    "doomed", datetime.now(UTC), limit=1, lease=timedelta(seconds=2), in_window=True
)
print("claimed", claims[0].task.id, claims[0].attempt_id, flush=True)
time.sleep(60)
"""


def test_a_killed_worker_loses_its_attempt(database: Database, url: str) -> None:
    store = DialerStore(database)
    task, _ = store.add("+79990001122", "hello", datetime.now(UTC) - timedelta(seconds=1))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-c", KILLED_WORKER, url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=env,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().split()
        if not line:
            process.wait(10)
            pytest.fail(f"the worker died early: {process.stderr.read() if process.stderr else ''}")
        assert line[:2] == ["claimed", str(task.id)]
        attempt_id = int(line[2])
        os.kill(process.pid, signal.SIGKILL)
        process.wait(10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()
    assert process.returncode == -signal.SIGKILL
    held = store.get(task.id)
    assert held is not None and held.lease_owner == "doomed" and held.lease_until is not None
    assert held.attempt_started_at is not None
    # Still leased: nobody dials it while the dead worker's lease lasts.
    assert claim(store, held.attempt_started_at + timedelta(seconds=1), worker="survivor") == []
    time.sleep(max(0.0, (held.lease_until - datetime.now(UTC)).total_seconds()) + 0.1)
    [again] = claim(store, datetime.now(UTC), worker="survivor")
    assert again.task.id == task.id and again.task.attempts == 2
    assert again.task.lease_owner == "survivor"
    first, second = store.attempts(task.id)
    assert first.id == attempt_id and first.worker == "doomed"
    assert first.outcome == "lost" and first.ended_at is not None
    assert second.id == again.attempt_id and second.ended_at is None
    assert (again.task.unanswered, again.task.failed) == (0, 0)
