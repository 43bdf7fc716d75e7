"""The one HTTP app of the engine: the pages of the call center and the API under `/api`.

`create_app(...)` puts together:
- the external-system API (`api.create_api`) answering every path under `/api`, as it
  is, with its own basic auth, JSON errors and OpenAPI document;
- the pages (`pages/*.py` routers, `live.py`'s `/events`), signed in with a session
  cookie `astpbx_session` (signed by `itsdangerous` with `secret_key`; SameSite=Strict,
  HttpOnly; 12 hours after the last request; `https_only` marks it Secure, for a page
  served over HTTPS by a proxy — the engine itself listens on plain HTTP);
- templates (`templates/`), static files (`static/`, at `/static`), and the answers to
  refusals: no session → the sign-in page (303) for pages, 401 for scripts; no right
  → 403, a page "Недостаточно прав" or JSON;
- security headers on every response: a Content-Security-Policy allowing nothing but
  this origin (so no inline scripts or styles: they live in `static/`), no framing, no
  referrer outside, no content sniffing, no caching of pages.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.sessions import SessionMiddleware
from starlette.routing import BaseRoute, Match, NoMatchFound
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ast_pbx import __version__
from ast_pbx.config.configuration import Config
from ast_pbx.errors import AstPbxError
from ast_pbx.storage.db import Database
from ast_pbx.web import live
from ast_pbx.web.api import CallBackHook, DialNowHook, create_api
from ast_pbx.web.auth import Authenticator
from ast_pbx.web.context import (
    RANKS,
    ROLE_TITLES,
    NotSignedIn,
    WebContext,
    WebUser,
    page_routes,
    render,
    session_user,
    wants_json,
)
from ast_pbx.web.pages import callbacks, chat, header, home, login, manager, operator

if TYPE_CHECKING:
    from ast_pbx.engine.engine import Engine

log = logging.getLogger("astpbx.web")

HERE = Path(__file__).parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"
SESSION_COOKIE = "astpbx_session"
SESSION_MAX_AGE = 12 * 3600  # seconds after the last request
SECRET_FILE = "web-secret"  # in paths.data

# The menu: (title, path, least role). An entry shows when a page answers its path.
NAV: tuple[tuple[str, str, str], ...] = (
    ("Обработка вызовов", "/operator", "operator"),
    ("Обратные звонки", "/callbacks", "operator"),
    ("Активные разговоры", "/manager/calls", "manager"),
    ("История вызовов", "/manager/history", "manager"),
    ("Отчёты", "/manager/reports", "manager"),
    ("Чат", "/chat", "operator"),
)

CSP = (
    "default-src 'self'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'; "
    "object-src 'none'"
)
SECURITY_HEADERS = {
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
    "x-content-type-options": "nosniff",
}
# Swagger UI loads its scripts from a CDN and starts them inline: no CSP there.
NO_CSP = ("/api/docs",)


def create_app(
    *,
    database: Database,
    config: Callable[[], Config],
    clock: Callable[[], datetime],
    engine: Engine | None = None,
    api_username: str,
    api_password: str,
    secret_key: str,
    timezone: tzinfo = UTC,
    dial_now_hook: DialNowHook | None = None,
    call_back_hook: CallBackHook | None = None,
    https_only: bool = False,
) -> FastAPI:
    """The pages and the API over `database`; `engine` is the running engine (None:
    pages without live calls, presence changes go straight to the database)."""
    if len(secret_key) < 32:
        raise AstPbxError("the web secret key is shorter than 32 characters")
    api = create_api(
        database=database,
        username=api_username,
        password=api_password,
        clock=clock,
        dial_now_hook=dial_now_hook,
        call_back_hook=call_back_hook,
        timezone=timezone,
    )
    app = FastAPI(
        title="astpbx", version=__version__, openapi_url=None, docs_url=None, redoc_url=None
    )
    templates = Jinja2Templates(directory=str(TEMPLATES))
    app.state.web = WebContext(database, config, templates, clock, engine, zone=timezone)
    app.state.auth = Authenticator(database, config)
    app.state.live = live.Live()
    app.router.routes.append(PathPrefix("/api", api))
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    for router in page_routers():
        app.include_router(router)
    _template_helpers(templates, timezone, _get_paths(app))
    _install_error_handlers(app)
    app.add_middleware(
        SessionMiddleware,
        secret_key=secret_key,
        session_cookie=SESSION_COOKIE,
        max_age=SESSION_MAX_AGE,
        same_site="strict",
        https_only=https_only,
    )
    app.add_middleware(SecurityHeaders)
    return app


def page_routers() -> list[APIRouter]:
    """Every page's router; `/api` is apart (its own app)."""
    return [
        home.router,
        login.router,
        header.router,
        chat.router,
        live.router,
        operator.router,
        callbacks.router,
        manager.router,
    ]


def load_secret(data_dir: str) -> str:
    """The key signing session cookies: `<data_dir>/web-secret`, made (0600, 32 random
    bytes in hex) on first start. Kept across restarts so nobody is signed out."""
    path = Path(data_dir) / SECRET_FILE
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            secret = path.read_text(encoding="ascii").strip()
        else:
            secret = secrets.token_hex(32)
            with os.fdopen(descriptor, "w", encoding="ascii") as file:
                file.write(secret + "\n")
    except (OSError, UnicodeDecodeError) as error:
        raise AstPbxError(f"cannot read or create the web secret {path}: {error}") from error
    if len(secret) < 32:
        raise AstPbxError(f"the web secret {path} is shorter than 32 characters: delete it")
    return secret


class PathPrefix(BaseRoute):
    """Every request under `prefix` goes to `app` with its path unchanged (a Mount
    would strip the prefix; the API's routes and OpenAPI document carry it)."""

    def __init__(self, prefix: str, app: ASGIApp) -> None:
        self.prefix = prefix.rstrip("/")
        self.app = app

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] in ("http", "websocket"):
            path: str = scope["path"]
            if path == self.prefix or path.startswith(self.prefix + "/"):
                return Match.FULL, {"endpoint": self.app}
        return Match.NONE, {}

    def url_path_for(self, name: str, /, **path_params: Any) -> Any:
        raise NoMatchFound(name, path_params)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


class SecurityHeaders:
    """The security headers on every response; pages and JSON are never cached."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers[name] = value
                if not path.startswith(NO_CSP):
                    headers["content-security-policy"] = CSP
                if not path.startswith("/static/") and "cache-control" not in headers:
                    headers["cache-control"] = "no-store"
            await send(message)

        await self.app(scope, receive, sending)


def _get_paths(app: FastAPI) -> frozenset[str]:
    return frozenset(path for path, methods in page_routes(app) if "GET" in methods)


def _template_helpers(templates: Jinja2Templates, zone: tzinfo, paths: frozenset[str]) -> None:
    def nav(user: WebUser | None) -> list[tuple[str, str]]:
        if user is None:
            return []
        return [
            (title, path)
            for title, path, role in NAV
            if path in paths and RANKS[user.role] >= RANKS[role]
        ]

    def localtime(at: datetime | None, pattern: str = "%d.%m.%Y %H:%M:%S") -> str:
        return "" if at is None else at.astimezone(zone).strftime(pattern)

    def static(name: str) -> str:
        return f"/static/{name}?v={__version__}"

    templates.env.globals.update(nav=nav, role_title=ROLE_TITLES.get, static=static)
    templates.env.filters["localtime"] = localtime


def _install_error_handlers(app: FastAPI) -> None:
    async def not_signed_in(request: Request, error: Exception) -> Response:
        if wants_json(request):
            return JSONResponse({"error": "Войдите в систему"}, status_code=401)
        target = "/login"
        here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        if request.method == "GET" and here != "/":
            target += "?next=" + quote(here, safe="/")
        return RedirectResponse(target, status_code=303)

    async def http_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, StarletteHTTPException)
        if wants_json(request) or error.status_code < 400:
            return JSONResponse(
                {"error": str(error.detail)}, status_code=error.status_code, headers=error.headers
            )
        user = session_user(request)
        template = "403.html" if error.status_code == 403 else "error.html"
        response = render(
            request, template, user, status=error.status_code, message=str(error.detail)
        )
        if error.headers:
            response.headers.update(error.headers)
        return response

    app.add_exception_handler(NotSignedIn, not_signed_in)
    app.add_exception_handler(StarletteHTTPException, http_error)
