"""The chat: its store on SQLite and PostgreSQL, and its routes (send personal and
broadcast messages, history, unread counts, reading, the live `chat` events)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from fastapi import FastAPI

from ast_pbx.storage.chat import ChatStore
from ast_pbx.storage.db import Database
from tests.storage_fixtures import (  # noqa: F401
    database_fixture,
    postgres_url_fixture,
    url_fixture,
)
from tests.web_fixtures import T0, headers, make_app, signed_in

# The store


def test_personal_messages_and_their_history(database: Database) -> None:
    chat = ChatStore(database)
    first = chat.send("oper", "boss", "Можно перерыв?", T0)
    second = chat.send("boss", "oper", "Да, 10 минут", T0 + timedelta(seconds=30))
    chat.send("oper2", "boss", "Другой разговор", T0 + timedelta(minutes=1))
    chat.send("boss", None, "Всем: собрание в 12", T0 + timedelta(minutes=2))
    assert first.sent_at == T0 and first.read_at is None and not first.broadcast
    both_ways = chat.history("oper", "boss")
    assert [m.id for m in both_ways] == [first.id, second.id]
    assert chat.history("boss", "oper") == both_ways
    assert [m.text for m in chat.history("oper", None)] == ["Всем: собрание в 12"]
    assert chat.history("oper", "oper2") == []


def test_history_pages_back_from_the_newest(database: Database) -> None:
    chat = ChatStore(database)
    ids = [chat.send("a", "b", str(n), T0 + timedelta(seconds=n)).id for n in range(5)]
    newest = chat.history("a", "b", limit=2)
    assert [m.id for m in newest] == ids[3:]
    older = chat.history("a", "b", limit=2, before=newest[0].id)
    assert [m.id for m in older] == ids[1:3]


def test_unread_counts_personal_by_sender_and_broadcasts(database: Database) -> None:
    chat = ChatStore(database)
    chat.send("boss", "oper", "1", T0)
    chat.send("boss", "oper", "2", T0)
    chat.send("oper2", "oper", "3", T0)
    chat.send("oper", "boss", "to boss", T0)
    chat.send("boss", None, "всем", T0)
    chat.send("oper", None, "своё", T0)  # one's own broadcast is never unread
    unread = chat.unread("oper")
    assert dict(unread.personal) == {"boss": 2, "oper2": 1}
    assert unread.broadcasts == 1
    assert unread.total == 4
    assert chat.unread("boss").total == 2  # "to boss" and oper's broadcast
    assert chat.unread("nobody").broadcasts == 2


def test_reading_a_conversation_up_to_a_message(database: Database) -> None:
    chat = ChatStore(database)
    first = chat.send("boss", "oper", "1", T0)
    chat.send("boss", "oper", "2", T0)
    assert chat.mark_read("oper", "boss", T0 + timedelta(minutes=1), up_to=first.id) == 1
    assert dict(chat.unread("oper").personal) == {"boss": 1}
    assert chat.history("oper", "boss")[0].read_at == T0 + timedelta(minutes=1)
    assert chat.mark_read("oper", "boss", T0) == 1
    assert chat.unread("oper").total == 0
    assert chat.mark_read("boss", "oper", T0) == 0  # one's own messages stay as they are


def test_reading_broadcasts_moves_forward_only(database: Database) -> None:
    chat = ChatStore(database)
    one = chat.send("boss", None, "1", T0)
    two = chat.send("boss", None, "2", T0)
    chat.mark_read("oper", None, T0, up_to=one.id)
    assert chat.unread("oper").broadcasts == 1
    chat.mark_read("oper", None, T0)
    assert chat.unread("oper").broadcasts == 0
    chat.mark_read("oper", None, T0, up_to=one.id)  # a stale page
    assert chat.unread("oper").broadcasts == 0
    chat.send("root", None, "3", T0)
    assert chat.unread("oper").broadcasts == 1
    chat.mark_read("oper", None, T0, up_to=two.id + 100)  # beyond the newest: the newest
    assert chat.unread("oper").broadcasts == 0


def test_naive_times_and_bad_logins_are_refused(database: Database) -> None:
    chat = ChatStore(database)
    with pytest.raises(ValueError, match="naive"):
        chat.send("a", "b", "x", T0.replace(tzinfo=None))
    with pytest.raises(ValueError, match="login"):
        chat.send("a" * 65, "b", "x", T0)


# The routes


@pytest.fixture
def app(database: Database) -> FastAPI:
    return make_app(database)


def _events(app: FastAPI) -> Any:
    return app.state.web.events.subscribe()


def test_a_personal_message_reaches_its_recipient(app: FastAPI) -> None:
    oper, boss = signed_in(app, "oper"), signed_in(app, "boss")
    with _events(app) as events:
        sent = oper.post(
            "/chat/send", json={"to": "boss", "text": "  Можно перерыв?  "}, headers=headers(oper)
        )
        assert sent.status_code == 201, sent.text
        message = sent.json()
        assert message["text"] == "Можно перерыв?"
        assert message["sender"] == "oper" and message["recipient"] == "boss"
        assert message["sender_name"] == "Оператор Ольга"
        assert message["sent_at"] == "2026-03-02T10:00:00+03:00"
        assert message["time"] == "02.03.2026 10:00"
        event = events.get_nowait()
        assert event == {"type": "chat", "action": "message", **message}
    assert boss.get("/chat/unread").json() == {
        "total": 1,
        "personal": {"oper": 1},
        "broadcasts": 0,
    }
    assert boss.get("/header/state").json()["unread"] == 1
    history = boss.get("/chat/messages", params={"with": "oper"}).json()
    assert [m["id"] for m in history["messages"]] == [message["id"]]
    read = boss.post(
        "/chat/read", json={"with": "oper", "up_to": message["id"]}, headers=headers(boss)
    )
    assert read.json() == {"unread": 0}
    assert boss.get("/chat/unread").json()["total"] == 0
    assert oper.get("/chat/unread").json()["total"] == 0


def test_a_broadcast_reaches_everyone_but_its_sender(app: FastAPI) -> None:
    root = signed_in(app, "root")
    sent = root.post("/chat/send", json={"to": "", "text": "Собрание в 12"}, headers=headers(root))
    assert sent.status_code == 201
    assert sent.json()["recipient"] is None
    assert root.get("/chat/unread").json()["total"] == 0
    for login in ("oper", "oper2", "boss"):
        reader = signed_in(app, login)
        assert reader.get("/chat/unread").json()["broadcasts"] == 1
        messages = reader.get("/chat/messages").json()["messages"]
        assert [m["text"] for m in messages] == ["Собрание в 12"]
        reader.post("/chat/read", json={"with": ""}, headers=headers(reader))
        assert reader.get("/chat/unread").json()["total"] == 0


def test_the_chat_page_lists_the_others_with_unread_counts(app: FastAPI) -> None:
    boss = signed_in(app, "boss")
    boss.post("/chat/send", json={"to": "oper", "text": "Привет"}, headers=headers(boss))
    page = signed_in(app, "oper").get("/chat")
    assert page.status_code == 200
    html = page.text
    assert 'data-login="boss"' in html and 'data-login="root"' in html
    assert 'data-login="oper"' not in html  # not oneself
    assert "Всем" in html
    assert "Менеджер Мария" in html


def test_sending_to_nobody_or_oneself_or_nothing_is_refused(app: FastAPI) -> None:
    oper = signed_in(app, "oper")
    send = {"headers": headers(oper)}
    assert oper.post("/chat/send", json={"to": "ghost", "text": "x"}, **send).status_code == 404
    assert oper.post("/chat/send", json={"to": "oper", "text": "x"}, **send).status_code == 404
    assert oper.post("/chat/send", json={"to": "boss", "text": "   "}, **send).status_code == 422
    assert oper.post("/chat/send", json={"to": "boss", "text": ""}, **send).status_code == 422
    too_long = {"to": "boss", "text": "x" * 2001}
    assert oper.post("/chat/send", json=too_long, **send).status_code == 422
    assert oper.get("/chat/messages", params={"with": "ghost"}).status_code == 404


def test_the_messages_are_the_users_own_conversation(app: FastAPI) -> None:
    oper, oper2 = signed_in(app, "oper"), signed_in(app, "oper2")
    oper.post("/chat/send", json={"to": "boss", "text": "секрет"}, headers=headers(oper))
    # oper2 asks for "their conversation with boss": oper's message is not in it.
    assert oper2.get("/chat/messages", params={"with": "boss"}).json()["messages"] == []
    assert oper2.get("/chat/messages", params={"with": "oper"}).json()["messages"] == []


def test_reading_publishes_a_chat_read_event(app: FastAPI) -> None:
    boss, oper = signed_in(app, "boss"), signed_in(app, "oper")
    boss.post("/chat/send", json={"to": "oper", "text": "1"}, headers=headers(boss))
    with _events(app) as events:
        oper.post("/chat/read", json={"with": "boss"}, headers=headers(oper))
        assert events.get_nowait() == {
            "type": "chat",
            "action": "read",
            "login": "oper",
            "unread": 0,
        }
