"""Signing in to the pages and what guards every route: passwords (argon2, bcrypt, the
directory's `authenticate`), the lock-out, sessions, roles, CSRF, security headers."""

from __future__ import annotations

import logging
import re
import sqlite3
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import pytest
from fastapi import Depends, FastAPI

from ast_pbx.config.model import Directory, User
from ast_pbx.storage.db import Database
from ast_pbx.storage.logins import LoginFailures
from ast_pbx.web.auth import LOCK_AFTER, hash_password, verify_password
from ast_pbx.web.context import WebUser, page_routes, require
from ast_pbx.web.pages.home import start_page
from tests.storage_fixtures import (  # noqa: F401
    database_fixture,
    postgres_url_fixture,
    url_fixture,
)
from tests.web_fixtures import (
    PASSWORD,
    USERS,
    Clock,
    argon2_hash,
    bcrypt_hash,
    client,
    config_of,
    login_token,
    make_app,
    sign_in,
    signed_in,
    token,
)

WRONG = "Неверный логин или пароль"


@pytest.fixture
def app(database: Database) -> FastAPI:
    return make_app(database)


def _start(app: FastAPI, role: str) -> str:
    paths = {path for path, _ in page_routes(app)}
    preferred = {"operator": "/operator", "manager": "/manager/calls", "admin": "/manager/calls"}
    return preferred[role] if preferred[role] in paths else "/chat"


# Signing in


@pytest.mark.parametrize("user", USERS, ids=lambda u: f"{u.role}-{u.login}")
def test_each_role_signs_in_with_its_local_hash(app: FastAPI, user: User) -> None:
    browser = client(app)
    response = sign_in(browser, user.login)
    assert response.status_code == 303
    assert response.headers["location"] == _start(app, user.role)
    home = browser.get("/", follow_redirects=False)
    assert home.status_code == 303
    assert home.headers["location"] == _start(app, user.role)
    state = browser.get("/header/state").json()
    assert state["user"]["login"] == user.login
    assert state["user"]["role"] == user.role


def test_bcrypt_2a_and_2y_hashes_verify() -> None:
    for prefix in (b"2a", b"2b"):
        assert verify_password(bcrypt_hash(prefix=prefix), PASSWORD, "x")
    two_y = "$2y$" + bcrypt_hash().removeprefix("$2b$")
    assert verify_password(two_y, PASSWORD, "x")
    assert not verify_password(two_y, "wrong", "x")


def test_hash_password_makes_argon2_that_verifies() -> None:
    made = hash_password("секрет")
    assert made.startswith("$argon2id$")
    assert verify_password(made, "секрет", "x")
    assert not verify_password(made, "секрет!", "x")


def test_a_hash_of_another_kind_refuses_and_logs_the_login_not_the_hash(
    database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    plain = User(login="legacy", role="operator", password_hash="md5$abcdef0123456789")
    app = make_app(database, config=config_of([*USERS, plain]))
    with caplog.at_level(logging.WARNING, "astpbx.web.auth"):
        response = sign_in(client(app), "legacy", "anything")
    assert response.status_code == 401
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("legacy" in message for message in warnings)
    assert not any("abcdef0123456789" in message for message in warnings)


def test_next_page_after_sign_in_but_never_another_site(app: FastAPI) -> None:
    response = sign_in(client(app), "boss", next_page="/chat?x=1")
    assert response.headers["location"] == "/chat?x=1"
    for target in ("//evil.example/", "https://evil.example/", "/\\evil.example"):
        response = sign_in(client(app), "boss", next_page=target)
        assert response.headers["location"] == _start(app, "manager")


def test_a_page_without_session_leads_to_sign_in_and_back(app: FastAPI) -> None:
    browser = client(app)
    response = browser.get("/chat?x=1", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=/chat%3Fx%3D1"
    form = browser.get(response.headers["location"])
    assert 'name="next" value="/chat?x=1"' in form.text


def test_signed_in_user_on_the_sign_in_page_goes_on(app: FastAPI) -> None:
    browser = signed_in(app, "oper")
    response = browser.get("/login", follow_redirects=False)
    assert response.status_code == 303


def test_wrong_password_and_unknown_user_get_the_same_answer(
    app: FastAPI, database: Database
) -> None:
    for login, password in (("oper", "wrong"), ("nobody", PASSWORD), ("", ""), ("oper", "")):
        browser = client(app)
        response = sign_in(browser, login, password)
        assert response.status_code == 401
        assert (WRONG if login and password else "Введите логин и пароль") in response.text
        assert browser.get("/chat", follow_redirects=False).status_code == 303
    failures = LoginFailures(database)
    assert len(failures.latest("oper", 10)) == 1
    assert len(failures.latest("nobody", 10)) == 1


def test_the_login_form_keeps_the_login_and_escapes_it(app: FastAPI) -> None:
    response = sign_in(client(app), "<b>oper</b>", "wrong")
    assert 'value="&lt;b&gt;oper&lt;/b&gt;"' in response.text


def test_sign_in_needs_the_form_token(app: FastAPI) -> None:
    browser = client(app)
    login_token(browser)
    response = browser.post(
        "/login", data={"login": "oper", "password": PASSWORD}, follow_redirects=False
    )
    assert response.status_code == 403
    assert "Форма устарела" in response.text
    other = client(app)
    response = other.post(
        "/login",
        data={"login": "oper", "password": PASSWORD, "csrf_token": login_token(browser)},
        follow_redirects=False,
    )
    assert response.status_code == 403  # another session's token


def test_sign_in_starts_a_fresh_session(app: FastAPI) -> None:
    browser = client(app)
    before = login_token(browser)
    assert sign_in(browser, "oper").status_code == 303
    assert token(browser) != before


# Lock-out


def test_five_failures_lock_the_login_for_15_minutes(database: Database) -> None:
    clock = Clock()
    app = make_app(database, clock=clock)
    for _ in range(LOCK_AFTER):
        assert sign_in(client(app), "oper", "wrong").status_code == 401
        clock.now += timedelta(minutes=2)
    response = sign_in(client(app), "oper")  # the right password, locked all the same
    assert response.status_code == 429
    assert "заблокирован на 15 минут" in response.text
    assert re.search(r"через \d+ мин", response.text)
    assert sign_in(client(app), "oper2").status_code == 303  # other logins are not locked
    clock.now += timedelta(minutes=12)  # 14 minutes after the fifth failure
    assert sign_in(client(app), "oper").status_code == 429
    clock.now += timedelta(minutes=1)  # 15
    assert sign_in(client(app), "oper").status_code == 303
    assert LoginFailures(database).latest("oper", 10) == []  # a success clears them


def test_failures_spread_over_more_than_15_minutes_do_not_lock(database: Database) -> None:
    clock = Clock()
    app = make_app(database, clock=clock)
    for _ in range(LOCK_AFTER + 2):
        assert sign_in(client(app), "oper", "wrong").status_code == 401
        clock.now += timedelta(minutes=4)
    assert sign_in(client(app), "oper").status_code == 303


def test_unknown_logins_lock_out_too(app: FastAPI) -> None:
    for _ in range(LOCK_AFTER):
        sign_in(client(app), "ghost", "x")
    assert sign_in(client(app), "ghost", "x").status_code == 429


def test_failures_keep_the_address(app: FastAPI, database: Database) -> None:
    sign_in(client(app), "oper", "wrong")
    with database.session() as session:
        from ast_pbx.storage.models import LoginFailure  # noqa: PLC0415

        (failure,) = session.query(LoginFailure).all()
        assert failure.address == "testclient"


# The directory


@pytest.fixture
def directory(tmp_path: Path) -> Directory:
    path = tmp_path / "mfc.db"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE staff (login TEXT PRIMARY KEY, hash TEXT)")
        connection.executemany(
            "INSERT INTO staff VALUES (?, ?)",
            [
                ("1162", argon2_hash("из ИС")),
                ("1176", bcrypt_hash("из ИС")),
                ("oper", argon2_hash("из ИС")),
            ],
        )
    return Directory(
        url=f"sqlite:///{path}",
        queries={"authenticate": "SELECT hash FROM staff WHERE login = :login"},
    )


def test_directory_users_sign_in_with_the_directory_password(
    database: Database, directory: Directory
) -> None:
    people = [
        *USERS,
        User(login="1162", role="operator", name="Иванова"),
        User(login="1176", role="manager", name="Петров"),
        User(login="1177", role="operator"),  # neither in the directory nor a hash
    ]
    app = make_app(database, config=config_of(people, directory))
    assert sign_in(client(app), "1162", "из ИС").status_code == 303
    assert sign_in(client(app), "1176", "из ИС").status_code == 303
    assert sign_in(client(app), "1162", PASSWORD).status_code == 401
    assert sign_in(client(app), "1177", "").status_code == 401
    assert sign_in(client(app), "1177", "из ИС").status_code == 401
    # The directory's hash wins over a local one; without a row the local one counts.
    assert sign_in(client(app), "oper", PASSWORD).status_code == 401
    assert sign_in(client(app), "oper", "из ИС").status_code == 303
    assert sign_in(client(app), "boss", PASSWORD).status_code == 303


def test_directory_users_must_be_in_users(database: Database, directory: Directory) -> None:
    app = make_app(database, config=config_of(USERS, directory))
    assert sign_in(client(app), "1162", "из ИС").status_code == 401


def test_an_unreachable_directory_falls_back_to_local_hashes(
    database: Database, tmp_path: Path
) -> None:
    broken = Directory(
        url=f"sqlite:///{tmp_path / 'missing' / 'mfc.db'}",
        queries={"authenticate": "SELECT hash FROM staff WHERE login = :login"},
    )
    app = make_app(database, config=config_of(USERS, broken))
    assert sign_in(client(app), "boss").status_code == 303


# Sessions


def test_sign_out_ends_the_session(app: FastAPI) -> None:
    browser = signed_in(app, "oper")
    response = browser.post("/logout", data={"csrf_token": token(browser)}, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/login"
    assert browser.get("/chat", follow_redirects=False).status_code == 303


def test_sign_out_needs_the_token(app: FastAPI) -> None:
    browser = signed_in(app, "oper")
    assert browser.post("/logout", follow_redirects=False).status_code == 403
    assert browser.get("/chat").status_code == 200


def test_a_user_removed_from_the_config_is_signed_out(database: Database) -> None:
    app = make_app(database)
    browser = signed_in(app, "oper")
    app.state.web.config = lambda: config_of([u for u in USERS if u.login != "oper"])
    assert browser.get("/chat", follow_redirects=False).status_code == 303


def test_session_cookie_is_strict_httponly_and_secure_when_asked(database: Database) -> None:
    for https_only in (False, True):
        app = make_app(database, https_only=https_only)
        browser = client(app)
        cookie = browser.get("/login").headers["set-cookie"]
        assert cookie.startswith("astpbx_session=")
        assert "httponly" in cookie.lower()
        assert "samesite=strict" in cookie.lower()
        assert "max-age=43200" in cookie.lower()
        assert ("secure" in cookie.lower()) is https_only


def test_a_forged_cookie_is_no_session(app: FastAPI) -> None:
    browser = client(app)
    browser.cookies.set("astpbx_session", "eyJsb2dpbiI6ICJyb290In0=.forged.sig")
    assert browser.get("/chat", follow_redirects=False).status_code == 303


# Every route


def _routes(app: FastAPI) -> list[tuple[str, str]]:
    found = []
    for template, methods in page_routes(app):
        path = re.sub(r"\{[^}]+\}", "1", template)
        found.extend((method, path) for method in sorted(methods))
    return found


PUBLIC = {("GET", "/login"), ("POST", "/login")}


def test_every_route_without_a_session_redirects_pages_and_refuses_scripts(
    app: FastAPI,
) -> None:
    routes = [r for r in _routes(app) if r not in PUBLIC]
    assert ("GET", "/events") in routes and ("POST", "/chat/send") in routes
    browser = client(app)
    for method, path in routes:
        page = browser.request(method, path, follow_redirects=False)
        if path == "/events":
            assert page.status_code == 401, (method, path)
        else:
            assert page.status_code == 303, (method, path, page.status_code)
            assert page.headers["location"].startswith("/login"), (method, path)
        for wanted in ({"Accept": "application/json"}, {"X-Requested-With": "fetch"}):
            script = browser.request(method, path, headers=wanted, follow_redirects=False)
            assert script.status_code == 401, (method, path, wanted)
            assert script.json() == {"error": "Войдите в систему"}


def test_every_post_route_refuses_a_request_without_the_token(app: FastAPI) -> None:
    posts = [path for method, path in _routes(app) if method == "POST"]
    assert {"/login", "/logout", "/header/bind", "/chat/send"} <= set(posts)
    browser = signed_in(app, "root")  # admin: no route refuses for the role
    for path in posts:
        for extra in ({}, {"X-CSRF-Token": "forged"}):
            response = browser.post(path, headers=extra, follow_redirects=False)
            assert response.status_code == 403, (path, extra, response.text)
    wrong_form = browser.post(
        "/header/accept", data={"csrf_token": "forged"}, follow_redirects=False
    )
    assert wrong_form.status_code == 403


def _manager_only(app: FastAPI) -> FastAPI:
    async def secret(user: Annotated[WebUser, Depends(require("manager"))]) -> dict[str, str]:
        return {"login": user.login}

    app.add_api_route("/test/manager", secret, methods=["GET"])
    return app


def test_an_operator_on_a_manager_route_gets_403(app: FastAPI) -> None:
    _manager_only(app)
    manager_pages = [
        path
        for method, path in _routes(app)
        if method == "GET" and path.startswith("/manager") and "{" not in path
    ]
    operator = signed_in(app, "oper")
    for path in ["/test/manager", *manager_pages]:
        page = operator.get(path, follow_redirects=False)
        assert page.status_code == 403, path
        assert "Недостаточно прав" in page.text
        assert page.headers["content-type"].startswith("text/html")
    script = operator.get("/test/manager", headers={"Accept": "application/json"})
    assert script.status_code == 403
    assert script.json() == {"error": "Недостаточно прав"}
    assert signed_in(app, "boss").get("/test/manager").json() == {"login": "boss"}
    assert signed_in(app, "root").get("/test/manager").json() == {"login": "root"}


def test_security_headers_on_every_kind_of_response(app: FastAPI) -> None:
    browser = signed_in(app, "oper")
    responses = [
        browser.get("/chat"),
        browser.get("/header/state"),
        browser.get("/static/app.css"),
        browser.get("/", follow_redirects=False),
        browser.get("/nowhere"),
        client(app).get("/login"),
        client(app).get("/api/tasks"),
    ]
    for response in responses:
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["referrer-policy"] == "same-origin"
        assert response.headers["x-content-type-options"] == "nosniff"
        csp = response.headers["content-security-policy"]
        assert csp.startswith("default-src 'self'")
        assert "unsafe-inline" not in csp
    assert responses[0].headers["cache-control"] == "no-store"
    assert responses[2].headers.get("cache-control") != "no-store"


def test_pages_have_no_inline_scripts_or_handlers(app: FastAPI) -> None:
    browser = signed_in(app, "root")
    for path in ("/login", "/chat"):
        html = (client(app) if path == "/login" else browser).get(path).text
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), path
        assert not re.search(r"\son[a-z]+\s*=", html), path
        assert not re.search(r"\sstyle\s*=", html), path


def test_the_api_is_served_as_it_was(app: FastAPI) -> None:
    api = client(app)
    assert api.get("/api/tasks").status_code == 401
    assert api.get("/api/tasks", auth=("api", "api-secret")).json() == []
    document = api.get("/api/openapi.json").json()
    assert "/api/tasks" in document["paths"]
    assert "content-security-policy" not in api.get("/api/docs").headers


def test_the_menu_shows_what_the_role_may_open(app: FastAPI) -> None:
    operator_page = signed_in(app, "oper").get("/chat").text
    assert 'href="/chat"' in operator_page
    assert "Принимать вызовы из очереди" in operator_page
    assert "Оператор Ольга" in operator_page and "Пользователь" in operator_page
    for path in ("/manager/calls", "/manager/reports", "/manager/history"):
        assert f'href="{path}"' not in operator_page
    manager_page = signed_in(app, "boss").get("/chat").text
    for title, path in (("История вызовов", "/manager/history"), ("Отчёты", "/manager/reports")):
        shown = any(r == ("GET", path) for r in _routes(app))
        assert (f'href="{path}"' in manager_page) is shown, title


def test_start_page_falls_back_to_the_chat(app: FastAPI) -> None:
    class Request:
        def __init__(self, app: FastAPI) -> None:
            self.app = app

    bare = FastAPI()
    assert start_page(Request(bare), WebUser("x", "operator", "x")) == "/chat"  # type: ignore[arg-type]
