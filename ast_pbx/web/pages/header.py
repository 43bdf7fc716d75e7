"""What the header of every page shows and switches ("Шапка" in the manual).

- `GET /header/state`: the statistics panel (today's calls by category, from the
  database, for the local day; callers waiting per queue, from the engine), the
  user's phone, the "accept queue calls" switch, a pending bind code, unread chat;
- `POST /header/accept` `{"accepting": bool}`: the switch;
- `POST /header/bind`: a one-time code; the user dials `1*NNNNN` on the phone in front
  of them, the engine binds it and publishes `presence`, and the header reloads;
- `POST /header/unbind`: free the phone.
Without an engine (pages alone) the binding and the switch are written to the
database directly; the next engine reads them there.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, ConfigDict
from starlette.concurrency import run_in_threadpool

from ast_pbx.errors import AstPbxError
from ast_pbx.storage import reporting
from ast_pbx.storage.chat import ChatStore
from ast_pbx.storage.operators import CODE_TTL, OperatorRecord, OperatorStore
from ast_pbx.web.context import ROLE_TITLES, SignedIn, WebContext, WebUser, context_of, csrf

router = APIRouter(prefix="/header")


class AcceptIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    accepting: bool


@router.get("/state")
async def state(request: Request, user: WebUser = SignedIn) -> dict[str, Any]:
    context = context_of(request)
    now = context.clock()
    operator = await operator_of(context, user.login)
    traffic, unread = await run_in_threadpool(_read, context, user.login, now)
    waiting = context.engine.queues.waiting() if context.engine is not None else {}
    code = None
    if operator is not None and operator.bind_code and operator.code_expires_at:
        code = operator.bind_code if operator.code_expires_at > now else None
    return {
        "user": {
            "login": user.login,
            "name": user.name,
            "role": user.role,
            "role_title": ROLE_TITLES[user.role],
        },
        "engine": context.engine is not None,
        "phone": operator.phone if operator is not None else None,
        "accepting": operator.accepting if operator is not None else True,
        "bind_code": None if code is None else f"1*{code}",
        "stats": {
            "received": traffic.received,
            "ivr": traffic.ivr_only,
            "operators": traffic.operators,
            "dialer": traffic.dialer,
        },
        "queues": [
            {"number": queue.number, "name": queue.name, "waiting": waiting.get(queue.number, 0)}
            for queue in context.config().queues
        ],
        "unread": unread,
    }


@router.post("/accept", dependencies=[Depends(csrf)])
async def accept(request: Request, body: AcceptIn, user: WebUser = SignedIn) -> dict[str, bool]:
    context = context_of(request)
    try:
        if context.engine is not None:
            await context.engine.presence.set_accepting(user.login, body.accepting)
        else:
            await run_in_threadpool(_store(context).set_accepting, user.login, body.accepting)
            context.events.publish("presence", login=user.login)
    except AstPbxError as error:
        raise HTTPException(409, str(error)) from error
    return {"accepting": body.accepting}


@router.post("/bind", dependencies=[Depends(csrf)])
async def bind(request: Request, user: WebUser = SignedIn) -> dict[str, str]:
    context = context_of(request)
    now = context.clock()
    try:
        if context.engine is not None:
            code = await context.engine.presence.new_code(user.login)
        else:
            code = await run_in_threadpool(_store(context).new_code, user.login, now)
            context.events.publish("presence", login=user.login)
    except AstPbxError as error:
        raise HTTPException(409, str(error)) from error
    operator = await operator_of(context, user.login)
    expires = operator.code_expires_at if operator and operator.code_expires_at else None
    return {
        "code": f"1*{code}",
        "expires_at": (expires or now + CODE_TTL).astimezone(context.zone).isoformat(),
    }


@router.post("/unbind", dependencies=[Depends(csrf)])
async def unbind(request: Request, user: WebUser = SignedIn) -> dict[str, None]:
    context = context_of(request)
    try:
        if context.engine is not None:
            await context.engine.presence.unbind(user.login)
        else:
            await run_in_threadpool(_store(context).unbind, user.login)
            context.events.publish("presence", login=user.login)
    except AstPbxError as error:
        raise HTTPException(409, str(error)) from error
    return {"phone": None}


async def operator_of(context: WebContext, login: str) -> OperatorRecord | None:
    """The user's phone, switch and bind code: the engine's view, else the database's."""
    if context.engine is not None:
        return context.engine.presence.operators.get(login)
    return await run_in_threadpool(_store(context).get, login)


def _store(context: WebContext) -> OperatorStore:
    return OperatorStore(context.database)


def _read(context: WebContext, login: str, now: datetime) -> tuple[reporting.DayTraffic, int]:
    zone = context.zone
    day = now.astimezone(zone).date()
    start = datetime.combine(day, time(), tzinfo=zone)
    end = datetime.combine(day + timedelta(days=1), time(), tzinfo=zone)
    (traffic,) = reporting.traffic(context.database, start, end, zone)
    return traffic, ChatStore(context.database).unread(login).total
