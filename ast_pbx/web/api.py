"""The external-system API under `/api`: dialer tasks, callback requests, the call log.

`create_api(...)` builds a FastAPI app; the engine serves it in its own event loop
(`server.HttpServer`), so every database call runs in a worker thread and the loop
that carries the calls is never blocked.

Conventions, the same on every route:

- HTTP basic auth with the `system.api` credentials (an empty password refuses
  everyone); the OpenAPI document (`/api/openapi.json`) and Swagger UI (`/api/docs`)
  are open;
- errors are JSON `{"error": message, "field": dotted path or null}`; the path starts
  with the part of the request at fault: `tasks.0.number` (POST /api/tasks, where one
  task object counts as a batch of one), `callback.caller`, `query.from`,
  `path.task_id`;
- times come back in ISO 8601 with the offset of the system timezone; a time sent
  without an offset is read in that zone.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, FastAPI, Query, Request, Response, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPBasic, HTTPBasicCredentials
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ast_pbx import __version__
from ast_pbx.engine.callbacks import NoSuchCallback
from ast_pbx.errors import AstPbxError
from ast_pbx.storage.callbacks import CallbackStore
from ast_pbx.storage.calls import CallLog
from ast_pbx.storage.db import Database
from ast_pbx.storage.dialer import AttemptRecord, DialerStore, TaskBusy, TaskRecord, TaskSpec
from ast_pbx.web.api_models import (
    AttemptOut,
    CallBackIn,
    CallbackIn,
    CallbackOut,
    CallOut,
    ErrorOut,
    TaskAdded,
    TaskBatch,
    TaskDetail,
    TaskOut,
    task_fields,
)

log = logging.getLogger("astpbx.api")

REALM = "astpbx"
MAX_LIMIT = 1000  # rows in one listing

DialNowHook = Callable[[int], Awaitable[None]]
# (callback id, operator login, phone or None) → the channel id of the call; raises
# AstPbxError when the callback cannot be placed.
CallBackHook = Callable[[int, str, str | None], Awaitable[str]]


def _utc_now() -> datetime:
    return datetime.now(UTC)


class ApiError(Exception):
    """A refusal with its status, message and, when one part of the request is at
    fault, the dotted path of that part."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field
        self.headers = headers


# The app


@dataclass(frozen=True)
class _Context:
    tasks: DialerStore
    callbacks: CallbackStore
    calls: CallLog
    clock: Callable[[], datetime]
    zone: tzinfo
    dial_now_hook: DialNowHook | None
    call_back_hook: CallBackHook | None = None

    def now(self) -> datetime:
        return self.clock()

    def in_zone(self, at: datetime) -> datetime:
        """`at`, read in the system timezone when it came without an offset."""
        if at.tzinfo is None or at.utcoffset() is None:
            return at.replace(tzinfo=self.zone)
        return at


_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "No or wrong credentials."},
    422: {"model": ErrorOut, "description": "A field is invalid; `field` names it."},
}


def create_api(
    *,
    database: Database,
    username: str,
    password: str,
    clock: Callable[[], datetime] = _utc_now,
    dial_now_hook: DialNowHook | None = None,
    call_back_hook: CallBackHook | None = None,
    timezone: tzinfo = UTC,
) -> FastAPI:
    """The API app over `database`, guarded by the `system.api` credentials.

    `dial_now_hook(task_id)` is awaited after `POST /api/tasks/{id}/dial` so that the
    dialer looks at the task at once; `timezone` is the system timezone, in which
    times are shown and offset-less times read.
    """
    if not password:
        log.warning("system.api.password is empty: the API refuses every request")
    app = FastAPI(
        title="astpbx API",
        version=__version__,
        description=_DESCRIPTION,
        openapi_url="/api/openapi.json",
        docs_url="/api/docs",
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
    )
    context = _Context(
        tasks=DialerStore(database),
        callbacks=CallbackStore(database),
        calls=CallLog(database),
        clock=clock,
        zone=timezone,
        dial_now_hook=dial_now_hook,
        call_back_hook=call_back_hook,
    )
    router = APIRouter(
        prefix="/api",
        dependencies=[Depends(_authenticator(username, password))],
        responses=_ERRORS,
    )
    _task_routes(router, context)
    _task_action_routes(router, context)
    _callback_routes(router, context)
    _call_routes(router, context)
    app.include_router(router)
    _install_error_handlers(app)
    app.add_middleware(_InternalErrors)
    return app


_DESCRIPTION = """\
Dialer tasks (notifications the autodialer phones), callback requests and the call
log of astpbx.

Every route needs HTTP basic auth with the `system.api` credentials. Errors are JSON
`{"error": "...", "field": "..."}`, `field` being the dotted path of the part at fault
(`tasks.0.number`, `query.from`) or null. Times are ISO 8601; those sent without an
offset are read in the system timezone, those returned carry its offset.
"""


# Declares the scheme in the OpenAPI document (Swagger UI's "Authorize") and reads the
# header; `_authenticator` decides. Module-level: annotations are resolved by name here.
_BASIC = HTTPBasic(
    auto_error=False, realm=REALM, description="The `system.api` username and password."
)


def _authenticator(username: str, password: str) -> Callable[..., Awaitable[None]]:
    expected_username = username.encode()
    expected_password = password.encode()

    async def authenticate(
        credentials: Annotated[HTTPBasicCredentials | None, Security(_BASIC)],
    ) -> None:
        if credentials is None:
            raise _unauthorized("authentication required (HTTP basic)")
        # Both compared, always: how long a refusal takes tells nothing.
        username_ok = secrets.compare_digest(credentials.username.encode(), expected_username)
        password_ok = secrets.compare_digest(credentials.password.encode(), expected_password)
        if not (username_ok and password_ok and expected_password):
            raise _unauthorized("wrong username or password")

    return authenticate


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, message, headers={"WWW-Authenticate": f'Basic realm="{REALM}"'})


# Routes


def _task_routes(router: APIRouter, context: _Context) -> None:
    tasks = context.tasks
    zone = context.zone

    @router.post(
        "/tasks",
        status_code=201,
        summary="Add dialer tasks",
        response_model=TaskAdded | list[TaskAdded],
        responses={
            200: {
                "model": TaskAdded | list[TaskAdded],
                "description": "Every task existed already (same `external_id`).",
            },
            201: {"description": "At least one task was added."},
            400: {"model": ErrorOut, "description": "The body is not JSON."},
        },
    )
    async def add_tasks(
        batch: Annotated[
            TaskBatch,
            Body(description="One task, or a list of them added all or nothing."),
        ],
        request: Request,
        response: Response,
    ) -> TaskAdded | list[TaskAdded]:
        """One task object, or a list of up to 1000 added in one transaction: if one is
        invalid, none is added. A task whose `external_id` is known already is not added
        again; it comes back as it is, with `created: false` (status 200 if no task of
        the request was new, 201 otherwise). The response has the shape of the body."""
        specs = [
            TaskSpec(
                number=task.number,
                text=task.text,
                not_before=None if task.not_before is None else context.in_zone(task.not_before),
                priority=task.priority,
                repeat=task.repeat,
                external_id=task.external_id,
            )
            for task in batch
        ]
        now = context.now()
        added = await run_in_threadpool(tasks.add_many, specs, now)
        if not any(created for _, created in added):
            response.status_code = 200
        out = [
            TaskAdded(**task_fields(task, zone, now), created=created) for task, created in added
        ]
        single = not isinstance(await request.json(), list)
        return out[0] if single else out

    @router.get("/tasks", summary="List dialer tasks", response_model=list[TaskOut])
    async def list_tasks(
        *,
        done: Annotated[
            bool | None, Query(description="true: finished tasks only; false: pending only.")
        ] = None,
        number: Annotated[
            str | None, Query(description="Tasks whose number contains this.")
        ] = None,
        start: Annotated[str | None, Query(alias="from", description=_FROM)] = None,
        end: Annotated[str | None, Query(alias="to", description=_TO)] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description=_LIMIT)] = 100,
        offset: Annotated[int, Query(ge=0, description="Rows skipped, for paging.")] = 0,
    ) -> list[TaskOut]:
        """Tasks added in the period, filtered, newest first."""
        since, until = _period(start, end, zone)
        found = await run_in_threadpool(
            tasks.list,
            done=done,
            number=number or None,
            start=since,
            end=until,
            limit=limit,
            offset=offset,
        )
        now = context.now()
        return [TaskOut.of(task, zone, now) for task in found]

    @router.get(
        "/tasks/{task_id}",
        summary="Get a task and its attempts",
        response_model=TaskDetail,
        responses={404: {"model": ErrorOut, "description": "No such task."}},
    )
    async def get_task(task_id: int) -> TaskDetail:
        """The task with the log of the calls placed for it."""

        def read() -> tuple[TaskRecord | None, list[AttemptRecord]]:
            return tasks.get(task_id), tasks.attempts(task_id)

        task, attempts = await run_in_threadpool(read)
        if task is None:
            raise _no_task(task_id)
        attempt_log = [AttemptOut.of(attempt, zone) for attempt in attempts]
        return TaskDetail(**task_fields(task, zone, context.now()), attempts=attempt_log)


def _task_action_routes(router: APIRouter, context: _Context) -> None:
    tasks = context.tasks
    zone = context.zone

    @router.delete(
        "/tasks/{task_id}",
        status_code=204,
        summary="Delete a task",
        response_class=Response,
        responses={
            404: {"model": ErrorOut, "description": "No such task."},
            409: {"model": ErrorOut, "description": "The task is being dialed right now."},
        },
    )
    async def delete_task(task_id: int) -> Response:
        """Delete a task and its attempts; refused (409) while a call for it is going on."""
        if not await run_in_threadpool(tasks.delete, task_id, context.now()):
            raise _no_task(task_id)
        return Response(status_code=204)

    @router.post(
        "/tasks/{task_id}/dial",
        status_code=202,
        summary="Dial a task now",
        response_model=TaskOut,
        responses={
            404: {"model": ErrorOut, "description": "No such task."},
            409: {"model": ErrorOut, "description": "The task is being dialed right now."},
        },
    )
    async def dial_task(task_id: int) -> TaskOut:
        """Make the task due now, ahead of its `not_before`, and wake the dialer; the call
        itself follows as soon as the dialer has a free line."""
        now = context.now()
        task = await run_in_threadpool(tasks.dial_now, task_id, now)
        if task is None:
            raise _no_task(task_id)
        if context.dial_now_hook is not None:
            try:
                await context.dial_now_hook(task_id)
            except Exception:
                # The task is due all the same: the dialer finds it at its next look.
                log.exception("waking the dialer for task %s failed", task_id)
        return TaskOut.of(task, zone, now)


def _no_task(task_id: int) -> ApiError:
    return ApiError(404, f"no task {task_id}")


def _callback_routes(router: APIRouter, context: _Context) -> None:
    callbacks = context.callbacks
    zone = context.zone

    @router.post(
        "/callbacks",
        status_code=201,
        summary="Add a callback request",
        response_model=CallbackOut,
        responses={400: {"model": ErrorOut, "description": "The body is not JSON."}},
    )
    async def add_callback(callback: CallbackIn) -> CallbackOut:
        """A citizen asks to be called back; operators see the request on their page."""
        at = context.now() if callback.requested_at is None else callback.requested_at
        record = await run_in_threadpool(
            callbacks.add, callback.caller, context.in_zone(at), source="api"
        )
        return CallbackOut.of(record, zone)

    @router.post(
        "/callbacks/{callback_id}/call",
        status_code=202,
        summary="Call a citizen back",
        responses={409: {"model": ErrorOut, "description": "The call cannot be placed."}},
    )
    async def call_back(callback_id: int, body: CallBackIn) -> dict[str, str]:
        """Ring the operator's phone; when they answer, the citizen is dialed."""
        if context.call_back_hook is None:
            raise ApiError(409, "calls are placed by a running engine (astpbx run)")
        try:
            call = await context.call_back_hook(callback_id, body.operator, body.phone)
        except NoSuchCallback as exc:
            raise ApiError(404, str(exc)) from exc
        except AstPbxError as exc:
            raise ApiError(409, str(exc)) from exc
        return {"call": call}

    @router.get("/callbacks", summary="List callback requests", response_model=list[CallbackOut])
    async def list_callbacks(
        *,
        open_: Annotated[
            bool | None,
            Query(
                alias="open",
                description="true: requests not closed yet (put-off ones included); "
                "false: closed ones only.",
            ),
        ] = None,
        start: Annotated[str | None, Query(alias="from", description=_FROM)] = None,
        end: Annotated[str | None, Query(alias="to", description=_TO)] = None,
        caller: Annotated[
            str | None, Query(description="Requests whose number contains this.")
        ] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description=_LIMIT)] = 200,
        offset: Annotated[int, Query(ge=0, description="Rows skipped, for paging.")] = 0,
    ) -> list[CallbackOut]:
        """Requests made in the period, filtered, newest first."""
        since, until = _period(start, end, zone)
        found = await run_in_threadpool(
            callbacks.list,
            start=since,
            end=until,
            caller=caller or None,
            done=None if open_ is None else not open_,
            limit=limit,
            offset=offset,
        )
        return [CallbackOut.of(record, zone) for record in found]


def _call_routes(router: APIRouter, context: _Context) -> None:
    calls = context.calls
    zone = context.zone

    @router.get("/calls", summary="Search the call log", response_model=list[CallOut])
    async def call_history(
        *,
        start: Annotated[str, Query(alias="from", description=_FROM)],
        end: Annotated[str, Query(alias="to", description=_TO)],
        caller: Annotated[
            str | None, Query(description="Calls whose caller number contains this.")
        ] = None,
        called: Annotated[
            str | None, Query(description="Calls whose called number contains this.")
        ] = None,
        marked: Annotated[bool, Query(description="true: marked calls only.")] = False,
        limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description=_LIMIT)] = 200,
    ) -> list[CallOut]:
        """Calls started in the period, newest first."""
        since, until = _period(start, end, zone)
        assert since is not None and until is not None
        found = await run_in_threadpool(
            calls.history,
            since,
            until,
            caller=caller or None,
            called=called or None,
            marked_only=marked,
            limit=limit,
        )
        return [CallOut.of(call, zone) for call in found]


_FROM = (
    "The start of the period, included: an ISO 8601 date-time (without an offset, "
    "in the system timezone; write `+` as `%2B`) or a date (its midnight)."
)
_LIMIT = f"At most this many rows, newest first (up to {MAX_LIMIT})."
_TO = (
    "The end of the period: an ISO 8601 date-time, excluded, or a date, included "
    "whole (up to the next midnight)."
)


def _period(
    start: str | None, end: str | None, zone: tzinfo
) -> tuple[datetime | None, datetime | None]:
    since = _moment(start, "query.from", zone, whole_day=False)
    until = _moment(end, "query.to", zone, whole_day=True)
    if since is not None and until is not None and until <= since:
        raise ApiError(
            422, "query.to: the end is not after the start (query.from)", field="query.to"
        )
    return since, until


def _moment(value: str | None, field: str, zone: tzinfo, *, whole_day: bool) -> datetime | None:
    """A query bound: a date-time, or a date meaning its midnight (`whole_day`: the next)."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        day = date.fromisoformat(value)
    except ValueError:
        pass
    else:
        if whole_day:
            day += timedelta(days=1)
        return datetime.combine(day, time(), tzinfo=zone)
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        hint = " (write + as %2B in a URL)" if " " in value else ""
        raise ApiError(
            422, f"{field}: {value!r} is not an ISO 8601 date or date-time{hint}", field=field
        ) from None
    return at.replace(tzinfo=zone) if at.tzinfo is None or at.utcoffset() is None else at


# Errors


# The name of the request body of each route in error paths (`tasks.0.number`).
_BODY_NAMES = {"add_tasks": "tasks", "add_callback": "callback"}


def _error(
    status: int,
    message: str,
    field: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(
        ErrorOut(error=message, field=field).model_dump(), status_code=status, headers=headers
    )


def _install_error_handlers(app: FastAPI) -> None:
    async def api_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, ApiError)
        return _error(error.status, error.message, error.field, error.headers)

    async def busy(request: Request, error: Exception) -> Response:
        return _error(409, str(error) or "the task is being dialed")

    async def http_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, StarletteHTTPException)
        if error.status_code == 401:  # HTTPBasic on a malformed Authorization header
            return _unauthorized_response("malformed Authorization header (HTTP basic)")
        return _error(error.status_code, str(error.detail), headers=error.headers)

    async def invalid(request: Request, error: Exception) -> Response:
        assert isinstance(error, RequestValidationError)
        return _validation_response(request, error)

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(TaskBusy, busy)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, invalid)


def _unauthorized_response(message: str) -> JSONResponse:
    error = _unauthorized(message)
    return _error(error.status, error.message, headers=error.headers)


def _validation_response(request: Request, error: RequestValidationError) -> JSONResponse:
    errors: Sequence[Any] = error.errors()
    first: dict[str, Any] = dict(errors[0]) if errors else {}
    loc = tuple(first.get("loc", ()))
    if first.get("type") == "json_invalid":
        reason = (first.get("ctx") or {}).get("error", "")
        where = f" at character {loc[1]}" if len(loc) > 1 else ""
        return _error(400, f"request body is not valid JSON: {reason}{where}")
    if loc[:1] == ("body",) and isinstance(error.body, bytes | bytearray):
        return _error(415, "the request body must be JSON (Content-Type: application/json)")
    field = _field_path(request, loc)
    message = str(first.get("msg", "invalid value"))
    return _error(422, f"{field}: {message}", field)


def _field_path(request: Request, loc: tuple[Any, ...]) -> str:
    """`("body", 0, "number")` → `tasks.0.number`; `("query", "from")` → `query.from`."""
    parts = [str(part) for part in loc]
    if parts[:1] == ["body"]:
        route = request.scope.get("route")
        parts[0] = _BODY_NAMES.get(getattr(route, "name", ""), "body")
    return ".".join(parts) or "request"


class _InternalErrors:
    """Unexpected exceptions become 500 `{"error": "internal error"}`, logged; the
    client learns nothing of the inside."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def sending(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception:
            log.exception("API %s %s failed", scope.get("method"), scope.get("path"))
            if started:
                raise
            response = _error(500, "internal error")
            await response(scope, receive, send)
