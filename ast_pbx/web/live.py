"""`GET /events`: the live events of the engine as Server-Sent Events, per user.

Each open page keeps one `EventSource('/events')`; every event of the bus it may see
comes as `event: <type>` and `data: <json>` (the event's fields, `type` included). What
a user sees (`visible`):
- `ringing`, `answered`: only the phone bound to them — the caller pops up on their page;
- `calls`: managers and admins (the active-calls page);
- `queues`, `callbacks`: everyone (the statistics panel, the callbacks list);
- `presence`: everyone when it names nobody, else that user and the managers;
- `interactions`: the operator it names, and the managers;
- `chat`: the sender and the recipient of a message, everyone for a broadcast; a
  `read` of the chat only its reader;
- any other type: managers and admins.
A `: ping` comment every `PING` seconds keeps proxies from closing the stream and ends
it when the user was removed from the config; `retry: 2000` makes the browser reconnect
after two seconds when it drops (the page then reloads its state).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from ast_pbx.engine.events import Bus
from ast_pbx.web.context import SignedIn, WebUser, context_of, session_user

PING = 15.0  # seconds between keep-alive comments
RETRY_MS = 2000
CLOSING = "_closing"  # the bus event that ends every stream (the server stops)

router = APIRouter()


class Live:
    """The streams' switch: `close()` ends them, so that the server can stop (an open
    stream would hold it for ever)."""

    def __init__(self) -> None:
        self.closed = False
        self._buses: set[Bus] = set()

    def close(self) -> None:
        self.closed = True
        for bus in self._buses:
            bus.publish(CLOSING)

    def watch(self, bus: Bus) -> None:
        self._buses.add(bus)


def visible(event: dict[str, Any], user: WebUser, phone: str | None) -> bool:
    """Whether `user`, bound to `phone` (or None), sees `event`."""
    audience = AUDIENCES.get(str(event.get("type")))
    return audience(event, user, phone) if audience is not None else user.can("manager")


def _own_phone(event: dict[str, Any], user: WebUser, phone: str | None) -> bool:
    return phone is not None and event.get("phone") == phone


def _everyone(event: dict[str, Any], user: WebUser, phone: str | None) -> bool:
    return True


def _presence(event: dict[str, Any], user: WebUser, phone: str | None) -> bool:
    login = event.get("login")
    return login is None or login == user.login or user.can("manager")


def _named_operator(event: dict[str, Any], user: WebUser, phone: str | None) -> bool:
    return event.get("operator") == user.login or user.can("manager")


def _chat(event: dict[str, Any], user: WebUser, phone: str | None) -> bool:
    if event.get("action") == "read":
        return event.get("login") == user.login
    recipient = event.get("recipient")
    return recipient is None or user.login in (event.get("sender"), recipient)


Audience = Callable[[dict[str, Any], WebUser, str | None], bool]
# Who sees each type of event; other types: managers and admins.
AUDIENCES: dict[str, Audience] = {
    "ringing": _own_phone,
    "answered": _own_phone,
    "calls": lambda event, user, phone: user.can("manager"),
    "queues": _everyone,
    "callbacks": _everyone,
    "presence": _presence,
    "interactions": _named_operator,  # a history entry made for an operator's call
    "chat": _chat,
}


def frame(event: dict[str, Any]) -> str:
    """One event in the SSE format."""
    data = json.dumps(event, ensure_ascii=False, default=str, separators=(",", ":"))
    return f"event: {event.get('type', 'message')}\ndata: {data}\n\n"


async def stream(
    bus: Bus,
    user: WebUser,
    phone: Callable[[], str | None],
    *,
    still_signed_in: Callable[[], bool] = lambda: True,
    live: Live | None = None,
    ping: float = PING,
) -> AsyncIterator[str]:
    """The frames for `user` until the server closes or the user is gone."""
    with bus.subscribe() as queue:
        yield f"retry: {RETRY_MS}\n\n"
        while live is None or not live.closed:
            try:
                event = await asyncio.wait_for(queue.get(), ping)
            except TimeoutError:
                if not still_signed_in():
                    return
                yield ": ping\n\n"
                continue
            if event.get("type") == CLOSING:
                return
            if visible(event, user, phone()):
                yield frame(event)


@router.get("/events")
async def events(request: Request, user: WebUser = SignedIn) -> Any:
    context = context_of(request)
    live: Live = request.app.state.live
    bus = context.events
    live.watch(bus)

    def phone() -> str | None:
        if context.engine is None:
            return None
        operator = context.engine.presence.operators.get(user.login)
        return None if operator is None else operator.phone

    frames = stream(
        bus,
        user,
        phone,
        still_signed_in=lambda: session_user(request) is not None,
        live=live,
        ping=PING,
    )
    return StreamingResponse(
        frames,
        media_type="text/event-stream",
        headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
    )
