"""The call log: one row per call, written by the engine, read by the history page.

Sync and short: each method is one transaction, so the asyncio engine can call it
through `asyncio.to_thread`. Callers get frozen `CallRecord`s, never ORM objects.
Times must be timezone-aware; they come back in UTC.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from ast_pbx.storage.db import Database
from ast_pbx.storage.models import Call
from ast_pbx.storage.values import Fit, aware


@dataclass(frozen=True)
class CallRecord:
    """A call as logged; see `models.Call` for what each field means."""

    id: int
    channel_id: str
    started_at: datetime
    answered_at: datetime | None
    ended_at: datetime | None
    caller: str | None
    called: str
    path: tuple[str, ...]
    outcome: str | None
    reason: str | None
    trunk: str | None
    external: bool
    config_version: str | None
    marked: bool
    recording: str | None
    recording_purged_at: datetime | None = None  # `astpbx files purge` deleted the file

    @property
    def duration(self) -> timedelta | None:
        """From the first event to hangup; None while the call goes on."""
        return None if self.ended_at is None else self.ended_at - self.started_at

    @property
    def talk_time(self) -> timedelta | None:
        """From answer to hangup; None if never answered or not over."""
        if self.ended_at is None or self.answered_at is None:
            return None
        return self.ended_at - self.answered_at

    @classmethod
    def of(cls, call: Call) -> CallRecord:
        return cls(
            id=call.id,
            channel_id=call.channel_id,
            started_at=call.started_at,
            answered_at=call.answered_at,
            ended_at=call.ended_at,
            caller=call.caller,
            called=call.called,
            path=tuple(call.path),
            outcome=call.outcome,
            reason=call.reason,
            trunk=call.trunk,
            external=call.external,
            config_version=call.config_version,
            marked=call.marked,
            recording=call.recording,
            recording_purged_at=call.recording_purged_at,
        )


class CallLog:
    """Repository of the `calls` table over a `Database`."""

    def __init__(self, database: Database) -> None:
        self._database = database

    def started(
        self,
        channel_id: str,
        caller: str | None,
        called: str,
        *,
        at: datetime,
        trunk: str | None = None,
        external: bool = False,
        config_version: str | None = None,
        once: bool = False,
    ) -> int:
        """Log a new call; its id. A channel id already logged raises StorageError, or
        with `once` (a call another engine took first, which may have logged it before
        it died) is left as it is."""
        if once:
            known = self.get(channel_id)
            if known is not None:
                return known.id
        # Core statements, not the ORM: the engine writes twice for every call.
        insert = sa.insert(Call).values(
            channel_id=_fit("channel_id", channel_id),
            started_at=_aware(at),
            caller=_fit("caller", caller),
            called=_fit("called", called),
            path=[],
            trunk=_fit("trunk", trunk),
            external=external,
            config_version=_fit("config_version", config_version),
            marked=False,
        )
        with self._database.connection() as connection:
            result = connection.execute(insert)
            key = result.inserted_primary_key
            return int(key[0]) if key else 0

    def open_channels(self) -> list[tuple[str, datetime]]:
        """(channel id, start) of every call not ended: a starting engine adopts or
        closes each."""
        query = sa.select(Call.channel_id, Call.started_at).where(Call.ended_at.is_(None))
        with self._database.connection() as connection:
            return [(str(c), t) for c, t in connection.execute(query)]

    def answered(self, channel_id: str, at: datetime) -> bool:
        """Note the answer time; the first one stays. False if the call is unknown."""
        at = _aware(at)

        def change(call: Call) -> None:
            if call.answered_at is None:
                call.answered_at = at

        return self._change(channel_id, change)

    def visited(self, channel_id: str, numbers: list[str]) -> bool:
        """Append numbers to the call's path. False if the call is unknown."""

        def change(call: Call) -> None:
            # A new list: SQLAlchemy does not see in-place changes to a JSON value.
            call.path = [*call.path, *numbers]

        return self._change(channel_id, change)

    def ended(
        self,
        channel_id: str,
        *,
        at: datetime,
        outcome: str | None,
        reason: str | None,
        path: list[str] | None = None,
        answered_at: datetime | None = None,
    ) -> bool:
        """Note the end, how and why; the first end stays. The engine passes the whole
        `path` and the answer time here too, so that a call costs two writes, not one a
        step.

        False, not an error, if the call is unknown (e.g. it began before a restart
        or its start failed to log): worth a log line, not a crash.
        """
        values: dict[str, Any] = {
            "ended_at": _aware(at),
            "outcome": _fit("outcome", outcome),
            "reason": _fit("reason", reason),
        }
        if path is not None:
            values["path"] = list(path)
        if answered_at is not None:
            # The literal carries the column's type so that it is stored in UTC like
            # any other time (a bare parameter skips UtcDateTime's conversion).
            values["answered_at"] = sa.func.coalesce(
                Call.answered_at, sa.literal(_aware(answered_at), Call.answered_at.type)
            )
        # One UPDATE guarded by `ended_at IS NULL` keeps the first end, without a read first.
        update = (
            sa.update(Call)
            .where(Call.channel_id == _fit("channel_id", channel_id), Call.ended_at.is_(None))
            .values(**values)
        )
        with self._database.connection() as connection:
            if connection.execute(update).rowcount:
                return True
        return self.get(channel_id) is not None  # already ended (True) or unknown (False)

    def recorded(self, channel_id: str, recording: str) -> bool:
        """Note the file of the call's recording. False if the call is unknown."""

        def change(call: Call) -> None:
            call.recording = _fit("recording", recording)

        return self._change(channel_id, change)

    def get(self, channel_id: str) -> CallRecord | None:
        """The call of a channel, or None."""
        query = sa.select(Call).where(Call.channel_id == _fit("channel_id", channel_id))
        with self._database.session() as session:
            call = session.scalars(query).one_or_none()
            return None if call is None else CallRecord.of(call)

    def find(self, call_id: int) -> CallRecord | None:
        """The call of log id `call_id` (what the history page shows), or None."""
        with self._database.session() as session:
            call = session.get(Call, call_id)
            return None if call is None else CallRecord.of(call)

    def history(
        self,
        start: datetime,
        end: datetime,
        *,
        caller: str | None = None,
        called: str | None = None,
        marked_only: bool = False,
        limit: int = 1000,
    ) -> list[CallRecord]:
        """Calls started in [start, end), newest first, at most `limit`.

        `caller` and `called` match any part of the number, as the history page
        filters by a fragment; `marked_only` keeps the marked calls.
        """
        query = sa.select(Call).where(
            Call.started_at >= _aware(start), Call.started_at < _aware(end)
        )
        if caller:
            query = query.where(Call.caller.contains(caller, autoescape=True))
        if called:
            query = query.where(Call.called.contains(called, autoescape=True))
        if marked_only:
            query = query.where(Call.marked)
        query = query.order_by(Call.started_at.desc(), Call.id.desc()).limit(limit)
        with self._database.session() as session:
            return [CallRecord.of(call) for call in session.scalars(query)]

    def last_id(self) -> int:
        """The id of the newest logged call (0 when none): calls logged later have larger ids."""
        with self._database.session() as session:
            return int(session.scalar(sa.select(sa.func.max(Call.id))) or 0)

    def logged_after(self, call_id: int, *, called: str | None = None) -> list[CallRecord]:
        """Calls logged after the call `call_id`, in the order they were logged."""
        query = sa.select(Call).where(Call.id > call_id)
        if called is not None:
            query = query.where(Call.called == called)
        with self._database.session() as session:
            return [CallRecord.of(c) for c in session.scalars(query.order_by(Call.id))]

    def mark(self, call_id: int, marked: bool = True) -> bool:
        """Set or clear the mark ("отметка") of a call. False if there is no such call."""
        with self._database.session() as session:
            call = session.get(Call, call_id)
            if call is None:
                return False
            call.marked = marked
            return True

    def mark_channel(self, channel_id: str, marked: bool = True) -> bool:
        """`mark` by the Asterisk channel id of the call (what the engine knows)."""

        def change(call: Call) -> None:
            call.marked = marked

        return self._change(channel_id, change)

    def _change(self, channel_id: str, change: Callable[[Call], None]) -> bool:
        """Apply `change` to the call of a channel in one transaction."""
        query = (
            sa.select(Call)
            .where(Call.channel_id == _fit("channel_id", channel_id))
            # PostgreSQL: a row lock, so two events of one call cannot lose a path step.
            # SQLite ignores it; there the engine handling one call's events in order is
            # what keeps read-modify-write safe.
            .with_for_update()
        )
        with self._database.session() as session:
            call = session.scalars(query).one_or_none()
            if call is None:
                return False
            change(call)
            return True


_aware = aware
_fit = Fit(Call.__table__)
