"""The chat between signed-in users: personal messages and broadcasts ("Всем").

- `GET /chat`: the page — the users of the config on the left with their unread
  counts, the conversation on the right;
- `GET /chat/messages?with=LOGIN` (empty: the broadcasts): the last messages, oldest
  first; `before=ID` pages back;
- `POST /chat/send` `{"to": LOGIN or "", "text": …}`: send; the message is published
  as a `chat` event (`action: "message"`), so the recipient's page (everyone's, for a
  broadcast) shows it at once;
- `POST /chat/read` `{"with": LOGIN or "", "up_to": ID}`: read up to that message;
  a `chat` event (`action: "read"`) updates the reader's other pages;
- `GET /chat/unread`: unread counts, total and by sender.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from ast_pbx.storage.chat import ChatRecord, ChatStore
from ast_pbx.web.context import (
    ROLE_TITLES,
    SignedIn,
    WebContext,
    WebUser,
    context_of,
    csrf,
    render,
)

router = APIRouter()

MAX_TEXT = 2000


class SendIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    to: str = Field("", max_length=64, description='A login, or "" for everyone.')
    text: str = Field(min_length=1, max_length=MAX_TEXT)


class ReadIn(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    with_: str = Field("", alias="with", max_length=64)
    up_to: int | None = Field(None, ge=0)


@router.get("/chat")
async def chat_page(request: Request, user: WebUser = SignedIn) -> Response:
    context = context_of(request)
    unread = await run_in_threadpool(ChatStore(context.database).unread, user.login)
    contacts = [
        {
            "login": other.login,
            "name": other.name or other.login,
            "role": ROLE_TITLES[other.role],
            "unread": unread.personal.get(other.login, 0),
        }
        for other in context.config().users
        if other.login != user.login
    ]
    return render(
        request,
        "chat.html",
        user,
        contacts=contacts,
        broadcasts_unread=unread.broadcasts,
        max_text=MAX_TEXT,
    )


@router.get("/chat/messages")
async def messages(
    request: Request,
    with_: Annotated[str, Query(alias="with", max_length=64)] = "",
    before: Annotated[int | None, Query(ge=1)] = None,
    user: WebUser = SignedIn,
) -> dict[str, Any]:
    context = context_of(request)
    other = _other(context, user, with_)
    found = await run_in_threadpool(
        ChatStore(context.database).history, user.login, other, before=before
    )
    return {"with": with_, "messages": [message_json(context, m) for m in found]}


@router.post("/chat/send", status_code=201, dependencies=[Depends(csrf)])
async def send(request: Request, body: SendIn, user: WebUser = SignedIn) -> dict[str, Any]:
    context = context_of(request)
    other = _other(context, user, body.to)
    text = body.text.strip()
    if not text:
        raise HTTPException(422, "Пустое сообщение")
    record = await run_in_threadpool(
        ChatStore(context.database).send, user.login, other, text, context.clock()
    )
    message = message_json(context, record)
    context.events.publish("chat", action="message", **message)
    return message


@router.post("/chat/read", dependencies=[Depends(csrf)])
async def read(request: Request, body: ReadIn, user: WebUser = SignedIn) -> dict[str, int]:
    context = context_of(request)
    other = _other(context, user, body.with_)
    store = ChatStore(context.database)

    def mark() -> int:
        store.mark_read(user.login, other, context.clock(), up_to=body.up_to)
        return store.unread(user.login).total

    unread = await run_in_threadpool(mark)
    context.events.publish("chat", action="read", login=user.login, unread=unread)
    return {"unread": unread}


@router.get("/chat/unread")
async def unread(request: Request, user: WebUser = SignedIn) -> dict[str, Any]:
    context = context_of(request)
    found = await run_in_threadpool(ChatStore(context.database).unread, user.login)
    return {"total": found.total, "personal": dict(found.personal), "broadcasts": found.broadcasts}


def message_json(context: WebContext, message: ChatRecord) -> dict[str, Any]:
    names = {u.login: u.name or u.login for u in context.config().users}
    local = message.sent_at.astimezone(context.zone)
    return {
        "id": message.id,
        "sender": message.sender,
        "sender_name": names.get(message.sender, message.sender),
        "recipient": message.recipient,
        "text": message.text,
        "sent_at": local.isoformat(),
        "time": local.strftime("%d.%m.%Y %H:%M"),
    }


def _other(context: WebContext, user: WebUser, login: str) -> str | None:
    """The other side of a conversation: a user of the config, or None (everyone)."""
    if not login:
        return None
    if login == user.login or all(u.login != login for u in context.config().users):
        raise HTTPException(404, f"Нет пользователя {login}")
    return login
