"""What every page shares: the signed-in user, the role check, CSRF, rendering.

Pages are FastAPI routers (`ast_pbx/web/pages/*.py`, each exposing `router`) whose
handlers take `user: WebUser = Depends(require("operator"))` (or "manager", "admin")
and, for every state-changing request, `Depends(csrf)`. `render()` gives templates the
user, the CSRF token and the navigation. `WebContext` (app.state.web) holds the database,
the engine (None when the pages run without one), the clock, the system timezone and
the live events (`events`: the engine's bus, or the app's own without an engine).
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import TYPE_CHECKING, Any, Literal

from fastapi import Depends, HTTPException, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from ast_pbx.config.configuration import Config
from ast_pbx.engine.events import Bus
from ast_pbx.storage.db import Database

if TYPE_CHECKING:
    from ast_pbx.engine.engine import Engine

Role = Literal["operator", "manager", "admin"]
RANKS: dict[str, int] = {"operator": 1, "manager": 2, "admin": 3}
# The roles as the manual names them.
ROLE_TITLES: dict[str, str] = {
    "operator": "Пользователь",
    "manager": "Менеджер",
    "admin": "Администратор",
}
CSRF_FIELD, CSRF_HEADER = "csrf_token", "x-csrf-token"


@dataclass(frozen=True)
class WebUser:
    login: str
    role: Role
    name: str

    def can(self, role: Role) -> bool:
        """A manager may do what an operator may, an admin what both may."""
        return RANKS[self.role] >= RANKS[role]


@dataclass
class WebContext:
    database: Database
    config: Callable[[], Config]  # the engine's current config, or a fixed one
    templates: Jinja2Templates
    clock: Callable[[], datetime]
    engine: Engine | None = None
    zone: tzinfo = UTC  # the system timezone: pages show times in it
    bus: Bus = field(default_factory=Bus)  # live events when there is no engine

    @property
    def events(self) -> Bus:
        """Where live events go (`publish`) and come from (`subscribe`)."""
        return self.engine.events if self.engine is not None else self.bus


class NotSignedIn(Exception):
    """No valid session: pages redirect to the sign-in page, XHR gets 401."""


def context_of(request: Request) -> WebContext:
    web: WebContext = request.app.state.web
    return web


def session_user(request: Request) -> WebUser | None:
    """The user of the session, if they are still in the config's users."""
    login = request.session.get("login")
    if not isinstance(login, str):
        return None
    user = next((u for u in context_of(request).config().users if u.login == login), None)
    if user is None:
        return None  # removed from the config: signed out
    return WebUser(user.login, user.role, user.name or user.login)


def require(role: Role) -> Callable[[Request], Awaitable[WebUser]]:
    """A dependency: the signed-in user, who must have at least `role` (403 if not)."""

    async def dependency(request: Request) -> WebUser:
        user = session_user(request)
        if user is None:
            raise NotSignedIn
        if not user.can(role):
            raise HTTPException(403, "Недостаточно прав")
        return user

    return dependency


def wants_json(request: Request) -> bool:
    """A request of page scripts (fetch, XHR, the live stream) rather than of the
    browser's address bar: refusals come back as status codes, not pages."""
    accept = request.headers.get("accept", "")
    content_type = request.headers.get("content-type", "")
    return (
        "application/json" in accept
        or "text/event-stream" in accept
        or "x-requested-with" in request.headers
        or content_type.startswith("application/json")
        or request.url.path == "/events"
        or request.url.path.startswith("/events/")
    )


def page_routes(app: Any) -> list[tuple[str, frozenset[str]]]:
    """(path, methods) of every route of the app's routers (not `/api`, not mounts).

    FastAPI ≥ 0.16x keeps included routers whole in `app.routes`; this looks inside."""
    found: list[tuple[str, frozenset[str]]] = []
    for route in _flat_routes(app.routes):
        path, methods = getattr(route, "path", None), getattr(route, "methods", None)
        if isinstance(path, str) and methods:
            found.append((path, frozenset(methods)))
    return found


def _flat_routes(routes: Any) -> Iterator[Any]:
    try:
        from fastapi.routing import iter_route_contexts  # noqa: PLC0415
    except ImportError:  # an older FastAPI: included routes are flat already
        yield from routes
        return
    yield from iter_route_contexts(routes)


def csrf_token(request: Request) -> str:
    token = request.session.get(CSRF_FIELD)
    if not isinstance(token, str):
        token = request.session[CSRF_FIELD] = secrets.token_urlsafe(32)
    return token


async def csrf(request: Request) -> None:
    """A dependency of every state-changing route: the session's token must come back
    in the form field `csrf_token` or the `X-CSRF-Token` header (403 if not).

    Every such route is for signed-in users: without a session this is `NotSignedIn`
    (the sign-in page, or 401), whichever dependency of the route runs first."""
    if session_user(request) is None:
        raise NotSignedIn
    await check_csrf(request)


async def check_csrf(request: Request) -> None:
    """The token check of `csrf` alone, for the sign-in form (no user yet)."""
    expected = request.session.get(CSRF_FIELD)
    given = request.headers.get(CSRF_HEADER)
    if given is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        given = str((await request.form()).get(CSRF_FIELD) or "")
    if not isinstance(expected, str) or not given or not secrets.compare_digest(expected, given):
        raise HTTPException(403, "Форма устарела: обновите страницу (CSRF)")


def render(
    request: Request, template: str, user: WebUser | None, status: int = 200, **values: Any
) -> HTMLResponse:
    """A page: the template with the user, the CSRF token and `values`."""
    context = context_of(request)
    return context.templates.TemplateResponse(
        request,
        template,
        {"user": user, "csrf_token": csrf_token(request), **values},
        status_code=status,
    )


SignedIn = Depends(require("operator"))
