"""The header of every page (statistics, phone binding, the queue switch) and the live
event stream `/events` with what each user may see of it."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any

import pytest
from fastapi import FastAPI

from ast_pbx.engine.events import Bus
from ast_pbx.errors import AstPbxError
from ast_pbx.storage.calls import CallLog
from ast_pbx.storage.db import Database
from ast_pbx.storage.models import DialerAttempt, DialerTask
from ast_pbx.storage.operators import OperatorStore
from ast_pbx.web import live
from ast_pbx.web.context import WebUser
from tests.storage_fixtures import (  # noqa: F401
    database_fixture,
    postgres_url_fixture,
    url_fixture,
)
from tests.web_fixtures import T0, Clock, FakeEngine, headers, make_app, signed_in

# The header without an engine: the database


def test_state_of_a_fresh_operator(database: Database) -> None:
    state = signed_in(make_app(database), "oper").get("/header/state").json()
    assert state == {
        "user": {
            "login": "oper",
            "name": "Оператор Ольга",
            "role": "operator",
            "role_title": "Пользователь",
        },
        "engine": False,
        "phone": None,
        "accepting": True,
        "bind_code": None,
        "stats": {"received": 0, "ivr": 0, "operators": 0, "dialer": 0},
        "queues": [{"number": "92000", "name": "Консультации", "waiting": 0}],
        "unread": 0,
    }


def test_todays_calls_by_category_in_the_local_day(database: Database) -> None:
    calls = CallLog(database)
    # 10:00 MSK is "now"; 23:30 MSK the day before is another day, 00:30 MSK is today.
    moments = {
        "ivr": T0,
        "operator": T0 - timedelta(hours=9, minutes=30),  # 00:30 MSK
        "yesterday": T0 - timedelta(hours=10, minutes=30),  # 23:30 MSK the day before
    }
    for name, at in moments.items():
        calls.started(name, "+79001112233", "90000", at=at)
    calls.ended("ivr", at=T0 + timedelta(minutes=1), outcome="hangup", reason="caller hung up")
    calls.ended("operator", at=T0, outcome="phone 1001", reason="caller hung up")
    with database.session() as session:
        task = DialerTask(number="+79001112233", text="Ваши документы готовы", enqueued_at=T0)
        session.add(task)
        session.flush()
        session.add(DialerAttempt(task_id=task.id, number=task.number, started_at=T0))
    state = signed_in(make_app(database), "oper").get("/header/state").json()
    assert state["stats"] == {"received": 2, "ivr": 1, "operators": 1, "dialer": 1}


def test_bind_accept_and_unbind_go_to_the_database(database: Database) -> None:
    clock = Clock()
    app = make_app(database, clock=clock)
    oper = signed_in(app, "oper")
    with app.state.web.events.subscribe() as events:
        bound = oper.post("/header/bind", headers=headers(oper))
        assert bound.status_code == 200
        code = bound.json()["code"]
        assert code.startswith("1*") and len(code) == 7 and code[2:].isdigit()
        assert bound.json()["expires_at"] == "2026-03-02T10:10:00+03:00"
        assert events.get_nowait() == {"type": "presence", "login": "oper"}
    assert oper.get("/header/state").json()["bind_code"] == code
    store = OperatorStore(database)
    assert store.bind(code[2:], "1001", clock()) == "oper"
    state = oper.get("/header/state").json()
    assert state["phone"] == "1001" and state["bind_code"] is None
    off = oper.post("/header/accept", json={"accepting": False}, headers=headers(oper))
    assert off.json() == {"accepting": False}
    assert oper.get("/header/state").json()["accepting"] is False
    assert store.get("oper").accepting is False  # type: ignore[union-attr]
    assert oper.post("/header/unbind", headers=headers(oper)).json() == {"phone": None}
    assert oper.get("/header/state").json()["phone"] is None


def test_an_expired_code_is_not_shown(database: Database) -> None:
    clock = Clock()
    app = make_app(database, clock=clock)
    oper = signed_in(app, "oper")
    oper.post("/header/bind", headers=headers(oper))
    clock.now += timedelta(minutes=11)
    assert oper.get("/header/state").json()["bind_code"] is None


def test_accept_takes_a_boolean(database: Database) -> None:
    oper = signed_in(make_app(database), "oper")
    for body in ({}, {"accepting": "maybe"}, {"accepting": True, "x": 1}):
        response = oper.post("/header/accept", json=body, headers=headers(oper))
        assert response.status_code == 422, body


# The header with an engine


@pytest.fixture
def engine() -> FakeEngine:
    return FakeEngine(Clock())


@pytest.fixture
def app(database: Database, engine: FakeEngine) -> FastAPI:
    return make_app(database, clock=engine.presence.clock, engine=engine)


def test_the_engine_binds_the_code_the_header_shows(app: FastAPI, engine: FakeEngine) -> None:
    oper = signed_in(app, "oper")
    code = oper.post("/header/bind", headers=headers(oper)).json()["code"]
    assert code == "1*12345"
    state = oper.get("/header/state").json()
    assert state["engine"] is True
    assert state["bind_code"] == "1*12345"
    asyncio.run(engine.presence.bind("12345", "1001"))
    state = oper.get("/header/state").json()
    assert (state["phone"], state["bind_code"]) == ("1001", None)
    oper.post("/header/unbind", headers=headers(oper))
    assert engine.presence.operators["oper"].phone is None


def test_the_switch_goes_to_the_engine(app: FastAPI, engine: FakeEngine) -> None:
    oper = signed_in(app, "oper")
    for accepting in (False, True, False):
        oper.post("/header/accept", json={"accepting": accepting}, headers=headers(oper))
        assert engine.presence.operators["oper"].accepting is accepting
        assert oper.get("/header/state").json()["accepting"] is accepting


def test_callers_waiting_come_from_the_engine(app: FastAPI, engine: FakeEngine) -> None:
    engine.queues.counts = {"92000": 3, "93000": 1}
    queues = signed_in(app, "boss").get("/header/state").json()["queues"]
    assert queues == [{"number": "92000", "name": "Консультации", "waiting": 3}]


def test_an_engine_refusal_is_a_409(
    app: FastAPI, engine: FakeEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def refuse(login: str) -> str:
        raise AstPbxError("the engine keeps no database")

    monkeypatch.setattr(engine.presence, "new_code", refuse)
    oper = signed_in(app, "oper")
    response = oper.post("/header/bind", headers=headers(oper))
    assert response.status_code == 409
    assert response.json() == {"error": "the engine keeps no database"}


# What each user sees of the live events

OPERATOR = WebUser("oper", "operator", "Ольга")
MANAGER = WebUser("boss", "manager", "Мария")


@pytest.mark.parametrize(
    ("event", "operator", "manager"),
    [
        ({"type": "ringing", "phone": "1001", "caller": "+7900"}, True, False),
        ({"type": "ringing", "phone": "1002", "caller": "+7900"}, False, False),
        ({"type": "answered", "phone": "1001", "caller": "+7900"}, True, False),
        ({"type": "calls"}, False, True),
        ({"type": "queues", "waiting": {"92000": 1}}, True, True),
        ({"type": "callbacks"}, True, True),
        ({"type": "presence"}, True, True),
        ({"type": "presence", "login": "oper"}, True, True),
        ({"type": "presence", "login": "oper2"}, False, True),
        ({"type": "interactions", "operator": "oper", "phone": "+7900"}, True, True),
        ({"type": "interactions", "operator": "oper2", "phone": "+7900"}, False, True),
        ({"type": "chat", "action": "message", "sender": "boss", "recipient": "oper"}, True, True),
        (
            {"type": "chat", "action": "message", "sender": "oper2", "recipient": "root"},
            False,
            False,
        ),
        ({"type": "chat", "action": "message", "sender": "root", "recipient": None}, True, True),
        ({"type": "chat", "action": "read", "login": "oper"}, True, False),
        ({"type": "something-new"}, False, True),
    ],
)
def test_visible(event: dict[str, Any], operator: bool, manager: bool) -> None:
    assert live.visible(event, OPERATOR, "1001") is operator
    assert live.visible(event, MANAGER, None) is manager


def test_frames_are_sse() -> None:
    frame = live.frame({"type": "chat", "text": "строка\nещё"})
    assert frame == 'event: chat\ndata: {"type":"chat","text":"строка\\nещё"}\n\n'


def test_the_stream_pings_and_ends_when_the_user_is_gone() -> None:
    async def scenario() -> list[str]:
        bus = Bus()
        signed = iter([True, False])
        frames = live.stream(
            bus, OPERATOR, lambda: None, still_signed_in=lambda: next(signed), ping=0.01
        )
        return [frame async for frame in frames]

    assert asyncio.run(scenario()) == ["retry: 2000\n\n", ": ping\n\n"]


class EventStream:
    """`GET /events` through the app as a browser holds it open, in one event loop."""

    def __init__(self, app: FastAPI, cookie: str) -> None:
        self.app = app
        self.cookie = cookie
        self.messages: list[dict[str, Any]] = []
        self.gone = asyncio.Event()
        self.requested = False

    async def receive(self) -> dict[str, Any]:
        if not self.requested:
            self.requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await self.gone.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        self.messages.append(message)

    def scope(self) -> dict[str, Any]:
        return {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": "/events",
            "raw_path": b"/events",
            "query_string": b"",
            "root_path": "",
            "headers": [
                (b"host", b"testserver"),
                (b"accept", b"text/event-stream"),
                (b"cookie", f"astpbx_session={self.cookie}".encode()),
            ],
            "client": ("127.0.0.1", 50000),
            "server": ("testserver", 80),
        }

    def start(self) -> asyncio.Task[None]:
        return asyncio.create_task(self.app(self.scope(), self.receive, self.send))

    async def started(self) -> None:
        for _ in range(200):
            if any(m.get("body") for m in self.messages):
                return
            await asyncio.sleep(0.01)
        raise AssertionError("the stream did not start")

    def text(self) -> str:
        return b"".join(m.get("body", b"") for m in self.messages).decode()

    def events(self) -> list[tuple[str, dict[str, Any]]]:
        found = []
        for block in self.text().split("\n\n"):
            lines = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
            if "event" in lines:
                found.append((lines["event"], json.loads(lines["data"])))
        return found


def _cookie(app: FastAPI, login: str) -> str:
    cookie = signed_in(app, login).cookies.get("astpbx_session")
    assert cookie
    return cookie


def test_the_event_stream_of_an_operator(app: FastAPI, engine: FakeEngine) -> None:
    asyncio.run(engine.presence.new_code("oper"))
    asyncio.run(engine.presence.bind("12345", "1001"))
    stream = EventStream(app, _cookie(app, "oper"))

    async def scenario() -> None:
        task = stream.start()
        await stream.started()
        bus = engine.events
        bus.publish("ringing", phone="1002", caller="+79000000002", call="c2")
        bus.publish("ringing", phone="1001", caller="+79000000001", call="c1")
        bus.publish("calls")
        bus.publish("queues", waiting={"92000": 1})
        bus.publish("chat", action="message", sender="root", recipient="boss", text="x")
        await asyncio.sleep(0.05)
        stream.gone.set()
        await asyncio.wait_for(task, 5)
        assert bus.subscribers == 0

    asyncio.run(scenario())
    start = stream.messages[0]
    assert start["status"] == 200
    sent = dict(start["headers"])
    assert sent[b"content-type"].startswith(b"text/event-stream")
    assert sent[b"cache-control"] == b"no-cache"
    assert stream.text().startswith("retry: 2000\n\n")
    assert stream.events() == [
        ("ringing", {"type": "ringing", "phone": "1001", "caller": "+79000000001", "call": "c1"}),
        ("queues", {"type": "queues", "waiting": {"92000": 1}}),
    ]


def test_the_event_stream_of_a_manager_pings(
    app: FastAPI, engine: FakeEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(live, "PING", 0.02)
    stream = EventStream(app, _cookie(app, "boss"))

    async def scenario() -> None:
        task = stream.start()
        await stream.started()
        engine.events.publish("calls")
        await asyncio.sleep(0.1)
        stream.gone.set()
        await asyncio.wait_for(task, 5)

    asyncio.run(scenario())
    assert stream.events() == [("calls", {"type": "calls"})]
    assert ": ping\n\n" in stream.text()


def test_closing_ends_every_stream(app: FastAPI, engine: FakeEngine) -> None:
    stream = EventStream(app, _cookie(app, "oper"))

    async def scenario() -> None:
        task = stream.start()
        await stream.started()
        app.state.live.close()
        await asyncio.wait_for(task, 5)  # no disconnect needed

    asyncio.run(scenario())
