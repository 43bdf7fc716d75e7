"""The API's request and response bodies (pydantic), apart from its routes.

Requests forbid unknown fields, so a misspelt field is a 422 naming it rather than
silently ignored; responses give times in the system timezone with its offset.
"""

from __future__ import annotations

from datetime import datetime, timedelta, tzinfo
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    field_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema

from ast_pbx.storage.callbacks import CallbackRecord
from ast_pbx.storage.calls import CallRecord
from ast_pbx.storage.dialer import AttemptRecord, TaskRecord

NUMBER_PATTERN = r"^\+?[0-9]{3,20}$"
MAX_BATCH = 1000  # tasks in one POST /api/tasks


# Request bodies


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TaskIn(_Input):
    """A notification for the autodialer: whom to phone and what to say."""

    number: Annotated[
        str,
        Field(
            pattern=NUMBER_PATTERN,
            description="The number to dial: 3 to 20 digits, optionally after a `+`.",
            examples=["+79001234567"],
        ),
    ]
    text: Annotated[
        str,
        Field(
            min_length=1,
            max_length=2000,
            description="The text spoken (synthesized) once the citizen answers.",
        ),
    ]
    not_before: datetime | None = Field(
        None,
        description="Not dialed before this moment (ISO 8601; without an offset the "
        "system timezone is meant). Default: as soon as possible.",
    )
    priority: int = Field(
        0, ge=0, le=100, strict=True, description="0 (the default) is the highest; up to 100."
    )
    repeat: int = Field(
        1, ge=1, le=5, strict=True, description="How many times the text is spoken, 1 to 5."
    )
    external_id: str | None = Field(
        None,
        min_length=1,
        max_length=128,
        description="Your id of the task: a task re-sent with the same id is not added "
        "again (the response returns the existing one, `created: false`).",
    )

    @field_validator("text")
    @classmethod
    def _not_blank(cls, text: str) -> str:
        if not text.strip():
            raise ValueError("the text is blank")
        return text


class _OneOrList:
    """JSON schema of a body that is one object or a list of them (a list underneath)."""

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        many = handler(schema)
        return {"anyOf": [many["items"], many]}


def _as_list(value: Any) -> Any:
    return [value] if isinstance(value, dict) else value


TaskBatch = Annotated[
    list[TaskIn],
    Field(min_length=1, max_length=MAX_BATCH),
    BeforeValidator(_as_list),
    _OneOrList(),
]


class CallbackIn(_Input):
    """A citizen's request to be called back."""

    caller: Annotated[
        str,
        Field(
            pattern=NUMBER_PATTERN,
            description="The number to call back: 3 to 20 digits, optionally after a `+`.",
            examples=["+79001234567"],
        ),
    ]
    requested_at: datetime | None = Field(
        None,
        description="When the citizen asked (ISO 8601; without an offset the system "
        "timezone is meant). Default: now.",
    )


class CallBackIn(_Input):
    """Who calls the citizen back."""

    operator: Annotated[str, Field(min_length=1, max_length=64, description="A login of `users`.")]
    phone: Annotated[
        str | None,
        Field(
            pattern=NUMBER_PATTERN,
            description="The phone to ring first. Default: the phone the operator is bound to.",
        ),
    ] = None


# Responses


class ErrorOut(BaseModel):
    """Why the request was refused."""

    error: str = Field(description="The reason, naming the field at fault if there is one.")
    field: str | None = Field(
        None,
        description="The dotted path of the field at fault: `tasks.0.number`, `query.from`.",
    )


class TaskOut(BaseModel):
    """A dialer task and where it stands."""

    id: int = Field(description="astpbx's id of the task.")
    external_id: str | None = Field(description="Your id of the task, if you gave one.")
    number: str = Field(description="The number dialed.")
    text: str = Field(description="The text spoken.")
    repeat: int = Field(description="How many times the text is spoken.")
    priority: int = Field(description="0 is the highest; -1: urgent (dial now was asked).")
    enqueued_at: datetime = Field(description="When the task was added.")
    not_before: datetime | None = Field(description="Not dialed before this moment.")
    done: bool = Field(description="No more attempts will be made.")
    done_reason: str | None = Field(
        description='Why it is done: "answered", "max_unanswered", "max_failed".'
    )
    attempt_count: int = Field(description="Calls placed so far.")
    unanswered_count: int = Field(description="Attempts that rang unanswered or were busy.")
    failed_count: int = Field(description="Attempts that failed (provider or line).")
    dialing_since: datetime | None = Field(
        description="The start of the call being placed for it now; null between attempts."
    )

    @classmethod
    def of(cls, task: TaskRecord, zone: tzinfo, now: datetime) -> TaskOut:
        return cls(**task_fields(task, zone, now))


def task_fields(task: TaskRecord, zone: tzinfo, now: datetime) -> dict[str, Any]:
    # A lease that ran out is a dead engine's: nothing is going on any more.
    leased = task.lease_until is not None and task.lease_until >= now
    return {
        "id": task.id,
        "external_id": task.external_id,
        "number": task.number,
        "text": task.text,
        "repeat": task.repeat,
        "priority": task.priority,
        "enqueued_at": _local(task.enqueued_at, zone),
        "not_before": _local(task.not_before, zone),
        "done": task.done,
        "done_reason": task.done_reason,
        "attempt_count": task.attempts,
        "unanswered_count": task.unanswered,
        "failed_count": task.failed,
        "dialing_since": _local(task.attempt_started_at, zone) if leased else None,
    }


class TaskAdded(TaskOut):
    """A task as `POST /api/tasks` left it."""

    created: bool = Field(
        description="True if this request added it; false if a task with its "
        "`external_id` existed already (it is returned unchanged)."
    )


class AttemptOut(BaseModel):
    """One call the dialer placed for a task."""

    id: int
    number: str = Field(description="The number dialed.")
    channel_id: str | None = Field(description="The Asterisk channel of the call.")
    worker: str | None = Field(description="The engine that placed it.")
    started_at: datetime = Field(description="When the call was placed.")
    ringing_at: datetime | None = Field(description="When the line started ringing.")
    answered_at: datetime | None = Field(description="When the citizen answered.")
    ended_at: datetime | None = Field(description="When the call ended; null while it goes on.")
    outcome: str | None = Field(
        description='"answered", "no_answer", "busy", "failed" or "lost" (the engine '
        "stopped during the call); null while it goes on."
    )
    cause: int | None = Field(description="The Q.850 hangup cause, when the line gave one.")
    cause_text: str | None = Field(description="The text of `cause`.")

    @classmethod
    def of(cls, attempt: AttemptRecord, zone: tzinfo) -> AttemptOut:
        return cls(
            id=attempt.id,
            number=attempt.number,
            channel_id=attempt.channel_id,
            worker=attempt.worker,
            started_at=_aware_local(attempt.started_at, zone),
            ringing_at=_local(attempt.ringing_at, zone),
            answered_at=_local(attempt.answered_at, zone),
            ended_at=_local(attempt.ended_at, zone),
            outcome=attempt.outcome,
            cause=attempt.cause,
            cause_text=attempt.cause_text,
        )


class TaskDetail(TaskOut):
    """A task with the log of its attempts."""

    attempts: list[AttemptOut] = Field(description="The calls placed for it, oldest first.")


class CallbackOut(BaseModel):
    """A citizen's request to be called back, and the operator's call if one was made."""

    id: int
    caller: str = Field(description="The number to call back.")
    requested_at: datetime = Field(description="When the citizen asked.")
    source: str = Field(description='"ivr" (left in a call) or "api".')
    call_id: str | None = Field(description="The IVR call the request was left in.")
    done: bool = Field(description="An operator closed the request.")
    call_not_before: datetime | None = Field(
        description="Hidden from the operators until then (the citizen asked for later)."
    )
    operator: str | None = Field(description="The operator who last called back.")
    called_at: datetime | None = Field(description="When they called.")
    callback_call_id: str | None = Field(description="The call they made.")

    @classmethod
    def of(cls, callback: CallbackRecord, zone: tzinfo) -> CallbackOut:
        return cls(
            id=callback.id,
            caller=callback.caller,
            requested_at=_aware_local(callback.requested_at, zone),
            source=callback.source,
            call_id=callback.call_id,
            done=callback.done,
            call_not_before=_local(callback.call_not_before, zone),
            operator=callback.operator,
            called_at=_local(callback.called_at, zone),
            callback_call_id=callback.callback_call_id,
        )


class CallOut(BaseModel):
    """A call from the call log."""

    id: int
    channel_id: str = Field(description="The Asterisk channel of the incoming leg.")
    started_at: datetime
    answered_at: datetime | None
    ended_at: datetime | None = Field(description="Null while the call goes on.")
    caller: str | None
    called: str
    path: list[str] = Field(description="The numbers the call visited, in order.")
    outcome: str | None = Field(description='How it ended: "hangup", "phone 1001", …')
    reason: str | None = Field(description="Why it ended so.")
    trunk: str | None = Field(description="The trunk it came in on.")
    external: bool = Field(description="It came from outside (a trunk).")
    marked: bool = Field(description="An operator marked it for a second look.")
    duration_seconds: float | None = Field(description="From the start to hangup.")
    talk_seconds: float | None = Field(description="From the answer to hangup.")

    @classmethod
    def of(cls, call: CallRecord, zone: tzinfo) -> CallOut:
        return cls(
            id=call.id,
            channel_id=call.channel_id,
            started_at=_aware_local(call.started_at, zone),
            answered_at=_local(call.answered_at, zone),
            ended_at=_local(call.ended_at, zone),
            caller=call.caller,
            called=call.called,
            path=list(call.path),
            outcome=call.outcome,
            reason=call.reason,
            trunk=call.trunk,
            external=call.external,
            marked=call.marked,
            duration_seconds=_seconds(call.duration),
            talk_seconds=_seconds(call.talk_time),
        )


def _local(at: datetime | None, zone: tzinfo) -> datetime | None:
    return None if at is None else at.astimezone(zone)


def _aware_local(at: datetime, zone: tzinfo) -> datetime:
    return at.astimezone(zone)


def _seconds(span: timedelta | None) -> float | None:
    return None if span is None else span.total_seconds()
