"""Queue statistics: one row per wait of a caller in a queue, written by the engine,
read by the reports page and by the "sticky" queue option.

Sync and short, like `calls.CallLog`: each method is one transaction, so the asyncio
engine can call it through `asyncio.to_thread`. Callers get frozen dataclasses, never
ORM objects. Times must be timezone-aware; they come back in UTC.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from statistics import fmean
from typing import Any

import sqlalchemy as sa

from ast_pbx.storage.db import Database
from ast_pbx.storage.models import QueueCall
from ast_pbx.storage.values import Fit, aware

ANSWERED = "answered"
# The ways to leave a queue other than being answered, as `left()` takes them.
LEFT_OUTCOMES = frozenset({"abandoned", "moved", "sent_away"})


@dataclass(frozen=True)
class QueueCallRecord:
    """A wait in a queue as logged; see `models.QueueCall` for what each field means."""

    id: int
    call_id: str
    queue: str
    caller: str | None
    entered_at: datetime
    answered_at: datetime | None
    member: str | None
    operator: str | None
    left_at: datetime | None
    outcome: str | None
    talk_ended_at: datetime | None

    @property
    def wait(self) -> timedelta | None:
        """From entering to being answered or leaving; None while still waiting."""
        stopped = self.answered_at or self.left_at
        return None if stopped is None else stopped - self.entered_at

    @property
    def talk(self) -> timedelta | None:
        """The conversation with the member; None if unanswered or not over."""
        if self.answered_at is None or self.talk_ended_at is None:
            return None
        return self.talk_ended_at - self.answered_at

    @classmethod
    def of(cls, row: QueueCall) -> QueueCallRecord:
        return cls(
            id=row.id,
            call_id=row.call_id,
            queue=row.queue,
            caller=row.caller,
            entered_at=row.entered_at,
            answered_at=row.answered_at,
            member=row.member,
            operator=row.operator,
            left_at=row.left_at,
            outcome=row.outcome,
            talk_ended_at=row.talk_ended_at,
        )


@dataclass(frozen=True)
class QueueTotals:
    """The figures of one queue over a period (waits that began in it)."""

    queue: str
    entered: int
    answered: int
    abandoned: int
    moved: int
    sent_away: int
    # Over every finished wait, answered or not; None when no wait is over yet.
    mean_wait_seconds: float | None
    max_wait_seconds: float | None
    # The conversations that are over.
    talk_seconds: float

    @property
    def waiting(self) -> int:
        """Callers still in the queue (or whose leaving was never logged)."""
        return self.entered - self.answered - self.abandoned - self.moved - self.sent_away


@dataclass(frozen=True)
class MemberTotals:
    """The figures of one member (a phone) in one queue over a period."""

    queue: str
    member: str
    answered: int
    mean_wait_seconds: float
    talk_seconds: float


@dataclass(frozen=True)
class QueueSummary:
    """Queue report of a period: per queue, and per queue and member; sorted by number."""

    queues: tuple[QueueTotals, ...]
    members: tuple[MemberTotals, ...]


class QueueStats:
    """Repository of the `queue_calls` table over a `Database`."""

    def __init__(self, database: Database) -> None:
        self._database = database

    def entered(self, call_id: str, queue: str, caller: str | None, at: datetime) -> None:
        """Log a caller starting to wait in a queue."""
        insert = sa.insert(QueueCall).values(
            call_id=_fit("call_id", call_id),
            queue=_fit("queue", queue),
            caller=_fit("caller", caller),
            entered_at=_aware(at),
        )
        with self._database.session() as session:
            session.execute(insert)

    def answered(
        self, call_id: str, member: str, at: datetime, operator: str | None = None
    ) -> bool:
        """A member answered the caller's current wait. False if the call has none."""
        at = _aware(at)
        return self._update_latest(
            call_id,
            [QueueCall.left_at.is_(None)],
            answered_at=at,
            left_at=at,
            member=_fit("member", member),
            operator=_fit("operator", operator),
            outcome=ANSWERED,
        )

    def left(self, call_id: str, outcome: str, at: datetime) -> bool:
        """The caller stopped waiting unanswered; `outcome` is one of `LEFT_OUTCOMES`.

        False if the call has no current wait (unknown, or already answered or left).
        """
        if outcome not in LEFT_OUTCOMES:
            raise ValueError(f"queue outcome {outcome!r}: expected one of {sorted(LEFT_OUTCOMES)}")
        return self._update_latest(
            call_id, [QueueCall.left_at.is_(None)], left_at=_aware(at), outcome=outcome
        )

    def talk_ended(self, call_id: str, at: datetime) -> bool:
        """The conversation after the latest answer ended. False if there is none open."""
        return self._update_latest(
            call_id,
            [QueueCall.outcome == ANSWERED, QueueCall.talk_ended_at.is_(None)],
            talk_ended_at=_aware(at),
        )

    def operators_since(self, since: datetime) -> dict[str, str]:
        """Caller → the member who last answered them at or after `since`.

        The "sticky" option sends a caller back to the member they spoke to; the engine
        loads today's pairs at start and keeps them up to date itself.
        """
        query = (
            sa.select(QueueCall.caller, QueueCall.member)
            .where(
                QueueCall.answered_at >= _aware(since),
                QueueCall.caller.is_not(None),
                QueueCall.member.is_not(None),
            )
            # Ascending, so the latest answer of a caller is the one the dict keeps.
            .order_by(QueueCall.answered_at, QueueCall.id)
        )
        with self._database.session() as session:
            pairs = session.execute(query).all()
        # The query already leaves out rows without both; the test tells the type checker.
        return {
            caller: member for caller, member in pairs if caller is not None and member is not None
        }

    def summary(self, start: datetime, end: datetime) -> QueueSummary:
        """The figures of the waits that began in [start, end).

        Aggregated in Python: subtracting timestamps differs between SQLite (text) and
        PostgreSQL, and a period's rows are few enough to fetch.
        """
        query = sa.select(QueueCall).where(*_in_period(start, end))
        with self._database.session() as session:
            records = [QueueCallRecord.of(row) for row in session.scalars(query)]
        return _summarize(records)

    def rows(
        self,
        start: datetime,
        end: datetime,
        number_fragment: str | None = None,
        *,
        limit: int = 1000,
    ) -> list[QueueCallRecord]:
        """Waits that began in [start, end), newest first, at most `limit`.

        `number_fragment` matches any part of the caller's number, LIKE wildcards
        included as plain characters.
        """
        query = sa.select(QueueCall).where(*_in_period(start, end))
        if number_fragment:
            query = query.where(QueueCall.caller.contains(number_fragment, autoescape=True))
        query = query.order_by(QueueCall.entered_at.desc(), QueueCall.id.desc()).limit(limit)
        with self._database.session() as session:
            return [QueueCallRecord.of(row) for row in session.scalars(query)]

    def _update_latest(
        self, call_id: str, conditions: Sequence[sa.ColumnElement[bool]], **values: Any
    ) -> bool:
        """Set `values` on the call's newest row meeting `conditions`; False if none does.

        The newest: a caller moved from queue to queue has a row per queue, and only
        the last wait can still be going on.
        """
        latest = (
            sa.select(QueueCall.id)
            .where(QueueCall.call_id == _fit("call_id", call_id), *conditions)
            .order_by(QueueCall.entered_at.desc(), QueueCall.id.desc())
            .limit(1)
            # PostgreSQL: a row lock, so two events of one wait cannot both close it.
            .with_for_update()
        )
        with self._database.session() as session:
            row_id = session.scalar(latest)
            if row_id is None:
                return False
            session.execute(sa.update(QueueCall).where(QueueCall.id == row_id).values(**values))
            return True


def _in_period(start: datetime, end: datetime) -> tuple[sa.ColumnElement[bool], ...]:
    """Waits that began in [start, end)."""
    return QueueCall.entered_at >= _aware(start), QueueCall.entered_at < _aware(end)


def _summarize(records: Iterable[QueueCallRecord]) -> QueueSummary:
    by_queue: defaultdict[str, list[QueueCallRecord]] = defaultdict(list)
    by_member: defaultdict[tuple[str, str], list[QueueCallRecord]] = defaultdict(list)
    for record in records:
        by_queue[record.queue].append(record)
        if record.outcome == ANSWERED and record.member is not None:
            by_member[record.queue, record.member].append(record)
    return QueueSummary(
        queues=tuple(_queue_totals(queue, rows) for queue, rows in sorted(by_queue.items())),
        members=tuple(
            _member_totals(queue, member, rows)
            for (queue, member), rows in sorted(by_member.items())
        ),
    )


def _queue_totals(queue: str, rows: list[QueueCallRecord]) -> QueueTotals:
    outcomes = Counter(row.outcome for row in rows)
    waits = _wait_seconds(rows)
    return QueueTotals(
        queue=queue,
        entered=len(rows),
        answered=outcomes[ANSWERED],
        abandoned=outcomes["abandoned"],
        moved=outcomes["moved"],
        sent_away=outcomes["sent_away"],
        mean_wait_seconds=fmean(waits) if waits else None,
        max_wait_seconds=max(waits, default=None),
        talk_seconds=_talk_seconds(rows),
    )


def _member_totals(queue: str, member: str, rows: list[QueueCallRecord]) -> MemberTotals:
    # Answered rows only, so every one has a wait.
    return MemberTotals(
        queue=queue,
        member=member,
        answered=len(rows),
        mean_wait_seconds=fmean(_wait_seconds(rows)),
        talk_seconds=_talk_seconds(rows),
    )


def _wait_seconds(rows: Iterable[QueueCallRecord]) -> list[float]:
    return [wait.total_seconds() for row in rows if (wait := row.wait) is not None]


def _talk_seconds(rows: Iterable[QueueCallRecord]) -> float:
    return sum((talk.total_seconds() for row in rows if (talk := row.talk) is not None), 0.0)


_aware = aware
_fit = Fit(QueueCall.__table__)
