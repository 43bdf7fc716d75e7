"""The operator's forms (`ast_pbx.web.pages.operator` and `.callbacks`) through FastAPI's
TestClient, on SQLite and PostgreSQL, against the demo MFC directory of examples/mfc
(created by its create.py in a temporary SQLite file): applicants by number and by
name, card and cases, binding a number, a case by its number, the interaction history
(and who may edit it), the callback requests, hostile input, and the automatic history
entry when an operator picks up."""

from __future__ import annotations

import asyncio
import re
import sqlite3
import subprocess
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import MappingProxyType, SimpleNamespace
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.templating import Jinja2Templates
from jinja2 import ChoiceLoader, DictLoader, Environment, FileSystemLoader, select_autoescape
from starlette.middleware.sessions import SessionMiddleware

from ast_pbx.config.configuration import Config
from ast_pbx.config.loader import load
from ast_pbx.config.model import Directory
from ast_pbx.engine.callbacks import CallbackError
from ast_pbx.engine.directory import SqlDirectory
from ast_pbx.engine.events import BACKLOG, Bus
from ast_pbx.storage.callbacks import CallbackStore
from ast_pbx.storage.db import Database
from ast_pbx.storage.interactions import InteractionStore
from ast_pbx.storage.operators import OperatorRecord
from ast_pbx.web import interactions
from ast_pbx.web.context import NotSignedIn, WebContext, csrf_token
from ast_pbx.web.pages import callbacks, operator
from tests.async_helpers import eventually
from tests.conftest import EXAMPLE
from tests.storage_fixtures import (  # noqa: F401
    database_fixture,
    postgres_url_fixture,
    url_fixture,
)

with warnings.catch_warnings():
    # Starlette asks for `httpx2` in place of `httpx`; the client works the same.
    warnings.filterwarnings("ignore", "Using `httpx` with")
    from fastapi.testclient import TestClient

TEMPLATES = Path(operator.__file__).resolve().parents[1] / "templates"
STATIC = TEMPLATES.parent / "static"
CREATE = EXAMPLE / "directory" / "create.py"
# What the core's base.html provides to pages, and no more: the tests do not depend on it.
BASE = """<!doctype html><html><head><meta name="csrf-token" content="{{ csrf_token }}">
<title>{% block title %}{% endblock %}</title>{% block head %}{% endblock %}</head>
<body>{% block content %}{% endblock %}{% block scripts %}{% endblock %}</body></html>"""
T0 = datetime(2026, 3, 2, 7, 0, tzinfo=UTC)  # 10:00 in Moscow, the system timezone
IVANOV = "+79896128555"  # Иванов Иван Иванович, cases 19.03-2044 and 19.03-1756
KUZNETSOVS = "+79613201234"  # two applicants share this number
FETCH = {"X-Requested-With": "fetch"}
# Users of examples/mfc/users.yaml: "123" and "222" operators, "321" a manager.
OPERATOR, OTHER, MANAGER = "123", "222", "321"


# --- the app ----------------------------------------------------------------------------


@dataclass
class FakeCallbackCalls:
    placed: list[tuple[int, str]] = field(default_factory=list)
    error: Exception | None = None

    async def call(self, callback_id: int, login: str, phone: str | None = None) -> str:
        if self.error is not None:
            raise self.error
        self.placed.append((callback_id, login))
        return f"callback-{len(self.placed)}"


@dataclass
class FakePresence:
    operators: dict[str, OperatorRecord]

    def operator_of(self, phone: str) -> OperatorRecord | None:
        return next((o for o in self.operators.values() if o.phone == phone), None)


@dataclass
class FakeEngine:
    config: Config
    presence: FakePresence
    events: Bus = field(default_factory=Bus)
    callback_calls: FakeCallbackCalls = field(default_factory=FakeCallbackCalls)

    @property
    def current(self) -> Any:
        return SimpleNamespace(config=self.config)

    def clock(self) -> datetime:
        return T0


def bound(login: str, phone: str | None) -> OperatorRecord:
    return OperatorRecord(login, phone, True, None, None, T0 if phone else None)


@pytest.fixture(name="demo")
def demo_fixture(tmp_path: Path) -> Path:
    """The demo MFC database, made by the command .ci/demo runs (twice: idempotent)."""
    path = tmp_path / "mfc" / "mfc-demo.db"
    for _ in range(2):
        done = subprocess.run(
            [sys.executable, str(CREATE), str(path)], capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, done.stderr
    return path


@pytest.fixture(name="config")
def config_fixture(demo: Path) -> Config:
    loaded = load(str(EXAMPLE), env={"MFC_DB_URL": f"sqlite:///{demo}"})
    assert not loaded.errors, loaded.errors
    return loaded.config


@pytest.fixture(name="engine")
def engine_fixture(config: Config) -> FakeEngine:
    presence = FakePresence({OPERATOR: bound(OPERATOR, "1001"), OTHER: bound(OTHER, None)})
    return FakeEngine(config, presence)


def make_app(database: Database, config: Config, engine: FakeEngine | None = None) -> FastAPI:
    app = FastAPI()
    app.add_middleware(SessionMiddleware, secret_key="test-secret")
    app.include_router(operator.router)
    app.include_router(callbacks.router)
    environment = Environment(
        loader=ChoiceLoader([DictLoader({"base.html": BASE}), FileSystemLoader(TEMPLATES)]),
        autoescape=select_autoescape(default=True),
    )
    environment.globals["static"] = lambda name: f"/static/{name}?v=test"  # as app.py has
    app.state.web = WebContext(
        database,
        lambda: config,
        Jinja2Templates(env=environment),
        lambda: T0,
        engine,  # type: ignore[arg-type]
    )

    @app.get("/test/sign-in/{login}")
    async def sign_in(request: Request, login: str) -> dict[str, str]:
        request.session["login"] = login
        return {"csrf": csrf_token(request)}

    @app.exception_handler(NotSignedIn)
    async def not_signed_in(request: Request, error: Exception) -> JSONResponse:
        return JSONResponse({"error": "Войдите в систему"}, status_code=401)

    return app


class Client:
    """A signed-in browser: `csrf` is its session's token."""

    def __init__(self, app: FastAPI, login: str) -> None:
        self.http = TestClient(app)
        self.csrf = self.http.get(f"/test/sign-in/{login}").json()["csrf"]

    def get(self, url: str, **params: Any) -> Any:
        return self.http.get(url, params=params or None, headers=FETCH)

    def post(self, url: str, data: dict[str, Any], *, csrf: bool = True) -> Any:
        headers = {**FETCH, **({"X-CSRF-Token": self.csrf} if csrf else {})}
        return self.http.post(url, json=data, headers=headers)

    def submit(self, url: str, data: dict[str, str]) -> Any:
        """A plain form post, as without JavaScript."""
        return self.http.post(url, data={**data, "csrf_token": self.csrf}, follow_redirects=False)


@pytest.fixture(name="app")
def app_fixture(database: Database, config: Config, engine: FakeEngine) -> Iterator[FastAPI]:
    app = make_app(database, config, engine)
    yield app
    cached = getattr(app.state, "operator_directory", None)
    if cached is not None:
        cached[1].close()


@pytest.fixture(name="client")
def client_fixture(app: FastAPI) -> Client:
    return Client(app, OPERATOR)


def text_of(html: str) -> str:
    """The text a reader sees: tags removed, spaces collapsed."""
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


# --- the call-handling form ---------------------------------------------------------------


def test_sign_in_is_needed(app: FastAPI) -> None:
    anonymous = TestClient(app)
    for url in ("/operator", "/operator/lookup?phone=1", "/callbacks", "/callbacks/list"):
        assert anonymous.get(url).status_code == 401, url
    assert anonymous.post("/operator/history", json={"phone": "1"}).status_code == 401


def test_lookup_by_phone_shows_the_demo_applicant(client: Client) -> None:
    page = client.get("/operator/lookup", phone=IVANOV)
    assert page.status_code == 200
    text = text_of(page.text)
    assert f"Номер: {IVANOV}" in text
    assert "Иванов Иван Иванович — 19.09.1973" in text
    assert "Показать" in text
    assert "/operator/applicant/1?phone=%2B79896128555" in page.text
    # A number written as people do: the same applicant.
    assert "Иванов Иван Иванович" in client.get("/operator/lookup", phone="+7 (989) 612-85-55").text
    both = text_of(client.get("/operator/lookup", phone=KUZNETSOVS).text)
    assert "Кузнецов Пётр Андреевич" in both and "Кузнецова Мария Ивановна" in both
    nobody = text_of(client.get("/operator/lookup", phone="+70000000000").text)
    assert "Заявители с этим номером не найдены" in nobody


def test_lookup_answers_json_when_asked(client: Client) -> None:
    answer = client.http.get(
        "/operator/lookup", params={"phone": IVANOV}, headers={"Accept": "application/json"}
    )
    assert answer.status_code == 200
    assert answer.json() == {
        "phone": IVANOV,
        "configured": True,
        "error": None,
        "applicants": [
            {"id": "1", "full_name": "Иванов Иван Иванович", "birth_date": "19.09.1973"}
        ],
    }


def test_bad_numbers_are_refused(client: Client) -> None:
    assert client.get("/operator/lookup", phone="abc").status_code == 400
    assert client.get("/operator/lookup", phone="").status_code == 400
    assert client.get("/operator/lookup", phone="1" * 33).status_code == 422
    assert client.get("/operator/history", phone="1; DROP").status_code == 400


def test_the_page_works_without_javascript(client: Client) -> None:
    page = client.http.get(
        "/operator",
        params={"phone": IVANOV, "name": "Петрова", "applicant": "1", "number": "4567"},
    )
    assert page.status_code == 200
    html, text = page.text, text_of(page.text)
    assert f'<meta name="csrf-token" content="{client.csrf}">' in html
    assert '<script src="/static/operator.js?v=test" defer></script>' in html
    assert '<link rel="stylesheet" href="/static/operator.css?v=test">' in html
    assert 'data-my-phone="1001"' in html  # the phone bound to the operator
    assert "Ваш телефон: 1001." in text
    assert "Иванов Иван Иванович — 19.09.1973" in text  # by number
    assert "Петрова Анна Сергеевна — 12.04.1985" in text  # by name
    assert "Привязать номер +79896128555" in text
    assert "Фамилия Иванов" in text and "Дело №19.03-2044" in text  # card and cases
    assert "Выдача паспорта гражданина РФ" in text  # the case opened
    assert "Поиск по номеру телефона: +79896128555" in text  # the history pane
    assert "Обращений с этого номера ещё не было" in text
    assert "<script>" not in html.replace('<script src="/static/operator.js?v=test" defer>', "")


def test_search_by_name(client: Client) -> None:
    found = text_of(client.get("/operator/search", name="Иванов", phone=IVANOV).text)
    for name in ("Иванов Иван Иванович", "Иванова Ольга Николаевна", "Кузнецова Мария Ивановна"):
        assert name in found
    assert "Петрова" not in found
    assert "Привязать к существующему пользователю" in found
    assert found.count("Привязать номер +79896128555") == 3
    without_number = text_of(client.get("/operator/search", name="Петрова").text)
    assert "Петрова Анна Сергеевна" in without_number
    assert "Привязать номер" not in without_number
    assert "Заявители не найдены" in text_of(client.get("/operator/search", name="Нет").text)
    assert client.get("/operator/search", name="  ").status_code == 400
    assert client.get("/operator/search", name="я" * 101).status_code == 422


@pytest.mark.parametrize(
    "hostile", ["'; DROP TABLE applicants; --", "%", "_", "\\", "%' OR '1'='1", "Иван%ов"]
)
def test_sql_in_the_search_is_just_text(client: Client, demo: Path, hostile: str) -> None:
    answer = client.get("/operator/search", name=hostile)
    assert answer.status_code == 200
    assert "Заявители не найдены" in text_of(answer.text)
    case = client.get("/operator/case", number=hostile)
    assert case.status_code == 404
    assert client.get("/operator/lookup", phone="+7'; DROP TABLE x; --").status_code == 400
    with sqlite3.connect(demo) as connection:
        assert connection.execute("SELECT count(*) FROM applicants").fetchone() == (6,)


def test_directory_text_is_escaped(client: Client, demo: Path) -> None:
    with sqlite3.connect(demo) as connection:
        connection.execute(
            "INSERT INTO applicants (id, last_name, first_name, full_name, birth_date) "
            "VALUES (7, '<b>Злой</b>', 'X', '<script>alert(1)</script>', '2000-01-01')"
        )
        connection.execute("INSERT INTO applicant_phones VALUES (7, '+79990000007')")
    html = client.get("/operator/lookup", phone="+79990000007").text
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    card = client.get("/operator/applicant/7").text
    assert "&lt;b&gt;Злой&lt;/b&gt;" in card and "<b>Злой</b>" not in card


def test_card_and_cases(client: Client) -> None:
    card = client.get("/operator/applicant/1", phone=IVANOV)
    assert card.status_code == 200
    text = text_of(card.text)
    for label, value in (
        ("Карточка №", "1"),
        ("Фамилия", "Иванов"),
        ("Имя", "Иван"),
        ("Отчество", "Иванович"),
        ("Пол", "Мужской"),
        ("Дата рождения", "19.09.1973"),
        ("Номера телефонов", IVANOV),
    ):
        assert f"{label} {value}" in text, label
    assert "Список дел" in text
    assert "Дело №19.03-2044 открыть Услуга: Государственная регистрация ИП и ЮЛ" in text
    assert "Статус: Открыто Дата: 29.10.2019" in text
    assert text.index("19.03-2044") < text.index("19.03-1756")  # newest first
    missing = client.get("/operator/applicant/999")
    assert missing.status_code == 404
    assert "Заявитель 999 не найден" in text_of(missing.text)
    assert client.get("/operator/applicant/x").status_code == 422


def test_case_by_number(client: Client) -> None:
    case = client.get("/operator/case", number="4567")
    assert case.status_code == 200
    text = text_of(case.text)
    assert "Дело № 4567" in text and "Статус В работе" in text
    assert "Заявитель Петрова Анна Сергеевна" in text and "Дата 20.02.2026" in text
    # As the IVR reads it, with stars for the separators.
    assert "Дело № 19.03-2044" in text_of(client.get("/operator/case", number="19*03*2044").text)
    missing = client.get("/operator/case", number="0000")
    assert missing.status_code == 404
    assert "Дело 0000 не найдено" in text_of(missing.text)
    assert client.get("/operator/case", number="").status_code == 400


def test_bind_phone_then_found_by_the_number(client: Client) -> None:
    new = "+79005556677"
    assert "не найдены" in client.get("/operator/lookup", phone=new).text
    refused = client.post("/operator/bind-phone", {"applicant": "6", "phone": new}, csrf=False)
    assert refused.status_code == 403
    bound_now = client.post("/operator/bind-phone", {"applicant": "6", "phone": new})
    assert bound_now.status_code == 200
    text = text_of(bound_now.text)
    assert f"Номер {new} привязан к заявителю" in text
    assert "Иванова Ольга Николаевна — 30.06.1995" in text
    assert "Иванова Ольга" in client.get("/operator/lookup", phone=new).text
    again = client.post("/operator/bind-phone", {"applicant": "6", "phone": new})
    assert again.status_code == 200  # binding twice changes nothing
    assert client.get("/operator/lookup", phone=new).text.count("Иванова Ольга") == 1
    card = text_of(client.get("/operator/applicant/6").text)
    assert f"Номера телефонов {new}" in card


def test_bind_phone_by_a_plain_form_and_its_refusals(client: Client) -> None:
    posted = client.submit("/operator/bind-phone", {"applicant": "3", "phone": KUZNETSOVS})
    assert posted.status_code == 303
    assert posted.headers["location"] == "/operator?phone=%2B79613201234&bound=1"
    page = client.http.get(posted.headers["location"])
    assert f"Номер {KUZNETSOVS} привязан к заявителю" in text_of(page.text)
    assert client.http.get("/operator?bound=anything").status_code == 422
    assert "Смирнов" in client.get("/operator/lookup", phone=KUZNETSOVS).text
    missing = client.post("/operator/bind-phone", {"applicant": "999", "phone": "+79005556677"})
    assert missing.status_code == 404
    assert client.post("/operator/bind-phone", {"applicant": "x", "phone": "1"}).status_code == 400
    assert client.post("/operator/bind-phone", {"applicant": "1", "phone": ""}).status_code == 400
    bad = client.post("/operator/bind-phone", {"applicant": "1", "phone": "'; DROP--"})
    assert bad.status_code == 400


def test_history_create_and_edit(app: FastAPI, client: Client, database: Database) -> None:
    added = client.post(
        "/operator/history",
        {
            "phone": IVANOV,
            "direction": "in",
            "question_group": "Регистрация ИП",
            "question": "<script>alert(1)</script> Сроки?",
            "answer": "Пять рабочих дней",
        },
    )
    assert added.status_code == 200
    text = text_of(added.text)
    assert "02.03.2026 10:00:00 Входящий Оператор: 123" in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt; Сроки?" in added.text
    assert "<script>alert" not in added.text
    [entry] = InteractionStore(database).for_phone(IVANOV)
    assert entry.operator == OPERATOR
    assert entry.caller_name == "Иванов Иван Иванович"  # from the directory: exactly one
    assert entry.question_group == "Регистрация ИП"

    other = Client(app, OTHER)
    refused = other.post(f"/operator/history/{entry.id}", {"answer": "Не так"})
    assert refused.status_code == 403
    assert 'action="/operator/history/' not in other.get("/operator/history", phone=IVANOV).text
    assert "Пять рабочих дней" in other.get("/operator/history", phone=IVANOV).text

    manager = Client(app, MANAGER)
    edited = manager.post(f"/operator/history/{entry.id}", {"answer": "Три рабочих дня"})
    assert edited.status_code == 200
    after = InteractionStore(database).get(entry.id)
    assert after is not None
    assert after.answer == "Три рабочих дня"
    assert after.question_group == "Регистрация ИП"  # not sent: kept
    assert after.operator == OPERATOR  # the manager does not take it over
    assert after.updated_at == T0

    own = client.submit(
        f"/operator/history/{entry.id}",
        {"question_group": "", "question": "Сроки", "answer": "Готово", "caller_name": "Иванов"},
    )
    assert own.status_code == 303
    assert own.headers["location"] == "/operator?phone=%2B79896128555"
    final = InteractionStore(database).get(entry.id)
    assert final is not None
    assert (final.question_group, final.question, final.answer, final.caller_name) == (
        None,
        "Сроки",
        "Готово",
        "Иванов",
    )
    assert client.post("/operator/history/99999", {"answer": "x"}).status_code == 404
    assert (
        client.post(f"/operator/history/{entry.id}", {"answer": "x"}, csrf=False).status_code == 403
    )


def test_history_limits_and_refusals(client: Client, database: Database) -> None:
    too_long = client.post("/operator/history", {"phone": IVANOV, "answer": "я" * 4001})
    assert too_long.status_code == 400
    assert "не более 4000 знаков" in too_long.json()["detail"]
    assert client.post("/operator/history", {"phone": "", "answer": "x"}).status_code == 400
    sideways = client.post("/operator/history", {"phone": IVANOV, "direction": "up"})
    assert sideways.status_code == 400
    not_json = client.http.post(
        "/operator/history",
        content=b"[1, 2]",
        headers={**FETCH, "X-CSRF-Token": client.csrf, "Content-Type": "application/json"},
    )
    assert not_json.status_code == 400
    assert InteractionStore(database).for_phone(IVANOV) == []
    out = client.post("/operator/history", {"phone": KUZNETSOVS, "direction": "out"})
    assert out.status_code == 200
    [entry] = InteractionStore(database).for_phone(KUZNETSOVS)
    assert entry.direction == "out"
    assert entry.caller_name is None  # two applicants have that number: no name


def test_unconfigured_queries_hide_their_part(
    database: Database, config: Config, engine: FakeEngine
) -> None:
    bare = replace(config, directory=Directory(config.directory.url, MappingProxyType({})))
    client = Client(make_app(database, bare, engine), OPERATOR)
    text = text_of(client.http.get("/operator", params={"phone": IVANOV}).text)
    assert "Поиск заявителей по номеру не настроен" in text
    assert "Поиск заявителей" not in text.replace("Поиск заявителей по номеру не настроен", "")
    assert "Открыть дело по его номеру" not in text
    assert "Поиск по номеру телефона: +79896128555" in text  # the history needs no directory
    assert "не настроен" in client.get("/operator/search", name="Иванов").text
    assert client.get("/operator/case", number="4567").status_code == 200
    assert "Поиск дел не настроен" in client.get("/operator/case", number="4567").text
    refused = client.post("/operator/bind-phone", {"applicant": "1", "phone": IVANOV})
    assert refused.status_code == 404
    # Only the card: no list of cases, and no "Показать" without either.
    only_card = {"applicant": config.directory.queries["applicant"]}
    some = replace(config, directory=Directory(config.directory.url, MappingProxyType(only_card)))
    card = text_of(
        Client(make_app(database, some, engine), OPERATOR).get("/operator/applicant/1").text
    )
    assert "Фамилия Иванов" in card and "Список дел" not in card


def test_a_failing_query_is_shown_and_logged(
    database: Database, config: Config, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    broken = replace(config, directory=Directory(f"sqlite:///{empty}", config.directory.queries))
    client = Client(make_app(database, broken), OPERATOR)
    answer = client.get("/operator/lookup", phone=IVANOV)
    assert answer.status_code == 502
    assert "ИС МФЦ: запрос applicants_by_phone не выполнен: no such table" in text_of(answer.text)
    assert "directory query applicants_by_phone failed" in caplog.text
    page = client.http.get("/operator", params={"phone": IVANOV, "number": "4567"})
    assert page.status_code == 200
    assert "запрос case_by_number не выполнен" in page.text
    bind = client.post("/operator/bind-phone", {"applicant": "1", "phone": IVANOV})
    assert bind.status_code == 502
    assert "Номер не привязан" in text_of(bind.text)


def test_operator_state_and_the_database_binding_without_engine(
    database: Database, config: Config, app: FastAPI, client: Client
) -> None:
    assert client.get("/operator/state").json() == {"login": OPERATOR, "phone": "1001"}
    alone = Client(make_app(database, config), OPERATOR)
    assert alone.get("/operator/state").json() == {"login": OPERATOR, "phone": None}
    text = text_of(alone.http.get("/operator").text)
    assert "Телефон к вам не привязан" in text


# --- the callback requests ----------------------------------------------------------------


@pytest.fixture(name="requests")
def requests_fixture(database: Database) -> dict[str, int]:
    store = CallbackStore(database)
    ids = {
        "ivanov": store.add(IVANOV, T0 - timedelta(hours=2)).id,
        "smirnov": store.add("+79181234567", T0 - timedelta(hours=1)).id,
        "done": store.add("+79000000001", T0 - timedelta(hours=3)).id,
        "later": store.add("+79000000002", T0 - timedelta(hours=4)).id,
    }
    store.update(ids["done"], done=True)
    store.update(ids["later"], call_not_before=T0 + timedelta(hours=1))
    return ids


def test_the_list_of_open_requests(client: Client, requests: dict[str, int]) -> None:
    page = client.http.get("/callbacks")
    assert page.status_code == 200
    text = text_of(page.text)
    assert "Заявки на обратные вызовы" in text
    assert f"{requests['ivanov']} {IVANOV} 02.03.2026 08:00:00 Позвонить" in text
    assert "+79181234567 02.03.2026 09:00:00" in text
    assert text.index(IVANOV) < text.index("+79181234567")  # oldest first
    assert "+79000000001" not in text and "+79000000002" not in text
    assert '<dialog id="cb-dialog" class="cb-dialog" aria-labelledby' in page.text  # closed
    rows = client.get("/callbacks/list")
    assert rows.status_code == 200 and IVANOV in rows.text and "<table" not in rows.text


def test_the_modal_of_a_request(client: Client, requests: dict[str, int]) -> None:
    modal = client.get(f"/callbacks/{requests['ivanov']}")
    assert modal.status_code == 200
    text = text_of(modal.text)
    assert "Обратный звонок человеку" in text
    assert "Дата подачи заявки: 02.03.2026 08:00:00" in text
    assert "Обратный звонок завершен" in text and "Перезвонить не ранее" in text
    assert 'type="datetime-local" name="call_not_before" value=""' in modal.text
    assert "Сохранить" in text and "Позвонить" in text
    assert f"Поиск по номеру телефона: {IVANOV}" in text  # the history pane
    page = client.http.get("/callbacks", params={"open": requests["ivanov"]})
    assert "Обратный звонок человеку" in page.text and 'cb-dialog" open' in page.text
    assert client.get("/callbacks/99999").status_code == 404


def test_save_done_and_call_not_before(
    client: Client, requests: dict[str, int], engine: FakeEngine, database: Database
) -> None:
    ivanov = requests["ivanov"]
    with engine.events.subscribe() as events:
        put_off = client.post(f"/callbacks/{ivanov}", {"call_not_before": "2026-03-02T14:30"})
        assert events.get_nowait()["type"] == "callbacks"  # the other lists follow
    assert put_off.status_code == 200
    assert "Сохранено" in put_off.text
    assert 'name="call_not_before" value="2026-03-02T14:30"' in put_off.text
    record = CallbackStore(database).get(ivanov)
    assert record is not None and record.call_not_before == datetime(2026, 3, 2, 11, 30, tzinfo=UTC)
    assert IVANOV not in client.get("/callbacks/list").text  # hidden until 14:30 Moscow
    cleared = client.post(f"/callbacks/{ivanov}", {"call_not_before": ""})
    assert cleared.status_code == 200
    assert IVANOV in client.get("/callbacks/list").text
    done = client.submit(f"/callbacks/{ivanov}", {"done": "on", "call_not_before": ""})
    assert done.status_code == 200  # without JS: the page again, the modal open
    assert "Сохранено" in done.text and "Заявки на обратные вызовы" in done.text
    assert IVANOV not in client.get("/callbacks/list").text
    record = CallbackStore(database).get(ivanov)
    assert record is not None and record.done and record.call_not_before is None
    assert client.post(f"/callbacks/{ivanov}", {"done": "on"}, csrf=False).status_code == 403
    bad = client.post(f"/callbacks/{ivanov}", {"call_not_before": "завтра"})
    assert bad.status_code == 400
    assert client.post("/callbacks/99999", {"done": "on"}).status_code == 404


def test_call_places_the_callback_and_writes_the_history(
    client: Client, requests: dict[str, int], engine: FakeEngine, database: Database
) -> None:
    ivanov = requests["ivanov"]
    called = client.post(f"/callbacks/{ivanov}/call", {})
    assert called.status_code == 200
    assert engine.callback_calls.placed == [(ivanov, OPERATOR)]
    text = text_of(called.text)
    assert f"Звонит ваш телефон 1001: снимите трубку, и начнётся вызов на {IVANOV}" in text
    assert "Исходящий Оператор: 123" in text  # the history pane has the new entry
    [entry] = InteractionStore(database).for_phone(IVANOV)
    assert (entry.direction, entry.call_id, entry.operator) == ("out", "callback-1", OPERATOR)
    assert entry.caller_name == "Иванов Иван Иванович"
    assert client.post(f"/callbacks/{ivanov}/call", {}, csrf=False).status_code == 403
    assert client.post("/callbacks/99999/call", {}).status_code == 404


def test_call_refusals(
    app: FastAPI, requests: dict[str, int], engine: FakeEngine, database: Database, config: Config
) -> None:
    ivanov = requests["ivanov"]
    unbound = Client(app, OTHER).post(f"/callbacks/{ivanov}/call", {})
    assert unbound.status_code == 409
    assert "к вам не привязан телефон" in unbound.text
    engine.callback_calls.error = CallbackError("the engine keeps no database")
    failed = Client(app, OPERATOR).post(f"/callbacks/{ivanov}/call", {})
    assert failed.status_code == 409
    assert "звонок невозможен: the engine keeps no database" in failed.text
    engine.callback_calls.error = OSError("ARI is down")
    broken = Client(app, OPERATOR).post(f"/callbacks/{ivanov}/call", {})
    assert broken.status_code == 502
    assert "Asterisk не принял вызов" in broken.text
    alone = Client(make_app(database, config), OPERATOR)
    no_engine = alone.post(f"/callbacks/{ivanov}/call", {})
    assert no_engine.status_code == 503
    assert "звонок невозможен: движок не запущен" in no_engine.text
    modal = alone.get(f"/callbacks/{ivanov}").text
    assert "disabled" in modal and "движок не запущен" in modal
    assert InteractionStore(database).for_phone(IVANOV) == []  # no call, no entry


# --- the automatic entry on pick-up -------------------------------------------------------


def test_a_burst_of_pick_ups_loses_no_history_entry(
    database: Database, config: Config, engine: FakeEngine
) -> None:
    """More pick-ups at once than a live page's backlog: every one gets its entry (the
    history is not a live page that may resynchronise)."""
    store = InteractionStore(database)
    calls = BACKLOG + 100

    class NoNames:
        async def lookup_async(self, scenario: str, key: str) -> None:
            return None

    async def scenario() -> None:
        task = interactions.start_interactions(engine, database, NoNames())  # type: ignore[arg-type]
        for n in range(calls):  # in one go: the follower reads none until all are out
            engine.events.publish("answered", phone="1111", caller=f"+7900{n:07}", call=f"b{n}")
        await eventually(lambda: store.for_call(f"b{calls - 1}") is not None, 30)
        await eventually(lambda: all(store.for_call(f"b{n}") for n in range(calls)), 30)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(scenario())


def test_an_answered_call_gets_one_history_entry(
    database: Database, config: Config, engine: FakeEngine, client: Client
) -> None:
    store = InteractionStore(database)
    directory = SqlDirectory(config.directory)

    async def scenario() -> list[dict[str, Any]]:
        task = interactions.start_interactions(engine, database, directory)  # type: ignore[arg-type]
        with engine.events.subscribe() as published:
            engine.events.publish("ringing", phone="1001", caller=IVANOV, call="c1")
            engine.events.publish("answered", phone="1001", caller=IVANOV, call="c1")
            engine.events.publish("answered", phone="1001", caller=IVANOV, call="c1")  # again
            engine.events.publish("answered", phone="1111", caller=KUZNETSOVS, call="c2")
            engine.events.publish("answered", phone="1111", caller="1001", call="c3")  # internal
            engine.events.publish("answered", phone="1111", caller=None, call="c4")  # no number
            await eventually(lambda: len(store.for_phone(KUZNETSOVS)) == 1)
            await eventually(lambda: len(store.for_phone(IVANOV)) == 1)
            await asyncio.sleep(0.05)
            seen = []
            while not published.empty():
                seen.append(published.get_nowait())
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        assert engine.events.subscribers == 0  # the task let go of the bus
        return [event for event in seen if event["type"] == "interactions"]

    try:
        published = asyncio.run(scenario())
    finally:
        directory.close()
    [ivanov] = store.for_phone(IVANOV)
    assert (ivanov.direction, ivanov.call_id, ivanov.operator) == ("in", "c1", OPERATOR)
    assert ivanov.caller_name == "Иванов Иван Иванович"
    assert ivanov.at == T0
    [family] = store.for_phone(KUZNETSOVS)
    assert family.caller_name is None  # two applicants: no name
    assert family.operator is None  # nobody bound to 1111
    assert store.for_phone("1001") == [] and store.for_call("c4") is None
    assert {(e["phone"], e["operator"]) for e in published} == {
        (IVANOV, OPERATOR),
        (KUZNETSOVS, None),
    }
    assert len(published) == 2
    # The operator sees it in the pane and may fill it in; an entry nobody handled, too.
    pane = client.get("/operator/history", phone=IVANOV)
    assert "Входящий Оператор: 123" in text_of(pane.text)
    assert f'action="/operator/history/{ivanov.id}"' in pane.text
    assert client.post(f"/operator/history/{family.id}", {"answer": "ok"}).status_code == 200
    taken = store.get(family.id)
    assert taken is not None and taken.operator == OPERATOR


def test_record_pick_up_is_idempotent_in_the_database(
    database: Database, config: Config, engine: FakeEngine
) -> None:
    store = InteractionStore(database)

    class Names:
        async def lookup_async(self, scenario: str, key: str) -> str:
            raise OSError("directory down")  # a failing directory: the entry without a name

    event = {"type": "answered", "phone": "1001", "caller": IVANOV, "call": "c9"}

    async def twice() -> tuple[Any, Any]:
        first = await interactions.record_pick_up(engine, store, Names(), event)  # type: ignore[arg-type]
        second = await interactions.record_pick_up(engine, store, Names(), event)  # type: ignore[arg-type]
        return first, second

    first, second = asyncio.run(twice())
    assert first is not None and first == second
    assert first.caller_name is None and first.operator == OPERATOR
    assert len(store.for_phone(IVANOV)) == 1


def test_static_files_are_there() -> None:
    script = (STATIC / "operator.js").read_text(encoding="utf-8")
    for event in ("ringing", "answered", "callbacks", "interactions"):
        assert f'on("{event}"' in script  # through app.js, which subscribes to the type
    assert "innerHTML = result.html" in script  # only server-rendered, escaped HTML
    assert (STATIC / "operator.css").is_file()
