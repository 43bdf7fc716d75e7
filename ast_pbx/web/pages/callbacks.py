"""The callbacks form (manual: "Заявки на обратные вызовы"), GET /callbacks.

The open requests (not done, not put off past now), oldest first. "Позвонить" opens a
modal: the request's date, the "done" flag, the date and time not before which to call
(a later one hides the request until then), "Сохранить", "Позвонить" (the operator's
phone rings; once they pick up, the citizen is called) and the number's interaction
history. The list follows the engine's `callbacks` events (operator.js).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, Response

from ast_pbx.engine.callbacks import CallbackError, NoSuchCallback
from ast_pbx.storage.callbacks import CallbackRecord, CallbackStore
from ast_pbx.storage.interactions import InteractionStore
from ast_pbx.web.context import WebUser, context_of, csrf, render, require
from ast_pbx.web.interactions import (
    caller_name,
    form_data,
    history_view,
    is_fetch,
    local,
    page_directory,
    text_field,
    zone,
)

log = logging.getLogger("astpbx.web.callbacks")

router = APIRouter()

Operator = Annotated[WebUser, Depends(require("operator"))]

NO_ENGINE = "звонок невозможен: движок не запущен"
LOCAL_INPUT = "%Y-%m-%dT%H:%M"  # <input type="datetime-local">
CHECKED = frozenset({"on", "1", "true", "yes"})


@dataclass(frozen=True)
class RequestView:
    id: int
    caller: str
    requested: str
    source: str
    called: str  # the last callback: when and by whom, or ''


def request_view(record: CallbackRecord, where: tzinfo) -> RequestView:
    called = ""
    if record.called_at is not None:
        called = f"{local(record.called_at, where)} ({record.operator or '—'})"
    return RequestView(
        record.id, record.caller, local(record.requested_at, where), record.source, called
    )


async def open_requests(request: Request) -> list[RequestView]:
    context = context_of(request)
    store = CallbackStore(context.database)
    records = await asyncio.to_thread(store.open, context.clock())
    where = zone(context)
    return [request_view(record, where) for record in records]


async def _record(request: Request, callback: int) -> CallbackRecord:
    store = CallbackStore(context_of(request).database)
    record = await asyncio.to_thread(store.get, callback)
    if record is None:
        raise HTTPException(404, "Заявка не найдена")
    return record


async def dialog_values(
    request: Request,
    user: WebUser,
    record: CallbackRecord,
    message: str = "",
    message_error: bool = False,
) -> dict[str, Any]:
    context = context_of(request)
    where = zone(context)
    not_before = record.call_not_before
    return {
        "callback": request_view(record, where),
        "done": record.done,
        "call_not_before": not_before.astimezone(where).strftime(LOCAL_INPUT)
        if not_before is not None
        else "",
        "can_call": context.engine is not None,
        "no_engine": NO_ENGINE,
        "history": await history_view(request, user, record.caller),
        "message": message,
        "message_error": message_error,
    }


async def _answer(
    request: Request,
    user: WebUser,
    record: CallbackRecord,
    message: str,
    status: int = 200,
) -> Response:
    """The modal again (operator.js), or the whole page with it open (a plain form)."""
    values = await dialog_values(request, user, record, message, status >= 400)
    if is_fetch(request):
        return render(request, "callbacks_dialog.html", user, status=status, **values)
    return render(
        request,
        "callbacks.html",
        user,
        status=status,
        requests=await open_requests(request),
        show_dialog=True,
        **values,
    )


def _notify(request: Request) -> None:
    """Other operators' lists follow (a request done or put off leaves them)."""
    context_of(request).events.publish("callbacks")


# Pages and fragments


@router.get("/callbacks", response_class=HTMLResponse)
async def callbacks_page(
    request: Request,
    user: Operator,
    open_: Annotated[int | None, Query(alias="open", ge=0, le=2**62)] = None,
) -> HTMLResponse:
    """The list of open requests; `?open=ID` shows the modal of one (without JS)."""
    dialog: dict[str, Any] = {}
    if open_ is not None:
        dialog = await dialog_values(request, user, await _record(request, open_))
    return render(
        request,
        "callbacks.html",
        user,
        requests=await open_requests(request),
        show_dialog=bool(dialog),
        **dialog,
    )


@router.get("/callbacks/list", response_class=HTMLResponse)
async def callbacks_list(request: Request, user: Operator) -> HTMLResponse:
    """The rows of the list, for a live update."""
    return render(request, "callbacks_list.html", user, requests=await open_requests(request))


@router.get("/callbacks/{callback}", response_class=HTMLResponse)
async def callback_dialog(request: Request, user: Operator, callback: int) -> HTMLResponse:
    """The modal of one request."""
    record = await _record(request, callback)
    values = await dialog_values(request, user, record)
    return render(request, "callbacks_dialog.html", user, **values)


# Changes


def parse_local(text: str, where: tzinfo) -> datetime | None:
    """A datetime-local value (2026-03-02T14:30) in the system timezone; '' → None."""
    if not text:
        return None
    for layout in (LOCAL_INPUT, LOCAL_INPUT + ":%S"):
        try:
            return datetime.strptime(text, layout).replace(tzinfo=where)
        except ValueError:
            continue
    raise HTTPException(400, "«Перезвонить не ранее»: дата и время в виде 2026-03-02T14:30")


@router.post("/callbacks/{callback}", response_model=None, dependencies=[Depends(csrf)])
async def save_callback(request: Request, user: Operator, callback: int) -> Response:
    """ "Сохранить": the done flag and the time not before which to call back."""
    data = await form_data(request)
    context = context_of(request)
    done = data.get("done", "").strip().lower() in CHECKED
    not_before = parse_local(
        text_field(data, "call_not_before", 32, "Перезвонить не ранее"), zone(context)
    )
    store = CallbackStore(context.database)
    record = await asyncio.to_thread(store.update, callback, done=done, call_not_before=not_before)
    if record is None:
        raise HTTPException(404, "Заявка не найдена")
    log.info("%s saved callback %s: done=%s, not before %s", user.login, callback, done, not_before)
    _notify(request)
    return await _answer(request, user, record, "Сохранено")


@router.post("/callbacks/{callback}/call", response_model=None, dependencies=[Depends(csrf)])
async def call_back(request: Request, user: Operator, callback: int) -> Response:
    """ "Позвонить": ring the operator's phone; when they pick up, the citizen is called."""
    record = await _record(request, callback)
    context = context_of(request)
    engine = context.engine
    if engine is None:
        return await _answer(request, user, record, NO_ENGINE, 503)
    bound = engine.presence.operators.get(user.login)
    phone = bound.phone if bound is not None else None
    if not phone:
        message = "звонок невозможен: к вам не привязан телефон (привяжите его в шапке)"
        return await _answer(request, user, record, message, 409)
    try:
        channel = await engine.callback_calls.call(callback, user.login)
    except NoSuchCallback as error:
        raise HTTPException(404, "Заявка не найдена") from error
    except CallbackError as error:
        log.warning("%s: callback %s not placed: %s", user.login, callback, error)
        return await _answer(request, user, record, f"звонок невозможен: {error}", 409)
    except Exception:
        log.exception("%s: callback %s not placed", user.login, callback)
        message = "звонок невозможен: Asterisk не принял вызов"
        return await _answer(request, user, record, message, 502)
    name = await caller_name(page_directory(request), record.caller)
    try:
        await asyncio.to_thread(
            InteractionStore(context.database).add,
            record.caller,
            context.clock(),
            "out",
            call_id=channel,
            caller_name=name,
            operator=user.login,
        )
    except Exception:
        log.exception("callback %s: the history entry was not stored", callback)
    message = f"Звонит ваш телефон {phone}: снимите трубку, и начнётся вызов на {record.caller}"
    return await _answer(request, user, record, message)
