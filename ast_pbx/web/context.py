"""What every page shares: the signed-in user, the role check, CSRF, rendering.

Pages are FastAPI routers (`ast_pbx/web/pages/*.py`, each exposing `router`) whose
handlers take `user: WebUser = Depends(require("operator"))` (or "manager", "admin")
and, for every state-changing request, `Depends(csrf)`. `render()` gives templates the
user, the CSRF token and the navigation. `WebContext` (app.state.web) holds the database,
the engine (None when the pages run without one) and the clock.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from fastapi import Depends, HTTPException, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from ast_pbx.config.configuration import Config
from ast_pbx.storage.db import Database

if TYPE_CHECKING:
    from ast_pbx.engine.engine import Engine

Role = Literal["operator", "manager", "admin"]
RANKS: dict[str, int] = {"operator": 1, "manager": 2, "admin": 3}
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


def csrf_token(request: Request) -> str:
    token = request.session.get(CSRF_FIELD)
    if not isinstance(token, str):
        token = request.session[CSRF_FIELD] = secrets.token_urlsafe(32)
    return token


async def csrf(request: Request) -> None:
    """A dependency of every state-changing route: the session's token must come back
    in the form field `csrf_token` or the `X-CSRF-Token` header (403 if not)."""
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
