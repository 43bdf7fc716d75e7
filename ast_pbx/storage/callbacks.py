"""Callback requests: citizens who asked to be called back, in the IVR or through the API.

The operator page lists the open requests (`open`), oldest first; an operator calls
the citizen (`called`) and closes the request (`update(done=True)`), or hides it until
a later moment the citizen asked for (`update(call_not_before=…)`).

Sync and short, like `calls.CallLog`: each method is one transaction, safe to call from
threads. Callers get frozen `CallbackRecord`s. Times must be timezone-aware; they come
back in UTC.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from ast_pbx.storage.db import Database
from ast_pbx.storage.models import Callback
from ast_pbx.storage.values import Fit, aware


class Unset(enum.Enum):
    """The type of `UNSET`: "not given", where None means "clear"."""

    UNSET = "unset"


UNSET = Unset.UNSET


@dataclass(frozen=True)
class CallbackRecord:
    """A callback request as stored; see `models.Callback` for what each field means."""

    id: int
    caller: str
    requested_at: datetime
    source: str
    call_id: str | None
    done: bool
    call_not_before: datetime | None
    operator: str | None
    called_at: datetime | None
    callback_call_id: str | None

    @classmethod
    def of(cls, callback: Callback) -> CallbackRecord:
        return cls(
            id=callback.id,
            caller=callback.caller,
            requested_at=callback.requested_at,
            source=callback.source,
            call_id=callback.call_id,
            done=callback.done,
            call_not_before=callback.call_not_before,
            operator=callback.operator,
            called_at=callback.called_at,
            callback_call_id=callback.callback_call_id,
        )


class CallbackStore:
    """Repository of the `callbacks` table over a `Database`."""

    def __init__(self, database: Database) -> None:
        self._database = database

    def add(
        self, caller: str, at: datetime, *, source: str = "ivr", call_id: str | None = None
    ) -> CallbackRecord:
        """Store a request of `caller` made at `at`; `call_id` is the IVR call it came from."""
        callback = Callback(
            caller=_fit("caller", caller),
            requested_at=aware(at),
            source=_fit("source", source),
            call_id=_fit("call_id", call_id),
            done=False,
        )
        with self._database.session() as session:
            session.add(callback)
            session.flush()
            return CallbackRecord.of(callback)

    def get(self, callback_id: int) -> CallbackRecord | None:
        """The request of an id, or None."""
        with self._database.session() as session:
            callback = session.get(Callback, callback_id)
            return None if callback is None else CallbackRecord.of(callback)

    def open(self, now: datetime, limit: int = 200) -> list[CallbackRecord]:
        """Requests to call back now: not done and not put off past `now`; oldest first."""
        query = (
            sa.select(Callback)
            .where(
                sa.not_(Callback.done),
                sa.or_(Callback.call_not_before.is_(None), Callback.call_not_before <= aware(now)),
            )
            .order_by(Callback.requested_at, Callback.id)
            .limit(limit)
        )
        with self._database.session() as session:
            return [CallbackRecord.of(callback) for callback in session.scalars(query)]

    def list(
        self,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        caller: str | None = None,
        done: bool | None = None,
        limit: int = 200,
        offset: int = 0,
    ) -> list[CallbackRecord]:
        """Requests made in [start, end) (either bound optional), newest first.

        `caller` matches any part of the number; `done` keeps the done (True) or the
        not done (False) requests, None both.
        """
        query = sa.select(Callback)
        if start is not None:
            query = query.where(Callback.requested_at >= aware(start))
        if end is not None:
            query = query.where(Callback.requested_at < aware(end))
        if caller:
            query = query.where(Callback.caller.contains(caller, autoescape=True))
        if done is not None:
            query = query.where(Callback.done.is_(done))
        query = (
            query.order_by(Callback.requested_at.desc(), Callback.id.desc())
            .limit(limit)
            .offset(offset)
        )
        with self._database.session() as session:
            return [CallbackRecord.of(callback) for callback in session.scalars(query)]

    def update(
        self,
        callback_id: int,
        *,
        done: bool | None = None,
        call_not_before: datetime | Unset | None = UNSET,
    ) -> CallbackRecord | None:
        """Close or reopen a request (`done`), put it off or clear that (`call_not_before`:
        None clears it, `UNSET` leaves it). None if there is no such request."""
        if isinstance(call_not_before, datetime):
            aware(call_not_before)
        with self._database.session() as session:
            callback = session.get(Callback, callback_id, with_for_update=True)
            if callback is None:
                return None
            if done is not None:
                callback.done = done
            if not isinstance(call_not_before, Unset):
                callback.call_not_before = call_not_before
            session.flush()
            return CallbackRecord.of(callback)

    def called(
        self, callback_id: int, operator: str, at: datetime, call_id: str | None
    ) -> CallbackRecord | None:
        """Note that `operator` called the citizen back at `at` in the call `call_id`.

        The request stays open: whether the citizen got what they asked for is the
        operator's call (`update(done=True)`). None if there is no such request.
        """
        at = aware(at)
        with self._database.session() as session:
            callback = session.get(Callback, callback_id, with_for_update=True)
            if callback is None:
                return None
            callback.operator = _fit("operator", operator)
            callback.called_at = at
            callback.callback_call_id = _fit("callback_call_id", call_id)
            session.flush()
            return CallbackRecord.of(callback)


_fit = Fit(Callback.__table__)
