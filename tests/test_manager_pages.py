"""The manager's pages (`ast_pbx.web.pages.manager`) through FastAPI's TestClient, on
SQLite and PostgreSQL: roles, the live table of active calls and listening in, the
call history with marks and recordings (and no way out of the recordings directory),
the six reports as downloads."""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.templating import Jinja2Templates
from jinja2 import ChoiceLoader, DictLoader, Environment, FileSystemLoader, select_autoescape
from openpyxl import load_workbook
from starlette.middleware.sessions import SessionMiddleware

from ast_pbx.config.loader import load
from ast_pbx.engine.monitor import ActiveCall, NoSuchCall
from ast_pbx.reports import REPORTS
from ast_pbx.storage.calls import CallLog
from ast_pbx.storage.db import Database
from ast_pbx.storage.operators import OperatorRecord
from ast_pbx.storage.reporting import mark_recordings_purged
from ast_pbx.web.context import NotSignedIn, WebContext, csrf_token
from ast_pbx.web.pages import manager
from tests.conftest import WriteConfig
from tests.storage_fixtures import (  # noqa: F401
    database_fixture,
    postgres_url_fixture,
    url_fixture,
)

with warnings.catch_warnings():
    # Starlette asks for `httpx2` in place of `httpx`; the client works the same.
    warnings.filterwarnings("ignore", "Using `httpx` with")
    from fastapi.testclient import TestClient

TEMPLATES = Path(manager.__file__).resolve().parents[1] / "templates"
# What the core's base.html provides to pages, and no more: the tests do not depend on it.
BASE = """<!doctype html><html><head><meta name="csrf-token" content="{{ csrf_token }}">
<title>{% block title %}{% endblock %}</title></head>
<body>{% block content %}{% endblock %}{% block scripts %}{% endblock %}</body></html>"""
T0 = datetime(2026, 3, 2, 7, 0, tzinfo=UTC)  # 10:00 in Moscow, the system timezone
USERS = """\
users:
  - {login: olga, role: operator, name: Ольга}
  - {login: maria, role: manager, name: Мария}
  - {login: ivan, role: manager}
  - {login: root, role: admin}
"""
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@dataclass
class FakeMonitor:
    calls: list[ActiveCall]
    listened: list[tuple[str, str, bool]] = field(default_factory=list)

    def active_calls(self) -> list[ActiveCall]:
        return list(self.calls)

    async def listen(self, call: str, phone: str, *, whisper: bool = False) -> str:
        if call not in {c.id for c in self.calls}:
            raise NoSuchCall(f"no active call {call}")
        self.listened.append((call, phone, whisper))
        return f"listen{len(self.listened)}"


@dataclass
class FakePresence:
    operators: dict[str, OperatorRecord]


@dataclass
class FakeEngine:
    monitor: FakeMonitor
    presence: FakePresence


def bound(login: str, phone: str | None) -> OperatorRecord:
    return OperatorRecord(login, phone, True, None, None, T0 if phone else None)


ACTIVE = [
    ActiveCall(
        "1700000000.1", "+79613201234", "90000", None, "VOICE_MENU", T0 - timedelta(seconds=5)
    ),
    ActiveCall(
        "1700000000.2", "+79610000002", "92000", None, "QUEUE", T0 - timedelta(seconds=70), 1
    ),
    ActiveCall("1700000000.3", "+79610000003", "92000", "1001", "TALK", T0 - timedelta(hours=1)),
]


@pytest.fixture
def recordings(tmp_path: Path) -> Path:
    directory = tmp_path / "recordings"
    directory.mkdir()
    return directory


@pytest.fixture
def engine() -> FakeEngine:
    operators = {"maria": bound("maria", "1002"), "ivan": bound("ivan", None)}
    return FakeEngine(FakeMonitor(list(ACTIVE)), FakePresence(operators))


def make_app(database: Database, config_dir: Path, engine: FakeEngine | None) -> FastAPI:
    loaded = load(str(config_dir), env={})
    assert not loaded.errors, loaded.errors
    config = loaded.config
    app = FastAPI()
    app.add_middleware(SessionMiddleware, secret_key="test-secret")
    app.include_router(manager.router)
    environment = Environment(
        loader=ChoiceLoader([DictLoader({"base.html": BASE}), FileSystemLoader(TEMPLATES)]),
        autoescape=select_autoescape(default=True),
    )
    environment.globals["static"] = lambda name: f"/static/{name}?v=test"  # as app.py has
    templates = Jinja2Templates(env=environment)
    app.state.web = WebContext(
        database,
        lambda: config,
        templates,
        lambda: T0,
        engine,  # type: ignore[arg-type]
        zone=config.system.zone(),
    )

    @app.get("/test/sign-in/{login}")
    async def sign_in(request: Request, login: str) -> dict[str, str]:
        request.session["login"] = login
        return {"csrf": csrf_token(request)}

    @app.exception_handler(NotSignedIn)
    async def not_signed_in(request: Request, exc: NotSignedIn) -> JSONResponse:
        return JSONResponse({"detail": "sign in"}, status_code=401)

    return app


class Client:
    """A TestClient signed in as someone, with their CSRF token at hand."""

    def __init__(self, app: FastAPI, login: str | None) -> None:
        self.http = TestClient(app)
        self.csrf = ""
        if login is not None:
            response = self.http.get(f"/test/sign-in/{login}")
            self.csrf = response.json()["csrf"]

    def get(self, url: str, **kwargs: Any) -> Any:
        return self.http.get(url, **kwargs)

    def post_json(self, url: str, data: dict[str, Any], csrf: bool = True) -> Any:
        headers = {"Accept": "application/json"}
        if csrf:
            headers["X-CSRF-Token"] = self.csrf
        return self.http.post(url, json=data, headers=headers)

    def post_form(self, url: str, data: dict[str, str], csrf: bool = True) -> Any:
        if csrf:
            data = {**data, "csrf_token": self.csrf}
        return self.http.post(url, data=data, follow_redirects=False)


@pytest.fixture
def config_dir(write_config: WriteConfig, recordings: Path) -> Path:
    system = f"""\
        system:
          timezone: Europe/Moscow
          paths: {{data: {recordings.parent}, recordings: {recordings}}}
        """
    return write_config(**{"users.yaml": USERS, "system.yaml": system})


@pytest.fixture
def app(database: Database, config_dir: Path, engine: FakeEngine) -> FastAPI:
    return make_app(database, config_dir, engine)


@pytest.fixture
def client(app: FastAPI) -> Iterator[Client]:
    yield Client(app, "maria")


@pytest.fixture
def call_log(database: Database) -> CallLog:
    return CallLog(database)


def log_call(  # noqa: PLR0917 (a row of the seed, positional for brevity)
    log: CallLog,
    channel: str,
    at: datetime,
    caller: str = "+79610000001",
    called: str = "90000",
    seconds: int | None = 19,
    recording: str | None = None,
) -> int:
    call_id = log.started(channel, caller, called, at=at)
    if seconds is not None:
        log.ended(channel, at=at + timedelta(seconds=seconds), outcome="hangup", reason=None)
    if recording is not None:
        log.recorded(channel, recording)
    return call_id


# Roles


ROUTES = [
    ("GET", "/manager/calls"),
    ("GET", "/manager/calls/table"),
    ("POST", "/manager/calls/1700000000.1/listen"),
    ("GET", "/manager/history"),
    ("POST", "/manager/history/1/mark"),
    ("GET", "/manager/recordings/1"),
    ("GET", "/manager/reports"),
    ("GET", "/manager/reports/calls.xlsx"),
]


# (`path`, not `url`: that is the database fixture's name.)
@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_an_operator_may_not(app: FastAPI, engine: FakeEngine, method: str, path: str) -> None:
    operator = Client(app, "olga")
    form = {"marked": "1"}
    response = operator.get(path) if method == "GET" else operator.post_form(path, form)
    assert response.status_code == 403
    assert engine.monitor.listened == []


@pytest.mark.parametrize(("method", "path"), ROUTES[:3])
def test_no_session_no_page(app: FastAPI, method: str, path: str) -> None:
    nobody = Client(app, None)
    response = nobody.get(path) if method == "GET" else nobody.post_form(path, {})
    assert response.status_code == 401


def test_an_admin_may(app: FastAPI) -> None:
    assert Client(app, "root").get("/manager/calls").status_code == 200


# Active calls


def test_active_calls_table(client: Client) -> None:
    page = client.get("/manager/calls")
    assert page.status_code == 200
    text = page.text
    for heading in ("Инициатор", "Первоначально вызываемый номер", "Текущий собеседник"):
        assert heading in text
    assert '<script src="/static/manager.js?v=test" defer>' in text
    assert 'data-table-url="/manager/calls/table"' in text
    assert "+79613201234" in text and "Голосовое меню" in text and 'title="VOICE_MENU"' in text
    assert "В очереди" in text and "Разговор" in text
    assert "09:59:55" in text and "0:05" in text and "1:00:00" in text
    assert text.count('value="0">Подключиться</button>') == 3
    assert text.count(">Подсказать оператору</button>") == 1  # only a call in talk has an operator


def test_the_table_alone(client: Client, engine: FakeEngine) -> None:
    fragment = client.get("/manager/calls/table")
    assert fragment.status_code == 200
    assert "<html" not in fragment.text and "<table" in fragment.text
    assert "1700000000.2" in fragment.text
    engine.monitor.calls.clear()
    assert "Активных разговоров нет" in client.get("/manager/calls/table").text


def test_calls_without_an_engine(database: Database, config_dir: Path) -> None:
    client = Client(make_app(database, config_dir, None), "maria")
    assert "Движок не запущен" in client.get("/manager/calls").text
    assert "Движок не запущен" in client.get("/manager/calls/table").text
    response = client.post_json("/manager/calls/1700000000.1/listen", {})
    assert response.status_code == 503
    assert "движок не запущен" in response.json()["message"].lower()


def test_listen_rings_the_managers_phone(client: Client, engine: FakeEngine) -> None:
    response = client.post_json("/manager/calls/1700000000.3/listen", {"whisper": "0"})
    assert response.status_code == 200
    assert response.json()["ok"] is True
    assert "1002" in response.json()["message"]
    response = client.post_json("/manager/calls/1700000000.3/listen", {"whisper": True})
    assert response.status_code == 200
    assert "только оператор" in response.json()["message"]
    assert engine.monitor.listened == [
        ("1700000000.3", "1002", False),
        ("1700000000.3", "1002", True),
    ]


def test_listen_by_a_plain_form(client: Client, engine: FakeEngine) -> None:
    response = client.post_form("/manager/calls/1700000000.1/listen", {"whisper": "0"})
    assert response.status_code == 200
    assert "Телефон 1002 зазвонит" in response.text and "<table" in response.text
    assert engine.monitor.listened == [("1700000000.1", "1002", False)]


def test_listen_needs_a_bound_phone(app: FastAPI, engine: FakeEngine) -> None:
    ivan = Client(app, "ivan")  # bound to no phone
    response = ivan.post_json("/manager/calls/1700000000.1/listen", {})
    assert response.status_code == 409
    assert "привяжите" in response.json()["message"]
    root = Client(app, "root")  # not in presence at all
    response = root.post_form("/manager/calls/1700000000.1/listen", {})
    assert response.status_code == 409
    assert "Привязать" in response.text
    assert engine.monitor.listened == []


def test_listen_to_a_call_gone(client: Client, engine: FakeEngine) -> None:
    response = client.post_json("/manager/calls/1700000000.9/listen", {})
    assert response.status_code == 404
    assert "1700000000.9" in response.json()["message"]
    assert engine.monitor.listened == []


def test_listen_needs_the_csrf_token(client: Client, engine: FakeEngine) -> None:
    assert client.post_json("/manager/calls/1700000000.1/listen", {}, csrf=False).status_code == 403
    assert client.post_form("/manager/calls/1700000000.1/listen", {}, csrf=False).status_code == 403
    assert engine.monitor.listened == []


# History


def test_history_of_today_in_the_system_timezone(client: Client, call_log: CallLog) -> None:
    # 01.03 22:30 UTC is 02.03 01:30 in Moscow: today's; 01.03 20:59 UTC is yesterday's.
    today = log_call(call_log, "c1", datetime(2026, 3, 1, 22, 30, tzinfo=UTC), seconds=125)
    yesterday = log_call(call_log, "c0", datetime(2026, 3, 1, 20, 59, tzinfo=UTC))
    going_on = log_call(call_log, "c2", T0 - timedelta(seconds=30), seconds=None)
    text = client.get("/manager/history").text
    for heading in ("Начало вызова", "Конец вызова", "Продолжительность", "Отметка", "Запись"):
        assert heading in text
    assert 'value="2026-03-02"' in text
    assert f'data-call="{today}"' in text and f'data-call="{going_on}"' in text
    assert f'data-call="{yesterday}"' not in text
    assert "02.03.2026 01:30:00" in text and "02.03.2026 01:32:05" in text
    assert "2 мин. 05 сек." in text and "идёт" in text
    text = client.get("/manager/history?from=2026-03-01&to=2026-03-01").text
    assert f'data-call="{yesterday}"' in text and "19 сек." in text
    assert f'data-call="{today}"' not in text


def test_history_filters(client: Client, call_log: CallLog) -> None:
    at = T0 - timedelta(hours=1)
    a = log_call(call_log, "a", at, caller="+79611111111", called="90000")
    b = log_call(call_log, "b", at, caller="+79612222222", called="92000")
    call_log.mark(b)

    def shown(query: str) -> set[int]:
        text = client.get(f"/manager/history?from=2026-03-02&to=2026-03-02&{query}").text
        return {i for i in (a, b) if f'data-call="{i}"' in text}

    assert shown("") == {a, b}
    assert shown("caller=1111") == {a}
    assert shown("called=920") == {b}
    assert shown("caller=%25") == set()  # a fragment, not a pattern
    assert shown("marked=1") == {b}


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("from=2026-13-01", "не дата"),
        ("from=yesterday", "не дата"),
        ("from=2026-03-02&to=2026-03-01", "раньше"),
        ("to=9999-12-31", "вне допустимых"),
    ],
)
def test_history_bad_dates(client: Client, query: str, message: str) -> None:
    response = client.get(f"/manager/history?{query}")
    assert response.status_code == 400
    assert message in response.text


def test_history_shows_the_last_200(client: Client, call_log: CallLog) -> None:
    for n in range(201):
        log_call(call_log, f"c{n}", T0 - timedelta(minutes=n + 1))
    text = client.get("/manager/history").text
    assert text.count('<tr data-call="') == 200
    assert "Показаны последние 200" in text
    assert 'data-call="1"' in text  # the newest
    assert 'data-call="201"' not in text  # the oldest is the one left out


def test_marking(client: Client, call_log: CallLog) -> None:
    call_id = log_call(call_log, "c1", T0 - timedelta(minutes=5))
    url = f"/manager/history/{call_id}/mark"
    assert client.post_json(url, {"marked": "1"}, csrf=False).status_code == 403
    assert client.post_form(url, {"marked": "1"}, csrf=False).status_code == 403
    assert call_log.get("c1").marked is False  # type: ignore[union-attr]

    response = client.post_json(url, {"marked": "1"})
    assert response.json() == {"id": call_id, "marked": True}
    assert call_log.get("c1").marked is True  # type: ignore[union-attr]
    assert 'aria-pressed="true"' in client.get("/manager/history?marked=1").text

    back = "from=2026-03-02&to=2026-03-02&marked=1&next=https://evil.example"
    response = client.post_form(url, {"marked": "0", "back": back})
    assert response.status_code == 303
    assert response.headers["location"] == "/manager/history?from=2026-03-02&to=2026-03-02&marked=1"
    assert call_log.get("c1").marked is False  # type: ignore[union-attr]

    assert client.post_json(url, {"marked": "yes"}).status_code == 400
    assert client.post_json("/manager/history/999999/mark", {"marked": "1"}).status_code == 404
    assert client.post_json("/manager/history/x1/mark", {"marked": "1"}).status_code == 404


# Recordings


def test_recording_played_and_downloaded(
    client: Client, call_log: CallLog, recordings: Path
) -> None:
    day = recordings / "2026-03-02"
    day.mkdir()
    wav = day / "astpbx-c1-1.wav"
    wav.write_bytes(b"RIFF....WAVEfmt ")
    call_id = log_call(call_log, "c1", T0 - timedelta(minutes=5), recording=str(wav))
    text = client.get("/manager/history").text
    assert f'<audio controls preload="none" src="/manager/recordings/{call_id}">' in text
    assert f'href="/manager/recordings/{call_id}?download=1"' in text and "Скачать" in text

    played = client.get(f"/manager/recordings/{call_id}")
    assert played.status_code == 200
    assert played.content == wav.read_bytes()
    assert played.headers["content-type"].startswith("audio/")
    assert played.headers["content-disposition"].startswith("inline")
    saved = client.get(f"/manager/recordings/{call_id}?download=1")
    assert saved.status_code == 200 and saved.content == wav.read_bytes()
    assert saved.headers["content-disposition"] == 'attachment; filename="astpbx-c1-1.wav"'


def test_recording_with_a_relative_path(
    client: Client, call_log: CallLog, recordings: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (recordings / "a.wav").write_bytes(b"RIFF")
    monkeypatch.chdir(recordings.parent)  # the engine's working directory
    call_id = log_call(call_log, "c1", T0, recording="recordings/a.wav")
    assert client.get(f"/manager/recordings/{call_id}").content == b"RIFF"


def test_no_way_out_of_the_recordings(
    client: Client, call_log: CallLog, recordings: Path, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.wav"
    secret.write_bytes(b"secret")
    (recordings / "link.wav").symlink_to(secret)
    (recordings / "a.wav").write_bytes(b"RIFF")
    outside = log_call(call_log, "c1", T0, recording=str(secret))
    climbing = log_call(call_log, "c2", T0, recording=str(recordings / ".." / "secret.wav"))
    linked = log_call(call_log, "c3", T0, recording=str(recordings / "link.wav"))
    the_dir = log_call(call_log, "c4", T0, recording=str(recordings))
    missing = log_call(call_log, "c5", T0, recording=str(recordings / "gone.wav"))
    without = log_call(call_log, "c6", T0)
    log_call(call_log, "c7", T0, recording=str(recordings / "a.wav"))
    for call_id in (outside, climbing, linked, the_dir, missing, without, 999999):
        response = client.get(f"/manager/recordings/{call_id}")
        assert response.status_code == 404, call_id
        assert b"secret" not in response.content
    for path in (
        "/manager/recordings/..%2F..%2Fetc%2Fpasswd",
        "/manager/recordings/..%2Fsecret.wav",
        "/manager/recordings/%2E%2E",
        "/manager/recordings/abc",
        "/manager/recordings/-1",
        "/manager/recordings/1.0",
        "/manager/recordings/99999999999",
        "/manager/recordings/%D9%A1",  # an Arabic-Indic one: a digit to str.isdigit
        f"/manager/recordings/{os.fspath(secret)}",
    ):
        response = client.get(path)
        assert response.status_code == 404, path
        assert b"secret" not in response.content


def test_a_purged_recording(client: Client, call_log: CallLog, recordings: Path) -> None:
    wav = recordings / "old.wav"
    call_id = log_call(call_log, "c1", T0 - timedelta(days=400), recording=str(wav))
    mark_recordings_purged(call_log._database, [str(wav)], T0)
    response = client.get(f"/manager/recordings/{call_id}")
    assert response.status_code == 404
    assert "удалена" in response.text
    text = client.get("/manager/history?from=2025-01-01&to=2026-03-02").text
    assert "удалена" in text and f"/manager/recordings/{call_id}" not in text


# Reports


def test_the_reports_page(client: Client) -> None:
    text = client.get("/manager/reports").text
    for name, report in REPORTS.items():
        assert f'action="/manager/reports/{name}.xlsx"' in text
        assert report.title.replace("«", "&laquo;") in text or report.title in text
    assert text.count("Сформировать") == 6
    assert text.count('name="operator"') == 1 and text.count('name="number"') == 2
    assert "Номер телефона (или его часть)" in text and "Сотрудник" in text
    assert '<option value="olga">Ольга</option>' in text


@pytest.mark.parametrize("name", list(REPORTS))
def test_each_report_downloads(client: Client, call_log: CallLog, name: str) -> None:
    log_call(call_log, "c1", T0 - timedelta(hours=1))
    response = client.get(
        f"/manager/reports/{name}.xlsx",
        params={"from": "2026-03-01", "to": "2026-03-02", "operator": "olga", "number": "7961"},
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == XLSX
    disposition = response.headers["content-disposition"]
    assert disposition == f'attachment; filename="{name}-2026-03-01-2026-03-02.xlsx"'
    workbook = load_workbook(io.BytesIO(response.content))
    title = workbook.active.cell(row=1, column=1).value
    assert title.startswith(REPORTS[name].title)
    assert "с 01.03.2026 по 02.03.2026" in title


def test_the_calls_report_counts(client: Client, call_log: CallLog) -> None:
    log_call(call_log, "c1", T0 - timedelta(hours=1))
    log_call(call_log, "c2", T0 - timedelta(hours=2))
    response = client.get("/manager/reports/calls.xlsx")  # today, by default
    assert "calls-2026-03-02-2026-03-02.xlsx" in response.headers["content-disposition"]
    sheet = load_workbook(io.BytesIO(response.content)).active
    rows = [[c.value for c in row] for row in sheet.iter_rows(min_row=3)]
    assert rows[0][1] == 2  # received


@pytest.mark.parametrize(
    ("path", "status", "message"),
    [
        ("/manager/reports/nope.xlsx", 404, "Отчёта «nope» нет"),
        ("/manager/reports/calls.xlsx?from=02.03.2026", 400, "не дата"),
        ("/manager/reports/calls.xlsx?from=2026-03-02&to=2026-03-01", 400, "раньше"),
        ("/manager/reports/calls.xlsx?to=9999-12-31", 400, "вне допустимых"),
    ],
)
def test_report_errors(client: Client, path: str, status: int, message: str) -> None:
    response = client.get(path)
    assert response.status_code == status
    assert message in response.text
    assert response.headers["content-type"].startswith("text/html")
