"""The tables of the astpbx database, declared once for the ORM and for Alembic.

Migrations are written against plain `sqlalchemy` types (see
`migrations/versions/`); the models add behaviour on top, such as `UtcDateTime`.
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Named constraints and indexes: the same names on SQLite and PostgreSQL, so batch
# migrations on SQLite (which rebuild tables) and later ALTERs can refer to them.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Base of every model; its metadata is what Alembic compares against."""

    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)


class UtcDateTime(sa.TypeDecorator[datetime]):
    """A timestamp that goes in aware and comes back aware, in UTC, on every backend.

    PostgreSQL keeps the zone (`timestamptz`) but returns it in the session's zone;
    SQLite keeps none at all. Storing naive UTC text on SQLite keeps string order
    equal to time order, so range queries stay correct there too.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            # A naive time is ambiguous (host zone? config zone?); refuse it here
            # rather than log calls hours off.
            raise ValueError(f"naive datetime {value.isoformat()}: pass a timezone-aware one")
        utc = value.astimezone(UTC)
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Call(Base):
    """One call as the engine saw it: from the first event of its channel to hangup."""

    __tablename__ = "calls"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    # The Asterisk channel id of the incoming leg.
    channel_id: Mapped[str] = mapped_column(sa.String(64), unique=True)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    answered_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    caller: Mapped[str | None] = mapped_column(sa.String(64), index=True)
    called: Mapped[str] = mapped_column(sa.String(64), index=True)
    # The numbers visited, in order: ["90000", "91000", "92000", "1001"].
    path: Mapped[list[str]] = mapped_column(sa.JSON, default=list)
    # How the call ended, in the config language's terms: "hangup", "phone 1001",
    # "queue 92000", "trunk rt", "unknown-number".
    outcome: Mapped[str | None] = mapped_column(sa.String(64))
    # Why: "caller hung up", "menu without handlers", "rule-loop"…
    reason: Mapped[str | None] = mapped_column(sa.String(128))
    # The trunk the call came in on, if any.
    trunk: Mapped[str | None] = mapped_column(sa.String(64))
    external: Mapped[bool] = mapped_column(sa.Boolean, default=False, server_default=sa.false())
    # A hash of the config the call ran on, to explain old calls after a change.
    config_version: Mapped[str | None] = mapped_column(sa.String(64))
    # "Отметка" in the manual: a flag operators set on calls worth a second look.
    marked: Mapped[bool] = mapped_column(sa.Boolean, default=False, server_default=sa.false())
    recording: Mapped[str | None] = mapped_column(sa.String(512))
    # When `astpbx files purge` deleted the recording: the entry says "purged", not a
    # broken link.
    recording_purged_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class QueueCall(Base):
    """One wait of a caller in a queue: from entering it to leaving it, and the talk after.

    A call that passes through two queues, or the same queue twice, has a row for each
    wait; the rows of one call share `call_id`.
    """

    __tablename__ = "queue_calls"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    # The Asterisk channel id of the caller, as `calls.channel_id`. No foreign key: the
    # call row may be missing (its start failed to log) and queue statistics must not be.
    call_id: Mapped[str] = mapped_column(sa.String(64), index=True)
    # The queue's number.
    queue: Mapped[str] = mapped_column(sa.String(64), index=True)
    caller: Mapped[str | None] = mapped_column(sa.String(64), index=True)
    entered_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    answered_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # The phone number of the member who answered.
    member: Mapped[str | None] = mapped_column(sa.String(64), index=True)
    # The login of the operator bound to that phone at the time, if any: phones change
    # hands, statistics must keep who really talked.
    operator: Mapped[str | None] = mapped_column(sa.String(64))
    # When the caller stopped waiting (answered, hung up, moved on); NULL while waiting.
    left_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # "answered", "abandoned" (hung up while waiting), "moved" (a key or waiting-time
    # handler of the queue sent the caller on), "sent_away" (leave_when_empty).
    outcome: Mapped[str | None] = mapped_column(sa.String(32))
    # The end of the conversation with the member.
    talk_ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class Operator(Base):
    """A user as a queue member: the phone they sit at now and whether they take calls.

    Operators bind themselves to a phone by dialling a short code the web page shows,
    so the row is created on first need, not with the user.
    """

    __tablename__ = "operators"

    login: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    # Unique: a phone rings for one operator at a time.
    phone: Mapped[str | None] = mapped_column(sa.String(64), unique=True)
    # The "accept queue calls" switch.
    accepting: Mapped[bool] = mapped_column(sa.Boolean, default=True, server_default=sa.true())
    # The code to dial from a phone to bind to it; unique so a code names one operator.
    bind_code: Mapped[str | None] = mapped_column(sa.String(16), unique=True)
    code_expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    bound_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class DialerTask(Base):
    """A notification for the autodialer to phone: a number and the text to speak.

    Workers claim a task with a lease (`lease_owner`, `lease_until`): a worker that dies
    mid-attempt leaves a lease that runs out, and the task is dialed again, never lost
    and never dialed by two workers at once.
    """

    __tablename__ = "dialer_tasks"
    __table_args__ = (sa.Index("ix_dialer_tasks_due", "done", "priority", "enqueued_at"),)

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    # The id the external system gave the task: a re-submitted task is not added twice.
    external_id: Mapped[str | None] = mapped_column(sa.String(128), unique=True)
    number: Mapped[str] = mapped_column(sa.String(64), index=True)
    text: Mapped[str] = mapped_column(sa.Text)
    # How many times the text is spoken once the citizen answers.
    repeat: Mapped[int] = mapped_column(sa.Integer, default=1, server_default="1")
    enqueued_at: Mapped[datetime] = mapped_column(UtcDateTime)
    # Not dialed before this moment (the API's "not before", and retry_after's wait).
    not_before: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # 0 is the highest priority.
    priority: Mapped[int] = mapped_column(sa.Integer, default=0, server_default="0")
    done: Mapped[bool] = mapped_column(sa.Boolean, default=False, server_default=sa.false())
    # Why it is done: "answered", "max_unanswered", "max_failed".
    done_reason: Mapped[str | None] = mapped_column(sa.String(32))
    attempts: Mapped[int] = mapped_column(sa.Integer, default=0, server_default="0")
    # Attempts that rang without an answer, counted against max_unanswered.
    unanswered: Mapped[int] = mapped_column(sa.Integer, default=0, server_default="0")
    # Attempts that failed at all (provider or technical), counted against max_failed.
    failed: Mapped[int] = mapped_column(sa.Integer, default=0, server_default="0")
    # The start of the attempt going on now, NULL between attempts.
    attempt_started_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    lease_owner: Mapped[str | None] = mapped_column(sa.String(64))
    lease_until: Mapped[datetime | None] = mapped_column(UtcDateTime)


class DialerAttempt(Base):
    """One call the dialer placed for a task: start, ringing, answer, end, outcome."""

    __tablename__ = "dialer_attempts"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    task_id: Mapped[int] = mapped_column(
        sa.Integer, sa.ForeignKey("dialer_tasks.id", ondelete="CASCADE"), index=True
    )
    number: Mapped[str] = mapped_column(sa.String(64), index=True)
    # The Asterisk channel of the attempt.
    channel_id: Mapped[str | None] = mapped_column(sa.String(64))
    # Which engine placed it (several may share one database).
    worker: Mapped[str | None] = mapped_column(sa.String(64))
    started_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    ringing_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    answered_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # "answered", "no_answer" (rang, nobody answered), "busy", "failed" (the provider or
    # the line), "lost" (the engine died during the attempt).
    outcome: Mapped[str | None] = mapped_column(sa.String(32))
    # Asterisk's hangup cause (Q.850 code and text) when the line says why.
    cause: Mapped[int | None] = mapped_column(sa.Integer)
    cause_text: Mapped[str | None] = mapped_column(sa.String(64))


class Callback(Base):
    """A citizen's request to be called back (left in the IVR or sent by the API)."""

    __tablename__ = "callbacks"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    caller: Mapped[str] = mapped_column(sa.String(64), index=True)
    requested_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    # The IVR call the request was left in ("ivr"), or "api".
    source: Mapped[str] = mapped_column(sa.String(16), default="ivr", server_default="ivr")
    call_id: Mapped[str | None] = mapped_column(sa.String(64))
    done: Mapped[bool] = mapped_column(sa.Boolean, default=False, server_default=sa.false())
    # Hidden from the list until then (the citizen asked to be called later).
    call_not_before: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # The operator who last called the citizen back, when, and the call it made.
    operator: Mapped[str | None] = mapped_column(sa.String(64), index=True)
    called_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    callback_call_id: Mapped[str | None] = mapped_column(sa.String(64))


class Interaction(Base):
    """One entry of the interaction history with a citizen's number (the right pane of
    the operator's form): who called, which way, what about, what the answer was."""

    __tablename__ = "interactions"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    # The citizen's number: the history is looked up by it.
    phone: Mapped[str] = mapped_column(sa.String(64), index=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    # "in" (the citizen called) or "out" (a callback, the dialer).
    direction: Mapped[str] = mapped_column(sa.String(8), default="in", server_default="in")
    # The call it was created for, when created on pick-up.
    call_id: Mapped[str | None] = mapped_column(sa.String(64), index=True)
    caller_name: Mapped[str | None] = mapped_column(sa.String(256))
    question_group: Mapped[str | None] = mapped_column(sa.String(128))
    question: Mapped[str | None] = mapped_column(sa.Text)
    answer: Mapped[str | None] = mapped_column(sa.Text)
    # The login of the operator who handled it.
    operator: Mapped[str | None] = mapped_column(sa.String(64), index=True)
    updated_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class ChatMessage(Base):
    """A chat message between signed-in users; `recipient` NULL is a broadcast."""

    __tablename__ = "chat_messages"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    sender: Mapped[str] = mapped_column(sa.String(64), index=True)
    recipient: Mapped[str | None] = mapped_column(sa.String(64), index=True)
    text: Mapped[str] = mapped_column(sa.Text)
    sent_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    # For personal messages: when the recipient read it (broadcasts: see chat_reads).
    read_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class ChatRead(Base):
    """How far a user has read the broadcasts: the id of the last one seen."""

    __tablename__ = "chat_reads"

    login: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    last_broadcast_id: Mapped[int] = mapped_column(sa.Integer, default=0, server_default="0")


class LoginFailure(Base):
    """Failed sign-ins, for the lock-out after repeated failures (per login)."""

    __tablename__ = "login_failures"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    login: Mapped[str] = mapped_column(sa.String(64), index=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    address: Mapped[str | None] = mapped_column(sa.String(64))
