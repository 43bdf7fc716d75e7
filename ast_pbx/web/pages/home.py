"""`GET /`: each user's own start page."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse

from ast_pbx.web.context import SignedIn, WebUser, page_routes

router = APIRouter()

# Where each role starts, in order of preference: the first page the app has.
START = {
    "operator": ("/operator", "/chat"),
    "manager": ("/manager/calls", "/operator", "/chat"),
    "admin": ("/manager/calls", "/operator", "/chat"),
}


@router.get("/")
async def home(request: Request, user: WebUser = SignedIn) -> RedirectResponse:
    return RedirectResponse(start_page(request, user), status_code=303)


def start_page(request: Request, user: WebUser) -> str:
    paths = {path for path, methods in page_routes(request.app) if "GET" in methods}
    return next((path for path in START[user.role] if path in paths), "/chat")
