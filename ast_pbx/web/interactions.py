"""The interaction history on the operator's pages, and its automatic entries.

- `start_interactions(engine, database, directory)`: when an operator picks up a call
  (the engine's `answered` event), an entry is added to the history of the caller's
  number: direction "in", the caller's name when the directory finds exactly one, the
  operator bound to the phone that answered, the call's id (one entry per call).
- What the operator form and the callbacks form share: the directory of the current
  config (`page_directory`), the history pane (`history_view`), who may edit an entry
  (`may_edit`), numbers as typed (`clean_phone`), times in the system timezone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, tzinfo
from typing import TYPE_CHECKING, Any, Protocol

from fastapi import HTTPException, Request

from ast_pbx.config.model import Directory
from ast_pbx.core.scenarios import Answer
from ast_pbx.engine.directory import DirectoryError, Row, SqlDirectory
from ast_pbx.storage.db import Database
from ast_pbx.storage.interactions import InteractionRecord, InteractionStore
from ast_pbx.web.context import WebContext, WebUser, context_of

if TYPE_CHECKING:
    from ast_pbx.engine.engine import Engine

log = logging.getLogger("astpbx.interactions")

# Lengths the forms accept (the inputs' maxlength; longer values are refused).
PHONE_MAX = 32
NAME_MAX = 100
CASE_MAX = 64
GROUP_MAX = 128
CALLER_MAX = 256
TEXT_MAX = 4000
HISTORY_LIMIT = 50
_SEEN_CALLS = 1000  # call ids remembered as done, for calls whose pick-up repeats

_PHONE = re.compile(r"\+?[0-9*#]{1,32}")
_PHONE_NOISE = re.compile(r"[\s()\-.]")
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
DIRECTIONS = {"in": "Входящий", "out": "Исходящий"}


class CallerNames(Protocol):
    async def lookup_async(self, scenario: str, key: str) -> Answer: ...


# Automatic entries


def start_interactions(
    engine: Engine, database: Database, directory: CallerNames | None = None
) -> asyncio.Task[None]:
    """Follow `engine.events` and add a history entry for every call an operator picks
    up; `directory` names the caller (default: the engine's). Call it in the running
    loop; cancel the task to stop. Subscribes at once: no pick-up after the call is
    missed."""
    store = InteractionStore(database)
    names = directory if directory is not None else engine.directory
    subscription = engine.events.subscribe(lossless=True)  # an entry per pick-up, always
    events = subscription.__enter__()
    seen: OrderedDict[str, None] = OrderedDict()
    pending: set[asyncio.Task[Any]] = set()

    async def follow() -> None:
        while True:
            event = await events.get()
            if event.get("type") != "answered":
                continue
            call = str(event.get("call") or "")
            if not call or call in seen:
                continue
            seen[call] = None
            if len(seen) > _SEEN_CALLS:
                seen.popitem(last=False)
            task = asyncio.create_task(record_pick_up(engine, store, names, event))
            pending.add(task)
            task.add_done_callback(pending.discard)

    task = asyncio.create_task(follow(), name="interactions")
    task.add_done_callback(lambda _: subscription.__exit__(None, None, None))
    return task


async def record_pick_up(
    engine: Engine, store: InteractionStore, directory: CallerNames, event: Mapping[str, Any]
) -> InteractionRecord | None:
    """The entry for one `answered` event {phone, caller, call}, made once per call; None
    for a call from an internal phone or without a caller number."""
    call, phone = str(event.get("call") or ""), str(event.get("phone") or "")
    caller = str(event.get("caller") or "")
    if not call or not caller:
        return None
    if any(p.number == caller for p in engine.current.config.phones):
        return None  # a colleague calling: not a citizen's history
    bound = engine.presence.operator_of(phone) if phone else None
    operator = bound.login if bound is not None else None
    name = await caller_name(directory, caller)
    try:
        record, new = await asyncio.to_thread(
            store.add_for_call,
            caller,
            engine.clock(),
            call,
            caller_name=name,
            operator=operator,
        )
    except Exception:
        log.exception("call %s: the history entry of %s was not stored", call, caller)
        return None
    if new:
        log.info("call %s: history entry %s for %s (%s)", call, record.id, caller, operator)
        engine.events.publish("interactions", phone=caller, id=record.id, operator=operator)
    return record


async def caller_name(directory: CallerNames, phone: str) -> str | None:
    """The one name the directory has for `phone`, or None (none, several, failing)."""
    try:
        answer = await directory.lookup_async("caller_name", phone)
    except Exception as error:
        log.warning("caller_name for %s failed: %s", phone, error)
        return None
    return answer if isinstance(answer, str) and answer else None


# The directory of the pages


def page_directory(request: Request) -> SqlDirectory:
    """A directory on the current config's `directory:`, made again when it changes."""
    config = context_of(request).config().directory
    key = _directory_key(config)
    state = request.app.state
    cached: tuple[tuple[Any, ...], SqlDirectory] | None = getattr(state, "operator_directory", None)
    if cached is not None and cached[0] == key:
        return cached[1]
    directory = SqlDirectory(config)
    state.operator_directory = (key, directory)
    if cached is not None:
        cached[1].close()
    return directory


def _directory_key(directory: Directory) -> tuple[Any, ...]:
    return (directory.url, tuple(sorted(directory.queries.items())))


@dataclass
class Found:
    """What a form query gave: rows, or why there are none."""

    rows: list[Row] = field(default_factory=list)
    configured: bool = True
    error: str | None = None


async def ask(directory: SqlDirectory, name: str, parameters: Mapping[str, Any]) -> Found:
    """Query `name` in a worker thread; a failure becomes the error the page shows."""
    try:
        rows = await asyncio.to_thread(directory.rows, name, parameters)
    except DirectoryError as error:
        return Found(error=f"ИС МФЦ: {error}")
    except Exception as error:  # a URL SQLAlchemy cannot even connect with
        log.error("directory query %s: %s", name, error)
        return Found(error=f"ИС МФЦ недоступна: {type(error).__name__}")
    if rows is None:
        return Found(configured=False)
    return Found(rows)


# Values as the pages show and take them


def clean_phone(text: str) -> str:
    """A number as typed (`+7 (989) 612-85-55`) as the directory keeps it; 400 if it is
    not a number."""
    phone = _PHONE_NOISE.sub("", text.strip())
    if phone and not _PHONE.fullmatch(phone):
        raise HTTPException(400, "Неверный номер телефона")
    return phone


def zone(context: WebContext) -> tzinfo:
    return context.config().system.zone()


def local(at: datetime | None, where: tzinfo) -> str:
    """A time as the manual shows it: 11.02.2020 11:05:51 in the system timezone."""
    return "" if at is None else at.astimezone(where).strftime("%d.%m.%Y %H:%M:%S")


def ru_date(value: str) -> str:
    """An ISO date (1973-09-19, or the date of a timestamp) as 19.09.1973; other text
    as it is."""
    head = value[:10]
    if _ISO_DATE.fullmatch(head) and (len(value) == 10 or value[10] in "T "):
        with contextlib.suppress(ValueError):
            return date.fromisoformat(head).strftime("%d.%m.%Y")
    return value


def is_fetch(request: Request) -> bool:
    """Asked by operator.js (which wants a fragment) rather than by a plain form."""
    return request.headers.get("x-requested-with") == "fetch"


async def form_data(request: Request) -> dict[str, str]:
    """The fields of a POST: a JSON object (operator.js) or a form."""
    if request.headers.get("content-type", "").startswith("application/json"):
        try:
            body = await request.json()
        except ValueError as error:
            raise HTTPException(400, "Неверный запрос: не JSON") from error
        if not isinstance(body, dict):
            raise HTTPException(400, "Неверный запрос: ожидался объект JSON")
        return {str(k): "" if v is None else str(v) for k, v in body.items()}
    form = await request.form()
    return {k: v for k, v in form.items() if isinstance(v, str)}


def text_field(data: Mapping[str, str], key: str, limit: int, label: str) -> str:
    """A field's text, trimmed; 400 when longer than `limit`."""
    value = data.get(key, "").strip()
    if len(value) > limit:
        raise HTTPException(400, f"«{label}»: не более {limit} знаков")
    return value


# The history pane


def may_edit(user: WebUser, record: InteractionRecord) -> bool:
    """The entry's operator, anyone for an entry nobody handled yet, or a manager."""
    return record.operator in (None, user.login) or user.can("manager")


@dataclass(frozen=True)
class EntryView:
    id: int
    when: str
    direction: str
    caller_name: str
    question_group: str
    question: str
    answer: str
    operator: str
    editable: bool


@dataclass
class HistoryView:
    phone: str
    entries: list[EntryView] = field(default_factory=list)
    error: str | None = None


def entry_view(
    record: InteractionRecord, user: WebUser, where: tzinfo, names: Mapping[str, str]
) -> EntryView:
    operator = record.operator or ""
    return EntryView(
        id=record.id,
        when=local(record.at, where),
        direction=DIRECTIONS.get(record.direction, record.direction),
        caller_name=record.caller_name or "",
        question_group=record.question_group or "",
        question=record.question or "",
        answer=record.answer or "",
        operator=names.get(operator, operator),
        editable=may_edit(user, record),
    )


async def history_view(request: Request, user: WebUser, phone: str) -> HistoryView:
    """The history of `phone`, newest first, as the pane shows it."""
    context = context_of(request)
    store = InteractionStore(context.database)
    try:
        records = await asyncio.to_thread(store.for_phone, phone, HISTORY_LIMIT)
    except Exception:
        log.exception("the history of %s could not be read", phone)
        return HistoryView(phone, error="История недоступна: ошибка базы данных")
    config = context.config()
    names = {u.login: u.name or u.login for u in config.users}
    where = config.system.zone()
    return HistoryView(phone, [entry_view(r, user, where, names) for r in records])
