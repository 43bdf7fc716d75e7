"""What the web tests share: the app over a test database, users with cheap password
hashes, a fake engine, signing in with a TestClient.

`make_app(database, ...)` builds `web.app.create_app` with a fixed config of `USERS`
(one per role, password `PASSWORD`) and a movable clock; `signed_in(app, login)` is a
TestClient with a session; `token(client)` its CSRF token (for the `X-CSRF-Token`
header or the `csrf_token` form field).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import bcrypt
from argon2 import PasswordHasher
from fastapi import FastAPI

from ast_pbx.config.configuration import Config
from ast_pbx.config.model import Directory, Queue, User
from ast_pbx.engine.events import Bus
from ast_pbx.storage.db import Database
from ast_pbx.storage.operators import OperatorRecord
from ast_pbx.web.app import create_app

with warnings.catch_warnings():
    # Starlette asks for `httpx2` in place of `httpx`; the client works the same.
    warnings.filterwarnings("ignore", "Using `httpx` with")
    from fastapi.testclient import TestClient

MSK = timezone(timedelta(hours=3))
T0 = datetime(2026, 3, 2, 7, 0, tzinfo=UTC)  # 10:00 in MSK
PASSWORD = "верный пароль 1"
SECRET = "0123456789abcdef" * 4
# Cheap argon2: the tests sign in often; the app verifies whatever parameters a hash has.
FAST_ARGON2 = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


def argon2_hash(password: str = PASSWORD) -> str:
    return FAST_ARGON2.hash(password)


def bcrypt_hash(password: str = PASSWORD, prefix: bytes = b"2b") -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4, prefix=prefix)).decode()


def users() -> tuple[User, ...]:
    return (
        User(login="oper", role="operator", name="Оператор Ольга", password_hash=argon2_hash()),
        User(login="oper2", role="operator", name="Оператор Олег", password_hash=bcrypt_hash()),
        User(login="boss", role="manager", name="Менеджер Мария", password_hash=argon2_hash()),
        User(login="root", role="admin", name="Администратор", password_hash=bcrypt_hash()),
    )


USERS = users()


class Clock:
    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class FakeQueues:
    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def waiting(self) -> dict[str, int]:
        return dict(self.counts)


class FakePresence:
    """The engine's presence API as the pages use it, in memory."""

    def __init__(self, events: Bus, clock: Clock) -> None:
        self.events = events
        self.clock = clock
        self.operators: dict[str, OperatorRecord] = {}
        self.codes = iter(range(12345, 99999))

    def _record(self, login: str) -> OperatorRecord:
        return self.operators.get(login) or OperatorRecord(login, None, True, None, None, None)

    async def new_code(self, login: str) -> str:
        code = str(next(self.codes))
        expires = self.clock() + timedelta(minutes=10)
        self.operators[login] = replace(
            self._record(login), bind_code=code, code_expires_at=expires
        )
        self.events.publish("presence")
        return code

    async def bind(self, code: str, phone: str) -> str | None:
        login = next((o.login for o in self.operators.values() if o.bind_code == code), None)
        if login is not None:
            self.operators[login] = replace(
                self._record(login), phone=phone, bind_code=None, code_expires_at=None
            )
            self.events.publish("presence")
        return login

    async def unbind(self, login: str) -> None:
        self.operators[login] = replace(self._record(login), phone=None)
        self.events.publish("presence")

    async def set_accepting(self, login: str, accepting: bool) -> None:
        self.operators[login] = replace(self._record(login), accepting=accepting)
        self.events.publish("presence")


class FakeEngine:
    def __init__(self, clock: Clock) -> None:
        self.events = Bus()
        self.queues = FakeQueues()
        self.presence = FakePresence(self.events, clock)


def config_of(
    people: Iterable[User] = USERS, directory: Directory | None = None, **values: Any
) -> Config:
    queues = (Queue(number="92000", members=("1001", "1002"), name="Консультации"),)
    return Config(
        users=tuple(people),
        queues=queues,
        directory=directory or Directory(),
        **values,
    )


def make_app(
    database: Database,
    *,
    config: Config | None = None,
    clock: Clock | None = None,
    engine: Any = None,
    https_only: bool = False,
) -> FastAPI:
    fixed = config or config_of()
    app = create_app(
        database=database,
        config=lambda: fixed,
        clock=clock or Clock(),
        engine=engine,
        api_username="api",
        api_password="api-secret",
        secret_key=SECRET,
        timezone=MSK,
        https_only=https_only,
    )
    app.state.test_config = fixed
    return app


def client(app: FastAPI) -> TestClient:
    return TestClient(app, base_url="http://testserver")


def login_token(test_client: TestClient) -> str:
    page = test_client.get("/login")
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found, page.text
    return found.group(1)


def sign_in(
    test_client: TestClient, login: str, password: str = PASSWORD, next_page: str = ""
) -> Any:
    """POST the sign-in form as a browser would; the response (a 303 on success)."""
    form = {"login": login, "password": password, "csrf_token": login_token(test_client)}
    if next_page:
        form["next"] = next_page
    return test_client.post("/login", data=form, follow_redirects=False)


def signed_in(app: FastAPI, login: str) -> TestClient:
    test_client = client(app)
    response = sign_in(test_client, login)
    assert response.status_code == 303, response.text
    return test_client


def token(test_client: TestClient) -> str:
    """The session's CSRF token, as pages carry it in `<meta name="csrf-token">`."""
    page = test_client.get("/chat")
    found = re.search(r'<meta name="csrf-token" content="([^"]+)"', page.text)
    assert found, page.text
    return found.group(1)


def headers(test_client: TestClient) -> dict[str, str]:
    """What `astpbx.post` sends: JSON wanted, the CSRF token."""
    return {"X-CSRF-Token": token(test_client), "Accept": "application/json"}
