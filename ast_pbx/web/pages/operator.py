"""The call-handling form (manual: "Форма обработки вызовов"), GET /operator.

Left: the current caller's number (operator.js fills it when the operator's phone rings
or answers), the applicants whose card has that number ("Показать": card and cases),
the search by full name with "Привязать номер" (write the caller's number into a card),
a case opened by its number. Right: the interaction history of the number.

Every directory lookup is a query of `directory.queries` (`applicants_by_phone`,
`applicants_by_name`, `applicant`, `applicant_cases`, `case_by_number`, `bind_phone`):
a query that is not configured hides its part of the form, a failing one shows its
error there. The page works without JavaScript (GET /operator takes phone, name,
applicant and number); operator.js fetches the same parts as fragments.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from ast_pbx.engine.directory import FORM_QUERIES, DirectoryError, SqlDirectory
from ast_pbx.storage.interactions import InteractionStore
from ast_pbx.storage.operators import OperatorStore
from ast_pbx.web.context import WebUser, context_of, csrf, render, require
from ast_pbx.web.interactions import (
    CALLER_MAX,
    CASE_MAX,
    GROUP_MAX,
    NAME_MAX,
    PHONE_MAX,
    TEXT_MAX,
    Found,
    ask,
    caller_name,
    clean_phone,
    form_data,
    history_view,
    is_fetch,
    may_edit,
    page_directory,
    ru_date,
    text_field,
)

log = logging.getLogger("astpbx.web.operator")

router = APIRouter()

Operator = Annotated[WebUser, Depends(require("operator"))]
PhoneQuery = Annotated[str, Query(max_length=PHONE_MAX)]

# What GET /operator?bound=… says after "Привязать номер" without JavaScript (a code, so
# that no link can make the page say something else).
BOUND = {
    "1": "Номер {phone} привязан к заявителю",
    "0": "Номер {phone} не привязан: ошибка ИС МФЦ (подробности в журнале)",
}

# The columns of `applicant_cases` the case list names itself; others follow as they are.
CASE_COLUMNS = {"number", "title", "status", "opened"}


# Views


def applicants_of(found: Found) -> list[dict[str, str]]:
    """Rows of applicants_by_*: id, full_name, birth_date (as 19.09.1973)."""
    return [
        {
            "id": row.get("id", ""),
            "full_name": row.get("full_name", ""),
            "birth_date": ru_date(row.get("birth_date", "")),
        }
        for row in found.rows
    ]


def fields_of(row: dict[str, str]) -> list[tuple[str, str]]:
    """A row as label/value pairs: the column names are the labels."""
    return [(column, ru_date(value)) for column, value in row.items()]


def features(directory: SqlDirectory) -> dict[str, bool]:
    return {name: directory.has(name) for name in FORM_QUERIES}


async def by_phone(directory: SqlDirectory, phone: str) -> dict[str, Any]:
    found = await ask(directory, "applicants_by_phone", {"phone": phone})
    return {"found": found, "applicants": applicants_of(found), "phone": phone}


async def by_name(directory: SqlDirectory, name: str) -> dict[str, Any]:
    # LIKE's own characters are the operator's text, not patterns (queries say ESCAPE '\').
    escaped = name.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    found = await ask(directory, "applicants_by_name", {"name": f"%{escaped}%"})
    return {"found": found, "applicants": applicants_of(found), "name": name}


async def applicant_card(directory: SqlDirectory, applicant: int) -> dict[str, Any]:
    card, cases = await asyncio.gather(
        ask(directory, "applicant", {"id": applicant}),
        ask(directory, "applicant_cases", {"id": applicant}),
    )
    return {
        "id": applicant,
        "card": card,
        "fields": fields_of(card.rows[0]) if card.rows else [],
        "cases": cases,
        "case_rows": [
            {
                "number": row.get("number", ""),
                "title": row.get("title", ""),
                "status": row.get("status", ""),
                "opened": ru_date(row.get("opened", "")),
                "more": [(k, ru_date(v)) for k, v in row.items() if k not in CASE_COLUMNS],
            }
            for row in cases.rows
        ],
    }


async def case_view(directory: SqlDirectory, number: str) -> dict[str, Any]:
    found = await ask(directory, "case_by_number", {"case": number})
    return {
        "number": number,
        "found": found,
        "fields": fields_of(found.rows[0]) if found.rows else [],
    }


async def bound_phone(request: Request, user: WebUser) -> str | None:
    """The phone the operator is bound to: the engine's view, else the database's."""
    context = context_of(request)
    if context.engine is not None:
        record = context.engine.presence.operators.get(user.login)
        return record.phone if record is not None else None
    try:
        stored = await asyncio.to_thread(OperatorStore(context.database).get, user.login)
    except Exception:
        log.exception("the phone bound to %s could not be read", user.login)
        return None
    return stored.phone if stored is not None else None


def _back(phone: str, **more: str) -> RedirectResponse:
    query = urlencode({"phone": phone, **{k: v for k, v in more.items() if v}})
    return RedirectResponse(f"/operator?{query}", status_code=303)


# The page


@router.get("/operator", response_class=HTMLResponse)
async def operator_page(
    request: Request,
    user: Operator,
    *,
    phone: PhoneQuery = "",
    name: Annotated[str, Query(max_length=NAME_MAX)] = "",
    applicant: Annotated[int | None, Query(ge=0, le=2**62)] = None,
    number: Annotated[str, Query(max_length=CASE_MAX)] = "",
    bound: Annotated[Literal["0", "1"] | None, Query()] = None,
) -> HTMLResponse:
    directory = page_directory(request)
    phone, name, number = clean_phone(phone), name.strip(), number.strip()
    values: dict[str, Any] = {
        "phone": phone,
        "name": name,
        "case_number": number,
        "message": BOUND.get(bound or "", "").format(phone=phone),
        "my_phone": await bound_phone(request, user),
        "features": features(directory),
        "by_phone": await by_phone(directory, phone) if phone else None,
        "search": await by_name(directory, name) if name else None,
        "applicant": await applicant_card(directory, applicant) if applicant is not None else None,
        "case": await case_view(directory, number) if number else None,
        "history": await history_view(request, user, phone) if phone else None,
    }
    return render(request, "operator.html", user, **values)


@router.get("/operator/state")
async def operator_state(request: Request, user: Operator) -> JSONResponse:
    """The phone bound to the operator, as JSON for page scripts."""
    return JSONResponse({"login": user.login, "phone": await bound_phone(request, user)})


# Fragments


@router.get("/operator/lookup", response_model=None)
async def lookup(request: Request, user: Operator, phone: PhoneQuery) -> Response:
    """The applicants whose card has `phone`: a fragment, or JSON when asked for."""
    directory = page_directory(request)
    phone = clean_phone(phone)
    if not phone:
        raise HTTPException(400, "Укажите номер телефона")
    found = await by_phone(directory, phone)
    if "application/json" in request.headers.get("accept", ""):
        result: Found = found["found"]
        return JSONResponse(
            {
                "phone": phone,
                "configured": result.configured,
                "error": result.error,
                "applicants": found["applicants"],
            },
            status_code=502 if result.error else 200,
        )
    return render(
        request,
        "operator_applicants.html",
        user,
        status=502 if found["found"].error else 200,
        result=found,
        mode="phone",
        phone=phone,
        features=features(directory),
    )


@router.get("/operator/search", response_class=HTMLResponse)
async def search(
    request: Request,
    user: Operator,
    name: Annotated[str, Query(max_length=NAME_MAX)],
    phone: PhoneQuery = "",
) -> HTMLResponse:
    """Applicants by a part of the full name; "Привязать номер" when a number is current."""
    directory = page_directory(request)
    name = name.strip()
    if not name:
        raise HTTPException(400, "Введите ФИО или его часть")
    found = await by_name(directory, name)
    return render(
        request,
        "operator_applicants.html",
        user,
        status=502 if found["found"].error else 200,
        result=found,
        mode="name",
        phone=clean_phone(phone),
        features=features(directory),
    )


@router.get("/operator/applicant/{applicant}", response_class=HTMLResponse)
async def applicant(
    request: Request, user: Operator, applicant: int, phone: PhoneQuery = ""
) -> HTMLResponse:
    """The card ("Показать") and the cases of an applicant."""
    directory = page_directory(request)
    view = await applicant_card(directory, applicant)
    status = 502 if view["card"].error else 200
    if view["card"].configured and not view["card"].error and not view["card"].rows:
        status = 404
    return render(
        request,
        "operator_applicant.html",
        user,
        status=status,
        applicant=view,
        phone=clean_phone(phone),
        features=features(directory),
    )


@router.get("/operator/case", response_class=HTMLResponse)
async def case(
    request: Request, user: Operator, number: Annotated[str, Query(max_length=CASE_MAX)]
) -> HTMLResponse:
    """A case opened by its number."""
    number = number.strip()
    if not number:
        raise HTTPException(400, "Введите номер дела")
    view = await case_view(page_directory(request), number)
    found: Found = view["found"]
    status = 502 if found.error else 404 if found.configured and not found.rows else 200
    return render(request, "operator_case.html", user, status=status, case=view)


@router.get("/operator/history", response_class=HTMLResponse)
async def history(request: Request, user: Operator, phone: PhoneQuery) -> HTMLResponse:
    """The interaction history of a number (the right pane)."""
    phone = clean_phone(phone)
    if not phone:
        raise HTTPException(400, "Укажите номер телефона")
    return render(
        request, "operator_history.html", user, history=await history_view(request, user, phone)
    )


# Changes


@router.post("/operator/bind-phone", response_model=None, dependencies=[Depends(csrf)])
async def bind_phone(request: Request, user: Operator) -> Response:
    """ "Привязать номер": write the current number into an applicant's card."""
    data = await form_data(request)
    phone = clean_phone(text_field(data, "phone", PHONE_MAX, "Номер"))
    try:
        applicant_id = int(text_field(data, "applicant", 20, "Заявитель"))
    except ValueError as error:
        raise HTTPException(400, "Не выбран заявитель") from error
    if not phone:
        raise HTTPException(400, "Нет номера, который можно привязать")
    directory = page_directory(request)
    if not directory.has("bind_phone"):
        raise HTTPException(404, "Привязка номера не настроена (directory.queries.bind_phone)")
    card = await ask(directory, "applicant", {"id": applicant_id})
    if card.configured and not card.error and not card.rows:
        raise HTTPException(404, "Заявитель не найден")
    try:
        await asyncio.to_thread(
            directory.execute, "bind_phone", {"id": applicant_id, "phone": phone}
        )
    except DirectoryError as error:
        log.warning("%s: binding %s to applicant %s failed", user.login, phone, applicant_id)
        message, failed = f"Номер не привязан. ИС МФЦ: {error}", True
    else:
        log.info("%s bound %s to applicant %s", user.login, phone, applicant_id)
        message, failed = f"Номер {phone} привязан к заявителю", False
    if not is_fetch(request):
        return _back(phone, bound="0" if failed else "1")
    return render(
        request,
        "operator_applicants.html",
        user,
        status=502 if failed else 200,
        result=await by_phone(directory, phone),
        mode="phone",
        phone=phone,
        features=features(directory),
        notice=message,
        notice_error=failed,
    )


def _entry_texts(data: dict[str, str]) -> dict[str, str]:
    return {
        "question_group": text_field(data, "question_group", GROUP_MAX, "Группа типового вопроса"),
        "question": text_field(data, "question", TEXT_MAX, "Суть обращения"),
        "answer": text_field(data, "answer", TEXT_MAX, "Ответ"),
        "caller_name": text_field(data, "caller_name", CALLER_MAX, "ФИО обратившегося"),
    }


async def _history_answer(request: Request, user: WebUser, phone: str) -> Response:
    if not is_fetch(request):
        return _back(phone)
    view = await history_view(request, user, phone)
    return render(request, "operator_history.html", user, history=view)


@router.post("/operator/history", response_model=None, dependencies=[Depends(csrf)])
async def add_entry(request: Request, user: Operator) -> Response:
    """A new entry of the history of a number, handled by the signed-in operator."""
    data = await form_data(request)
    phone = clean_phone(text_field(data, "phone", PHONE_MAX, "Номер"))
    if not phone:
        raise HTTPException(400, "Укажите номер телефона")
    direction = data.get("direction", "in")
    if direction not in ("in", "out"):
        raise HTTPException(400, "Тип вызова: входящий или исходящий")
    texts = _entry_texts(data)
    context = context_of(request)
    name = texts["caller_name"] or await caller_name(page_directory(request), phone)
    await asyncio.to_thread(
        InteractionStore(context.database).add,
        phone,
        context.clock(),
        "in" if direction == "in" else "out",
        caller_name=name,
        operator=user.login,
        question_group=texts["question_group"] or None,
        question=texts["question"] or None,
        answer=texts["answer"] or None,
    )
    return await _history_answer(request, user, phone)


@router.post("/operator/history/{entry}", response_model=None, dependencies=[Depends(csrf)])
async def edit_entry(request: Request, user: Operator, entry: int) -> Response:
    """Question group, question, answer (and the caller's name) of an entry: by its
    operator, anyone when it has none yet, or a manager."""
    data = await form_data(request)
    texts = _entry_texts(data)
    context = context_of(request)
    store = InteractionStore(context.database)
    record = await asyncio.to_thread(store.get, entry)
    if record is None:
        raise HTTPException(404, "Запись истории не найдена")
    if not may_edit(user, record):
        raise HTTPException(403, "Эту запись может изменить только её оператор или менеджер")
    # A field not sent keeps its value; one sent empty is cleared.
    await asyncio.to_thread(
        store.update,
        entry,
        question_group=texts["question_group"]
        if "question_group" in data
        else record.question_group,
        question=texts["question"] if "question" in data else record.question,
        answer=texts["answer"] if "answer" in data else record.answer,
        operator=record.operator or user.login,
        at=context.clock(),
        caller_name=texts["caller_name"] if "caller_name" in data else None,
    )
    return await _history_answer(request, user, record.phone)
