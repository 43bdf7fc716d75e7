"""Autodialer tasks and their attempts: the queue the dialer works through.

The API adds tasks (`add`, `add_many`: idempotent by `external_id`); engines `claim` due
tasks under a lease, note what happens on the line (`attempt_event`), keep the lease
while a call goes on (`extend`) and `finish` the attempt, which applies
`core.dialing.after_attempt` to the task.

Leases: a claimed task carries `lease_owner` and `lease_until`. A task is never given to
two workers whose leases overlap: on PostgreSQL candidates are picked with
`SELECT … FOR UPDATE SKIP LOCKED`, and on every backend a task is taken by an UPDATE that
only matches while its lease is free (SQLite has one writer at a time, so there the
conditional UPDATE alone decides). A worker that dies leaves a lease that runs out:
the next `claim` takes the task over, or `recover` frees it, and the open attempt is
closed as "lost", which counts against nothing.

Priorities: lower first, then the oldest; a negative priority is urgent ("dial now"):
first in line and dialed even outside the dialing window (`claim(in_window=False)`).

Sync and short, like `calls.CallLog`: each method is one transaction, safe to call from
threads (the store keeps no state of its own). Callers get frozen dataclasses. Times
must be timezone-aware; they come back in UTC.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from ast_pbx.config.model import Dialer
from ast_pbx.core.dialing import OUTCOMES, Outcome, after_attempt
from ast_pbx.errors import AstPbxError
from ast_pbx.storage.db import Database, StorageError
from ast_pbx.storage.models import DialerAttempt, DialerTask
from ast_pbx.storage.values import Fit, aware

# The priority `dial_now` gives: below every normal one, and dialed outside the window.
URGENT = -1
# `add_many` runs again when a concurrent transaction inserted one of its external ids
# first; the second run finds the task. More races than this in a row is something else.
_ATTEMPTS = 5
# Rows re-read per statement after a bulk insert (far below any backend's parameter limit).
_CHUNK = 1000


class TaskBusy(AstPbxError):
    """The task is being dialed now (its lease is held): it cannot be deleted."""


@dataclass(frozen=True)
class TaskSpec:
    """A task to add; see `DialerStore.add` for the fields."""

    number: str
    text: str
    not_before: datetime | None = None
    priority: int = 0
    repeat: int = 1
    external_id: str | None = None


@dataclass(frozen=True)
class TaskRecord:
    """A task as stored; see `models.DialerTask` for what each field means."""

    id: int
    external_id: str | None
    number: str
    text: str
    repeat: int
    enqueued_at: datetime
    not_before: datetime | None
    priority: int
    done: bool
    done_reason: str | None
    attempts: int
    unanswered: int
    failed: int
    attempt_started_at: datetime | None
    lease_owner: str | None
    lease_until: datetime | None

    @property
    def urgent(self) -> bool:
        """Dialed first, and even outside the dialing window."""
        return self.priority < 0

    @classmethod
    def of(cls, row: Row[Any]) -> TaskRecord:
        return cls(**row._mapping)


@dataclass(frozen=True)
class AttemptRecord:
    """An attempt as stored; see `models.DialerAttempt` for what each field means."""

    id: int
    task_id: int
    number: str
    channel_id: str | None
    worker: str | None
    started_at: datetime
    ringing_at: datetime | None
    answered_at: datetime | None
    ended_at: datetime | None
    outcome: str | None
    cause: int | None
    cause_text: str | None

    @classmethod
    def of(cls, row: Row[Any]) -> AttemptRecord:
        return cls(**row._mapping)


@dataclass(frozen=True)
class Claim:
    """A task a worker now holds (as it is after the claim) and the attempt to place."""

    task: TaskRecord
    attempt_id: int


class DialerStore:
    """Repository of the `dialer_tasks` and `dialer_attempts` tables over a `Database`."""

    def __init__(self, database: Database) -> None:
        self._database = database

    # Adding

    def add(
        self,
        number: str,
        text: str,
        now: datetime,
        *,
        not_before: datetime | None = None,
        priority: int = 0,
        repeat: int = 1,
        external_id: str | None = None,
    ) -> tuple[TaskRecord, bool]:
        """Queue a notification: `text` spoken `repeat` times to `number`, not before
        `not_before`; lower `priority` first (negative: urgent, see the module).

        Returns the task and True; or, when a task with this `external_id` exists (a
        re-submit, even one racing this call), that task as it is and False. Raises
        ValueError for a bad value (empty number or text, a number longer than 64
        characters: never cut, that would dial someone else).
        """
        spec = TaskSpec(number, text, not_before, priority, repeat, external_id)
        [result] = self.add_many([spec], now)
        return result

    def add_many(self, specs: Sequence[TaskSpec], now: datetime) -> list[tuple[TaskRecord, bool]]:
        """`add` for a batch, in one transaction: all are written or none is.

        Every item is checked before anything is written (ValueError names the item).
        An external id repeated within the batch is a re-submit, as across calls: the
        first item creates the task, the later ones get it with False.
        """
        now = aware(now)
        rows = [_task_values(spec, now, index) for index, spec in enumerate(specs)]
        if not rows:
            return []
        for attempt in range(_ATTEMPTS):
            try:
                return self._add_many(rows)
            except StorageError as error:
                # Only a concurrent insert of one of our external ids is worth a new run.
                raced = isinstance(error.__cause__, sa.exc.IntegrityError) and self._exists(
                    [row["external_id"] for row in rows]
                )
                if not raced or attempt == _ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _add_many(self, rows: list[dict[str, Any]]) -> list[tuple[TaskRecord, bool]]:
        keys = list({row["external_id"] for row in rows} - {None})
        with self._database.session() as session:
            connection = session.connection()
            existing: dict[str, int] = {}  # external id → task id
            for chunk in _chunks(keys):
                query = sa.select(DialerTask.external_id, DialerTask.id).where(
                    DialerTask.external_id.in_(chunk)
                )
                existing.update(
                    {key: task_id for key, task_id in connection.execute(query) if key is not None}
                )
            # Per item: its place among the rows to insert (None: a re-submit), its key.
            plan: list[tuple[int | None, str | None]] = []
            fresh: list[dict[str, Any]] = []
            batch_keys: set[str] = set()
            for row in rows:
                key = row["external_id"]
                if key is not None and (key in existing or key in batch_keys):
                    plan.append((None, key))
                    continue
                plan.append((len(fresh), key))
                fresh.append(row)
                if key is not None:
                    batch_keys.add(key)
            inserted: list[int] = []
            if fresh:
                insert = sa.insert(DialerTask).returning(
                    DialerTask.id, sort_by_parameter_order=True
                )
                inserted = list(connection.scalars(insert, fresh))
            for place, key in plan:
                if place is not None and key is not None:
                    existing[key] = inserted[place]
            tasks = _tasks_by_id(connection, [*inserted, *existing.values()])
        results: list[tuple[TaskRecord, bool]] = []
        for place, key in plan:
            if place is not None:
                results.append((tasks[inserted[place]], True))
            else:
                assert key is not None  # only a known external id makes a re-submit
                results.append((tasks[existing[key]], False))
        return results

    def _exists(self, keys: Sequence[str | None]) -> bool:
        wanted = list({key for key in keys if key is not None})
        if not wanted:
            return False
        with self._database.session() as session:
            connection = session.connection()
            for chunk in _chunks(wanted):
                query = sa.select(DialerTask.id).where(DialerTask.external_id.in_(chunk))
                if connection.execute(query.limit(1)).first() is not None:
                    return True
        return False

    # Reading

    def get(self, task_id: int) -> TaskRecord | None:
        """The task, or None."""
        with self._database.session() as session:
            row = session.connection().execute(_task(task_id)).one_or_none()
        return None if row is None else TaskRecord.of(row)

    def attempts(self, task_id: int) -> list[AttemptRecord]:
        """The task's attempts, oldest first."""
        query = (
            sa.select(DialerAttempt)
            .where(DialerAttempt.task_id == task_id)
            .order_by(DialerAttempt.started_at, DialerAttempt.id)
        )
        with self._database.session() as session:
            return [AttemptRecord.of(row) for row in session.connection().execute(query)]

    def in_progress(self, now: datetime | None = None) -> int:
        """Tasks being dialed: their lease is held and not expired at `now` (default:
        the current time)."""
        query = sa.select(sa.func.count()).where(_leased(_now(now)))
        with self._database.session() as session:
            return int(session.connection().scalar(query) or 0)

    def counts(self, now: datetime | None = None) -> dict[str, int]:
        """{"waiting": not done and not being dialed (due or not yet), "in_progress",
        "done"}, at `now` (default: the current time)."""
        leased = _leased(_now(now))
        query = sa.select(
            sa.func.count().filter(DialerTask.done.is_(False), sa.not_(leased)),
            sa.func.count().filter(DialerTask.done.is_(False), leased),
            sa.func.count().filter(DialerTask.done.is_(True)),
        ).select_from(DialerTask)
        with self._database.session() as session:
            waiting, in_progress, done = session.connection().execute(query).one()
        return {"waiting": int(waiting), "in_progress": int(in_progress), "done": int(done)}

    # Changing a task

    def delete(self, task_id: int, now: datetime | None = None) -> bool:
        """Remove the task and its attempts. False if there is no such task; TaskBusy
        while it is being dialed (its lease not expired at `now`, default: the current
        time)."""
        now = _now(now)
        delete = sa.delete(DialerTask).where(DialerTask.id == task_id, sa.not_(_leased(now)))
        with self._database.session() as session:
            connection = session.connection()
            if connection.execute(delete).rowcount:
                return True
            exists = connection.scalar(sa.select(DialerTask.id).where(DialerTask.id == task_id))
        if exists is None:
            return False
        raise TaskBusy(f"dialer task {task_id} is being dialed now; try again when it ends")

    def dial_now(self, task_id: int, now: datetime) -> TaskRecord | None:
        """Make the task urgent: priority `URGENT` (first in line, dialed even outside
        the window), no `not_before`. A done task is opened again for one more try: done
        and done_reason cleared, counters kept (so one more unanswered or failed attempt
        may close it again). An attempt going on is left alone; the urgency stays until
        the task is done. None if there is no such task.

        `now` is only checked: the task becomes due at once, whatever the time.
        """
        aware(now)
        update = (
            sa.update(DialerTask)
            .where(DialerTask.id == task_id)
            .values(priority=URGENT, not_before=None, done=False, done_reason=None)
        )
        with self._database.session() as session:
            connection = session.connection()
            if not connection.execute(update).rowcount:
                return None
            return TaskRecord.of(connection.execute(_task(task_id)).one())

    # Working through the queue

    def claim(
        self, worker: str, now: datetime, *, limit: int, lease: timedelta, in_window: bool
    ) -> list[Claim]:
        """Take up to `limit` due tasks for `worker` until `now + lease`, each with a new
        attempt row; the claims in queue order.

        Due: not done, `not_before` passed, and no lease or an expired one (the attempt
        it covered is closed as "lost"). Outside the dialing window (`in_window` False)
        only urgent tasks. Order: priority, then the oldest, then the id. Fewer than
        `limit` when fewer are due or another worker took some first.
        """
        now = aware(now)
        worker = _worker(worker)
        if lease <= timedelta(0):
            raise ValueError(f"dialer lease must be positive, not {lease}")
        if limit <= 0:
            return []
        due = [
            DialerTask.done.is_(False),
            sa.or_(DialerTask.not_before.is_(None), DialerTask.not_before <= now),
            sa.not_(_leased(now)),
        ]
        if not in_window:
            due.append(DialerTask.priority < 0)
        candidates = (
            sa.select(DialerTask.id)
            .where(*due)
            .order_by(DialerTask.priority, DialerTask.enqueued_at, DialerTask.id)
            .limit(limit)
            # PostgreSQL: rows another worker is claiming are skipped, not waited for.
            # SQLite ignores it; the conditional UPDATE below decides there.
            .with_for_update(skip_locked=True)
        )
        take = sa.update(DialerTask).values(
            lease_owner=worker,
            lease_until=now + lease,
            attempts=DialerTask.attempts + 1,
            attempt_started_at=now,
        )
        claims: list[Claim] = []
        with self._database.session() as session:
            connection = session.connection()
            for task_id in connection.scalars(candidates).all():
                if not connection.execute(take.where(DialerTask.id == task_id, *due)).rowcount:
                    continue  # taken, finished or changed since the candidates were read
                # The task is ours: an attempt still open belongs to a lease that ran out.
                _close_lost(connection, task_id, now)
                task = TaskRecord.of(connection.execute(_task(task_id)).one())
                insert = sa.insert(DialerAttempt).values(
                    task_id=task_id, number=task.number, worker=worker, started_at=now
                )
                attempt_id = connection.execute(insert).inserted_primary_key
                assert attempt_id is not None
                claims.append(Claim(task, int(attempt_id[0])))
        return claims

    def extend(self, task_id: int, worker: str, until: datetime) -> bool:
        """Keep `worker`'s lease on the task until `until` while its call goes on. False
        if the lease is no longer `worker`'s (taken over, recovered or finished).

        A lease that ran out but that nobody took over yet is still `worker`'s: workers
        need names unique per process (the engine uses host and pid).
        """
        update = (
            sa.update(DialerTask)
            .where(
                DialerTask.id == task_id,
                DialerTask.lease_owner == _worker(worker),
                DialerTask.lease_until.is_not(None),
            )
            .values(lease_until=aware(until))
        )
        with self._database.session() as session:
            return bool(session.connection().execute(update).rowcount)

    def attempt_event(
        self,
        attempt_id: int,
        *,
        channel_id: str | None = None,
        ringing_at: datetime | None = None,
        answered_at: datetime | None = None,
    ) -> None:
        """Note the attempt's channel, first ringing, answer: only what is given, and a
        value already there stays. An unknown attempt is ignored (its task was deleted)."""
        given = {
            DialerAttempt.channel_id: _fit("channel_id", channel_id),
            DialerAttempt.ringing_at: None if ringing_at is None else aware(ringing_at),
            DialerAttempt.answered_at: None if answered_at is None else aware(answered_at),
        }
        values = {
            # The value typed as its column, so that UtcDateTime stores it in UTC.
            column.key: sa.func.coalesce(column, sa.literal(value, column.type))
            for column, value in given.items()
            if value is not None
        }
        if not values:
            return
        update = sa.update(DialerAttempt).where(DialerAttempt.id == attempt_id).values(**values)
        with self._database.session() as session:
            session.connection().execute(update)

    def finish(
        self,
        attempt_id: int,
        outcome: str,
        now: datetime,
        settings: Dialer,
        *,
        cause: int | None = None,
        cause_text: str | None = None,
    ) -> TaskRecord | None:
        """Close the attempt (`now`, `outcome`, the hangup cause) and, in the same
        transaction, apply `core.dialing.after_attempt` to its task and free the lease;
        the task as it is then.

        The task is left untouched (and returned as it is) when another worker took it
        over since (its lease ran out and a newer attempt exists), or when this attempt
        was already finished. An attempt closed as "lost" by `recover` that nobody took
        over since is finished for real: the worker knows better how it ended. None if
        the attempt is unknown (its task was deleted).
        """
        if outcome not in OUTCOMES:
            raise ValueError(f"dialer outcome {outcome!r}: expected one of {sorted(OUTCOMES)}")
        checked = cast(Outcome, outcome)
        now = aware(now)
        close = (
            sa.update(DialerAttempt)
            .where(
                DialerAttempt.id == attempt_id,
                sa.or_(DialerAttempt.ended_at.is_(None), DialerAttempt.outcome == "lost"),
            )
            .values(
                ended_at=now,
                outcome=outcome,
                cause=cause,
                cause_text=_fit("cause_text", cause_text),
            )
        )
        with self._database.session() as session:
            connection = session.connection()
            task_id = connection.scalar(
                sa.select(DialerAttempt.task_id).where(DialerAttempt.id == attempt_id)
            )
            if task_id is None:
                return None
            # Lock order task, then attempts, as in `claim`: no deadlock on PostgreSQL.
            locked = connection.execute(_task(task_id).with_for_update()).one_or_none()
            if locked is None:
                return None
            closed = connection.execute(close).rowcount
            task = TaskRecord.of(connection.execute(_task(task_id)).one())
            newest = connection.scalar(
                sa.select(sa.func.max(DialerAttempt.id)).where(DialerAttempt.task_id == task_id)
            )
            if not closed or newest != attempt_id or task.done:
                return task
            change = after_attempt(task.unanswered, task.failed, checked, settings, now)
            connection.execute(
                sa.update(DialerTask)
                .where(DialerTask.id == task_id)
                .values(
                    unanswered=change.unanswered,
                    failed=change.failed,
                    done=change.done,
                    done_reason=change.done_reason,
                    not_before=change.not_before,
                    lease_owner=None,
                    lease_until=None,
                    attempt_started_at=None,
                )
            )
            return TaskRecord.of(connection.execute(_task(task_id)).one())

    def open_attempts(self) -> list[AttemptRecord]:
        """Attempts not finished: a starting engine adopts the calls still up and closes
        the ones that ended while no engine ran."""
        query = sa.select(DialerAttempt).where(DialerAttempt.ended_at.is_(None))
        with self._database.session() as session:
            return [AttemptRecord.of(r) for r in session.connection().execute(query)]

    def take_over(self, attempt_id: int, worker: str, until: datetime) -> TaskRecord | None:
        """`worker` carries on attempt `attempt_id` (its call is still up) under a lease of
        its own until `until`; the task, or None when the attempt is no longer its task's
        newest or the task is done or gone."""
        with self._database.session() as session:
            connection = session.connection()
            task_id = connection.scalar(
                sa.select(DialerAttempt.task_id).where(DialerAttempt.id == attempt_id)
            )
            newest = connection.scalar(
                sa.select(sa.func.max(DialerAttempt.id)).where(DialerAttempt.task_id == task_id)
            )
            if task_id is None or newest != attempt_id:
                return None
            taken = connection.execute(
                sa.update(DialerTask)
                .where(DialerTask.id == task_id, DialerTask.done.is_(False))
                .values(lease_owner=_worker(worker), lease_until=aware(until))
            ).rowcount
            if not taken:
                return None
            return TaskRecord.of(connection.execute(_task(task_id)).one())

    def recover(self, now: datetime) -> int:
        """Free the tasks whose lease ran out before `now` (their worker died): the open
        attempts are closed as "lost" at `now`, the counters stay, the lease is cleared
        so the task is claimed again. How many attempts were closed.

        `claim` does the same for each task it takes over; this is for a start-up or a
        page that should not show dead attempts as going on.
        """
        now = aware(now)
        expired = DialerTask.lease_until < now
        candidates = sa.select(DialerTask.id).where(expired).with_for_update(skip_locked=True)
        free = sa.update(DialerTask).values(
            lease_owner=None, lease_until=None, attempt_started_at=None
        )
        lost = 0
        with self._database.session() as session:
            connection = session.connection()
            for task_id in connection.scalars(candidates).all():
                # Again under the write lock: someone may have taken or finished it.
                if connection.execute(free.where(DialerTask.id == task_id, expired)).rowcount:
                    lost += _close_lost(connection, task_id, now)
        return lost

    def list(
        self,
        *,
        done: bool | None = None,
        number: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[TaskRecord]:
        """Tasks newest first (by `enqueued_at`, then id), `offset` skipped, at most `limit`.

        `done` keeps the done (True) or the open (False) ones; `number` matches any part
        of the number, LIKE wildcards as plain characters; `start`/`end` bound
        `enqueued_at` to [start, end).
        """
        query = sa.select(DialerTask)
        if done is not None:
            query = query.where(DialerTask.done.is_(done))
        if number:
            query = query.where(DialerTask.number.contains(number, autoescape=True))
        if start is not None:
            query = query.where(DialerTask.enqueued_at >= aware(start))
        if end is not None:
            query = query.where(DialerTask.enqueued_at < aware(end))
        query = (
            query.order_by(DialerTask.enqueued_at.desc(), DialerTask.id.desc())
            .limit(limit)
            .offset(offset)
        )
        with self._database.session() as session:
            return [TaskRecord.of(row) for row in session.connection().execute(query)]


def _task(task_id: int) -> sa.Select[Any]:
    return sa.select(DialerTask).where(DialerTask.id == task_id)


def _tasks_by_id(connection: Connection, ids: Sequence[int]) -> dict[int, TaskRecord]:
    tasks: dict[int, TaskRecord] = {}
    for chunk in _chunks(list(dict.fromkeys(ids))):
        query = sa.select(DialerTask).where(DialerTask.id.in_(chunk))
        tasks.update({row.id: TaskRecord.of(row) for row in connection.execute(query)})
    return tasks


def _leased(now: datetime) -> sa.ColumnElement[bool]:
    """A lease is held and not expired at `now` (it expires once `lease_until < now`)."""
    return sa.and_(DialerTask.lease_until.is_not(None), DialerTask.lease_until >= now)


def _close_lost(connection: Connection, task_id: int, now: datetime) -> int:
    """Close the task's open attempts as "lost"; how many. The caller holds the task."""
    update = (
        sa.update(DialerAttempt)
        .where(DialerAttempt.task_id == task_id, DialerAttempt.ended_at.is_(None))
        .values(outcome="lost", ended_at=now)
    )
    return connection.execute(update).rowcount


def _task_values(spec: TaskSpec, now: datetime, index: int) -> dict[str, Any]:
    """The row of a new task, checked; ValueError names the item of the batch."""
    try:
        return {
            "external_id": _external_id(spec.external_id),
            "number": _number(spec.number),
            "text": _text(spec.text),
            "repeat": _repeat(spec.repeat),
            "enqueued_at": now,
            "not_before": None if spec.not_before is None else aware(spec.not_before),
            "priority": _integer("priority", spec.priority),
        }
    except ValueError as error:
        raise ValueError(f"dialer task {index + 1}: {error}") from None


def _number(number: object) -> str:
    if not isinstance(number, str) or not number.strip():
        raise ValueError(f"number must be a non-empty string, not {number!r}")
    if len(number) > _LENGTHS["number"]:
        raise ValueError(f"number longer than {_LENGTHS['number']} characters: {number!r}")
    return number


def _text(text: object) -> str:
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"text must be a non-empty string, not {text!r}")
    return text


def _repeat(repeat: object) -> int:
    value = _integer("repeat", repeat)
    if value < 1:
        raise ValueError(f"repeat must be at least 1, not {value}")
    return value


def _integer(name: str, value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{name} must be an integer, not {value!r}")
    return value


def _external_id(key: object) -> str | None:
    # An identity, like a login: cutting it could merge two tasks.
    if key is None:
        return None
    if not isinstance(key, str) or not key or len(key) > _LENGTHS["external_id"]:
        limit = _LENGTHS["external_id"]
        raise ValueError(f"external_id must be 1 to {limit} characters, not {key!r}")
    return key


def _worker(worker: str) -> str:
    if not worker or len(worker) > _LENGTHS["lease_owner"]:
        limit = _LENGTHS["lease_owner"]
        raise ValueError(f"dialer worker name must be 1 to {limit} characters: {worker!r}")
    return worker


def _now(now: datetime | None) -> datetime:
    return datetime.now(UTC) if now is None else aware(now)


def _chunks(items: list[Any]) -> list[list[Any]]:
    return [items[start : start + _CHUNK] for start in range(0, len(items), _CHUNK)]


_LENGTHS = Fit(DialerTask.__table__).lengths
_fit = Fit(DialerAttempt.__table__)
