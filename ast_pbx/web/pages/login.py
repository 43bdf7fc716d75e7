"""Signing in and out: `GET/POST /login`, `POST /logout`.

The sign-in form carries a CSRF token like every other form (the session gets one when
the form is shown), so that no other site can sign a browser in under its own account.
A successful sign-in starts a fresh session: whatever the browser held before is gone.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request, Response
from fastapi.responses import RedirectResponse
from starlette.concurrency import run_in_threadpool

from ast_pbx.web.auth import Authenticator
from ast_pbx.web.context import (
    WebUser,
    check_csrf,
    context_of,
    csrf,
    csrf_token,
    render,
    session_user,
)
from ast_pbx.web.pages.home import start_page

router = APIRouter()

STALE = "Форма устарела: попробуйте войти ещё раз."


@router.get("/login")
async def login_form(
    request: Request, next_: Annotated[str, Query(alias="next", max_length=2048)] = ""
) -> Response:
    target = safe_next(next_)
    user = session_user(request)
    if user is not None:
        return RedirectResponse(target or start_page(request, user), status_code=303)
    return render(request, "login.html", None, next=target, login="", message=None)


@router.post("/login")
async def sign_in(
    request: Request,
    login: Annotated[str, Form(max_length=256)] = "",
    password: Annotated[str, Form(max_length=4096)] = "",
    next_: Annotated[str, Form(alias="next", max_length=2048)] = "",
) -> Response:
    target = safe_next(next_)
    try:
        await check_csrf(request)
    except HTTPException:
        return _form(request, target, login, STALE, 403)
    auth: Authenticator = request.app.state.auth
    address = request.client.host if request.client else None
    context = context_of(request)
    result = await run_in_threadpool(
        auth.sign_in, login, password, now=context.clock(), address=address
    )
    if result.user is None:
        status = 429 if result.locked_until is not None else 401
        return _form(request, target, login, result.message, status)
    user = result.user
    request.session.clear()
    request.session["login"] = user.login
    csrf_token(request)
    signed_in = WebUser(user.login, user.role, user.name or user.login)
    return RedirectResponse(target or start_page(request, signed_in), status_code=303)


@router.post("/logout", dependencies=[Depends(csrf)])
async def sign_out(request: Request) -> RedirectResponse:
    request.session.clear()
    return RedirectResponse("/login", status_code=303)


def safe_next(target: str) -> str:
    """A page of this site to go to after signing in, or "" (a link elsewhere is not
    followed: `//evil.example`, `https://…`, `/\\evil`)."""
    if not target.startswith("/") or target.startswith(("//", "/\\")):
        return ""
    if any(ord(c) < 0x20 for c in target) or target.split("?", 1)[0] in ("/login", "/logout"):
        return ""
    return target


def _form(request: Request, target: str, login: str, message: str | None, status: int) -> Response:
    return render(
        request, "login.html", None, status=status, next=target, login=login, message=message
    )
