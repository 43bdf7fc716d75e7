"""Read-only queries behind the six reports of the manual (`ast_pbx.reports`).

Every function covers a period [start, end) of aware datetimes and returns frozen
dataclasses with times in UTC. The queries are plain SELECTs, the same on SQLite and
PostgreSQL; counting and grouping happen in Python, which is ample for the tens of
thousands of rows a month of a call center makes.

Which rows fall in the period: calls by `started_at`, queue waits by `entered_at`,
dialer attempts by `started_at`, callback requests by `requested_at`.

One write lives here too, because it belongs to the same maintenance pages: marking the
calls whose recording `astpbx files purge` deleted (`mark_recordings_purged`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo

import sqlalchemy as sa

from ast_pbx.errors import UsageError
from ast_pbx.storage.db import Database, open_database
from ast_pbx.storage.models import Call, Callback, DialerAttempt, DialerTask, QueueCall
from ast_pbx.storage.queues import ANSWERED, QueueCallRecord
from ast_pbx.storage.values import aware

# The queue outcomes of a caller nobody answered: hung up waiting, or sent away because
# no member was there (leave_when_empty). "moved" is not missed: a handler of the queue
# sent the caller on, on purpose.
MISSED_OUTCOMES = ("abandoned", "sent_away")
# `calls.outcome` of a call that reached a phone: "phone 1001".
PHONE_OUTCOME_PREFIX = "phone "
# `calls.outcome` of a call that ended without reaching a phone, queue or trunk.
HANGUP_OUTCOME = "hangup"


@dataclass(frozen=True)
class DayTraffic:
    """Report 1, one local day: calls received, and how they were handled."""

    day: date
    # Every call logged (the `calls` table).
    received: int = 0
    # Ended in the IVR: outcome "hangup" and never in a queue.
    ivr_only: int = 0
    # Answered in a queue, or put through to a phone ("phone N"); a call counts once.
    operators: int = 0
    # Calls the dialer placed (its attempts).
    dialer: int = 0


@dataclass(frozen=True)
class AnsweredTotals:
    """Report 2, one queue, operator and phone: the waits answered there."""

    queue: str
    operator: str | None
    member: str | None
    answered: int
    wait_seconds: float  # summed over the answered waits
    talk_seconds: float  # summed over the conversations that are over

    @property
    def mean_wait_seconds(self) -> float:
        return self.wait_seconds / self.answered if self.answered else 0.0


@dataclass(frozen=True)
class DialerRow:
    """Report 5, one attempt of the dialer with its task's text."""

    attempt_id: int
    task_id: int
    number: str
    text: str
    started_at: datetime
    answered_at: datetime | None
    ended_at: datetime | None
    outcome: str | None

    @property
    def talk(self) -> timedelta | None:
        """From the answer to the end; None unless answered and over."""
        if self.answered_at is None or self.ended_at is None:
            return None
        return self.ended_at - self.answered_at


@dataclass(frozen=True)
class CallbackTotals:
    """Report 6, one operator (None: requests nobody has called back yet)."""

    operator: str | None
    requested: int  # requests made in the period that this operator took
    called: int  # of them, called back (a call was placed)
    done: int  # of them, closed as done


def open_reporting(url: str) -> Database:
    """The database of `url` for reading, checked to be at this astpbx's schema.

    Reading commands do not migrate: upgrading the schema under a running engine is
    the engine's business (`astpbx run` migrates at start).
    """
    database = open_database(url)
    try:
        current, head = database.current_revision(), database.head_revision()
    except BaseException:
        database.dispose()
        raise
    if current != head:
        database.dispose()
        state = "has no astpbx tables" if current is None else f"is at schema {current}"
        raise UsageError(
            f"database {database.url} {state}, this astpbx expects {head}: "
            "start `astpbx run` once to create or migrate it"
        )
    return database


def traffic(database: Database, start: datetime, end: datetime, tz: tzinfo) -> list[DayTraffic]:
    """Report 1: every local day of the period (days without calls too), in order."""
    start, end = aware(start), aware(end)
    queued = sa.exists().where(QueueCall.call_id == Call.channel_id)
    calls = sa.select(Call.channel_id, Call.started_at, Call.outcome, queued.label("queued")).where(
        Call.started_at >= start, Call.started_at < end
    )
    answered = sa.select(QueueCall.call_id, QueueCall.entered_at).where(
        QueueCall.entered_at >= start, QueueCall.entered_at < end, QueueCall.outcome == ANSWERED
    )
    attempts = sa.select(DialerAttempt.started_at).where(
        DialerAttempt.started_at >= start, DialerAttempt.started_at < end
    )
    received: defaultdict[date, int] = defaultdict(int)
    ivr_only: defaultdict[date, int] = defaultdict(int)
    dialer: defaultdict[date, int] = defaultdict(int)
    # Channel id → the day it reached an operator: a call counts once even when it
    # reached a phone and a queue, or was answered in two queues.
    by_operators: dict[str, date] = {}
    with database.session() as session:
        for channel_id, started_at, outcome, in_queue in session.execute(calls):
            day = _day(started_at, tz)
            received[day] += 1
            if outcome == HANGUP_OUTCOME and not in_queue:
                ivr_only[day] += 1
            elif outcome and outcome.startswith(PHONE_OUTCOME_PREFIX):
                by_operators[channel_id] = day
        for call_id, entered_at in session.execute(answered):
            by_operators.setdefault(call_id, _day(entered_at, tz))
        for (started_at,) in session.execute(attempts):
            dialer[_day(started_at, tz)] += 1
    operators: defaultdict[date, int] = defaultdict(int)
    for day in by_operators.values():
        operators[day] += 1
    return [
        DayTraffic(day, received[day], ivr_only[day], operators[day], dialer[day])
        for day in local_days(start, end, tz)
    ]


def answered(
    database: Database, start: datetime, end: datetime, *, operator: str | None = None
) -> list[AnsweredTotals]:
    """Report 2: answered waits per queue, operator and phone, sorted so; `operator`
    keeps one login's."""
    query = sa.select(QueueCall).where(*_waits_in(start, end), QueueCall.outcome == ANSWERED)
    if operator:
        query = query.where(QueueCall.operator == operator)
    groups: defaultdict[tuple[str, str | None, str | None], list[QueueCallRecord]]
    groups = defaultdict(list)
    with database.session() as session:
        for row in session.scalars(query):
            groups[row.queue, row.operator, row.member].append(QueueCallRecord.of(row))
    return [
        AnsweredTotals(
            queue=queue,
            operator=login,
            member=member,
            answered=len(rows),
            wait_seconds=sum(_seconds(row.wait) for row in rows),
            talk_seconds=sum(_seconds(row.talk) for row in rows),
        )
        for (queue, login, member), rows in sorted(groups.items(), key=lambda g: _key(*g[0]))
    ]


def missed(database: Database, start: datetime, end: datetime) -> list[QueueCallRecord]:
    """Report 3: the waits nobody answered (`MISSED_OUTCOMES`), oldest first."""
    query = sa.select(QueueCall).where(
        *_waits_in(start, end), QueueCall.outcome.in_(MISSED_OUTCOMES)
    )
    return _waits(database, query)


def waits(
    database: Database, start: datetime, end: datetime, *, number: str | None = None
) -> list[QueueCallRecord]:
    """Report 4: every wait in a queue, oldest first; `number` is any part of the
    caller's number (LIKE wildcards in it are plain characters)."""
    query = sa.select(QueueCall).where(*_waits_in(start, end))
    if number:
        query = query.where(QueueCall.caller.contains(number, autoescape=True))
    return _waits(database, query)


def dialer(
    database: Database, start: datetime, end: datetime, *, number: str | None = None
) -> list[DialerRow]:
    """Report 5: the dialer's attempts, oldest first; `number` is any part of the
    number dialed."""
    query = (
        sa.select(DialerAttempt, DialerTask.text)
        .join(DialerTask, DialerAttempt.task_id == DialerTask.id)
        .where(DialerAttempt.started_at >= aware(start), DialerAttempt.started_at < aware(end))
        .order_by(DialerAttempt.started_at, DialerAttempt.id)
    )
    if number:
        query = query.where(DialerAttempt.number.contains(number, autoescape=True))
    with database.session() as session:
        return [
            DialerRow(
                attempt_id=attempt.id,
                task_id=attempt.task_id,
                number=attempt.number,
                text=text,
                started_at=attempt.started_at,
                answered_at=attempt.answered_at,
                ended_at=attempt.ended_at,
                outcome=attempt.outcome,
            )
            for attempt, text in session.execute(query)
        ]


def callbacks(database: Database, start: datetime, end: datetime) -> list[CallbackTotals]:
    """Report 6: callback requests of the period per operator, by login; the requests
    no operator took yet last."""
    query = sa.select(Callback.operator, Callback.called_at, Callback.done).where(
        Callback.requested_at >= aware(start), Callback.requested_at < aware(end)
    )
    counts: defaultdict[str | None, list[int]] = defaultdict(lambda: [0, 0, 0])
    with database.session() as session:
        for operator, called_at, done in session.execute(query):
            totals = counts[operator]
            totals[0] += 1
            totals[1] += called_at is not None
            totals[2] += bool(done)
    return [
        CallbackTotals(operator, *totals)
        for operator, totals in sorted(counts.items(), key=lambda item: _key(item[0]))
    ]


def local_days(start: datetime, end: datetime, tz: tzinfo) -> list[date]:
    """The local dates [start, end) touches, in order."""
    if end <= start:
        return []
    first, last = _day(start, tz), _day(end - timedelta(microseconds=1), tz)
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def _day(at: datetime, tz: tzinfo) -> date:
    return at.astimezone(tz).date()


def _waits_in(start: datetime, end: datetime) -> tuple[sa.ColumnElement[bool], ...]:
    return QueueCall.entered_at >= aware(start), QueueCall.entered_at < aware(end)


def _waits(database: Database, query: sa.Select[QueueCall]) -> list[QueueCallRecord]:
    query = query.order_by(QueueCall.entered_at, QueueCall.id)
    with database.session() as session:
        return [QueueCallRecord.of(row) for row in session.scalars(query)]


def _seconds(span: timedelta | None) -> float:
    return 0.0 if span is None else span.total_seconds()


def _key(*values: str | None) -> tuple[tuple[bool, str], ...]:
    """Sort key putting None after every text."""
    return tuple((value is None, value or "") for value in values)


def mark_recordings_purged(
    database: Database, recordings: Sequence[str], at: datetime
) -> dict[str, list[int]]:
    """Set `recording_purged_at` on the calls whose `recording` is one of `recordings`
    and not purged yet, in one transaction; their ids by recording."""
    marked: defaultdict[str, list[int]] = defaultdict(list)
    if not recordings:
        return {}
    query = sa.select(Call.id, Call.recording).where(
        Call.recording.in_(sorted(set(recordings))), Call.recording_purged_at.is_(None)
    )
    with database.session() as session:
        for call_id, recording in session.execute(query.with_for_update()):
            marked[str(recording)].append(call_id)
        ids = [i for found in marked.values() for i in found]
        if ids:
            update = sa.update(Call).where(Call.id.in_(ids)).values(recording_purged_at=aware(at))
            session.execute(update)
    return dict(marked)


def unmark_recordings(database: Database, call_ids: Sequence[int]) -> None:
    """Clear `recording_purged_at` again: the file could not be deleted after all."""
    if call_ids:
        update = sa.update(Call).where(Call.id.in_(call_ids)).values(recording_purged_at=None)
        with database.session() as session:
            session.execute(update)
