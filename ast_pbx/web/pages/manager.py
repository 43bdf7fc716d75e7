"""The manager's pages, the manual's «Мониторинг»: active calls (live, with listening
in), the call history (marks, recordings) and the six reports as Excel downloads.

Every route needs the manager role; the state-changing ones (listen, mark) need the
CSRF token too. They answer JSON to `manager.js` (which asks for it) and a page or a
redirect to a plain form, so the pages work without scripts as well.

Recordings are served by the call's log id only: the file is the one the call log
names, and only when it lies inside `paths.recordings` — nothing of the path comes from
the request.
"""

from __future__ import annotations

import io
import mimetypes
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qsl, urlencode

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response

from ast_pbx.ari import AriError
from ast_pbx.engine.monitor import ActiveCall, NoSuchCall
from ast_pbx.reports import REPORTS, make, period
from ast_pbx.storage.calls import CallLog, CallRecord
from ast_pbx.storage.db import Database
from ast_pbx.web.context import (
    WebContext,
    WebUser,
    context_of,
    csrf,
    render,
    require,
    wants_json,
)

router = APIRouter(prefix="/manager")

ManagerUser = Annotated[WebUser, Depends(require("manager"))]
CheckedCsrf = Annotated[None, Depends(csrf)]
FromDay = Annotated[str | None, Query(alias="from")]

# The engine's call states (`monitor.call_state`) as the page names them.
STATES = {
    "VOICE_MENU": "Голосовое меню",
    "QUEUE": "В очереди",
    "DIALING": "Соединение",
    "TALK": "Разговор",
    "TRANSFER": "Перевод",
}
HISTORY_LIMIT = 200
MAX_LOG_ID = 2**31 - 1  # `calls.id` is an INTEGER: a larger id would be a database error
LOG_ID = re.compile(r"[0-9]{1,10}")
# Dates a person means; outside, the period's arithmetic or the database would overflow.
FIRST_DAY, LAST_DAY = date(1970, 1, 1), date(9000, 12, 31)
HISTORY_KEYS = ("from", "to", "caller", "called", "marked")
FILTER_LENGTH = 64  # as long as a number column
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
# The extra field each report's form has: filter → its label.
FILTER_LABELS = {"operator": "Сотрудник", "number": "Номер телефона (или его часть)"}

NO_PHONE = (
    "К вам не привязан телефон: привяжите его в шапке страницы (кнопка «Привязать»), "
    "на него и позвонит подключение к разговору."
)


class BadPeriod(Exception):
    """A date of the form that is not a date, or a period that ends before it starts."""


# Active calls


@dataclass(frozen=True)
class CallRow:
    id: str
    caller: str
    called: str
    peer: str
    state: str
    state_label: str
    since: str
    elapsed: str
    position: int | None
    talking: bool


def call_row(call: ActiveCall, now: datetime, tz: tzinfo) -> CallRow:
    return CallRow(
        id=call.id,
        caller=call.caller or "",
        called=call.called,
        peer=call.peer or "",
        state=call.state,
        state_label=STATES.get(call.state, call.state),
        since=call.since.astimezone(tz).strftime("%H:%M:%S"),
        elapsed=clock_text(now - call.since),
        position=call.queue_position,
        talking=call.state == "TALK",
    )


def calls_values(context: WebContext) -> dict[str, Any]:
    if context.engine is None:
        return {"calls": [], "engine_missing": True}
    tz, now = context.zone, context.clock()
    rows = [call_row(c, now, tz) for c in context.engine.monitor.active_calls()]
    return {"calls": rows, "engine_missing": False}


@router.get("/calls")
async def calls_page(request: Request, user: ManagerUser) -> Response:
    return render(request, "manager_calls.html", user, **calls_values(context_of(request)))


@router.get("/calls/table")
async def calls_table(request: Request, user: ManagerUser) -> Response:
    """The table alone: `manager.js` swaps it in when the calls change."""
    context = context_of(request)
    return render(request, "manager_calls_table.html", user, **calls_values(context))


@router.post("/calls/{call_id}/listen")
async def listen(request: Request, call_id: str, user: ManagerUser, _: CheckedCsrf) -> Response:
    """Ring the manager's bound phone and let it hear the call (or whisper to the
    operator: the caller does not hear the manager)."""
    fields = await form_fields(request)
    whisper = fields.get("whisper", "") in ("1", "true", "on")
    status, message = await start_listening(context_of(request), user, call_id, whisper)
    if wants_json(request):
        return JSONResponse({"ok": status == 200, "message": message}, status_code=status)
    values = calls_values(context_of(request))
    return render(
        request,
        "manager_calls.html",
        user,
        status,
        message=message,
        message_error=status >= 400,
        **values,
    )


async def start_listening(
    context: WebContext, user: WebUser, call_id: str, whisper: bool
) -> tuple[int, str]:
    """The HTTP status and the message for the manager."""
    engine = context.engine
    if engine is None:
        return 503, "Движок не запущен: подключиться к разговору нельзя."
    operator = engine.presence.operators.get(user.login)
    phone = operator.phone if operator is not None else None
    if not phone:
        return 409, NO_PHONE
    try:
        await engine.monitor.listen(call_id, phone, whisper=whisper)
    except NoSuchCall:
        return 404, f"Вызов {call_id} уже завершён или не найден."
    except AriError as exc:
        return 502, f"Asterisk не подключил телефон {phone}: {exc}"
    if whisper:
        return 200, f"Телефон {phone} зазвонит: снимите трубку — вас услышит только оператор."
    return 200, f"Телефон {phone} зазвонит: снимите трубку, чтобы слушать разговор."


# History


@dataclass(frozen=True)
class HistoryRow:
    id: int
    caller: str
    called: str
    started: str
    ended: str
    duration: str
    marked: bool
    recording: str  # "file", "purged" or ""


def history_row(call: CallRecord, tz: tzinfo) -> HistoryRow:
    recording = ""
    if call.recording:
        recording = "purged" if call.recording_purged_at is not None else "file"
    return HistoryRow(
        id=call.id,
        caller=call.caller or "",
        called=call.called,
        started=local_text(call.started_at, tz),
        ended=local_text(call.ended_at, tz) if call.ended_at else "",
        duration=duration_text(call.duration),
        marked=call.marked,
        recording=recording,
    )


@router.get("/history")
async def history(
    request: Request,
    user: ManagerUser,
    *,
    first: FromDay = None,
    to: str | None = None,
    caller: str = "",
    called: str = "",
    marked: str = "",
) -> Response:
    context = context_of(request)
    tz = context.zone
    today = context.clock().astimezone(tz).date()
    caller, called = caller.strip()[:FILTER_LENGTH], called.strip()[:FILTER_LENGTH]
    marked_only = marked in ("1", "on", "true")
    values: dict[str, Any] = {
        "first": first or today.isoformat(),
        "last": to or today.isoformat(),
        "caller": caller,
        "called": called,
        "marked_only": marked_only,
        "back": urlencode([(k, v) for k, v in request.query_params.items() if k in HISTORY_KEYS]),
        "rows": [],
        "limit": HISTORY_LIMIT,
        "truncated": False,
    }
    try:
        start, end = local_period(first, to, today, tz)
    except BadPeriod as exc:
        return render(request, "manager_history.html", user, 400, error=str(exc), **values)
    calls = await run_in_threadpool(
        CallLog(context.database).history,
        start,
        end,
        caller=caller or None,
        called=called or None,
        marked_only=marked_only,
        limit=HISTORY_LIMIT + 1,
    )
    values["rows"] = [history_row(call, tz) for call in calls[:HISTORY_LIMIT]]
    values["truncated"] = len(calls) > HISTORY_LIMIT
    return render(request, "manager_history.html", user, **values)


@router.post("/history/{call_id}/mark")
async def mark(request: Request, call_id: str, user: ManagerUser, _: CheckedCsrf) -> Response:
    """Set (marked=1) or clear (marked=0) the call's mark «!»."""
    log_id = parse_log_id(call_id)
    fields = await form_fields(request)
    value = fields.get("marked", "1")
    if value not in ("0", "1"):
        raise HTTPException(400, "marked: 0 или 1")
    database = context_of(request).database
    if not await run_in_threadpool(CallLog(database).mark, log_id, value == "1"):
        raise HTTPException(404, f"Вызова {log_id} нет в истории")
    if wants_json(request):
        return JSONResponse({"id": log_id, "marked": value == "1"})
    # Back to the history as it was filtered; only its own keys, so never elsewhere.
    back = [(k, v) for k, v in parse_qsl(fields.get("back", "")) if k in HISTORY_KEYS]
    return RedirectResponse(f"/manager/history?{urlencode(back)}", status_code=303)


@router.get("/recordings/{call_id}")
async def recording(
    request: Request, call_id: str, user: ManagerUser, download: str = ""
) -> Response:
    """The recording of the call with log id `call_id`: played (inline) or, with
    `download=1`, saved as a file."""
    log_id = parse_log_id(call_id)
    context = context_of(request)
    call = await run_in_threadpool(CallLog(context.database).find, log_id)
    if call is None or not call.recording:
        raise HTTPException(404, "У этого вызова нет записи")
    if call.recording_purged_at is not None:
        purged = call.recording_purged_at.astimezone(context.zone)
        raise HTTPException(404, f"Запись удалена {purged:%d.%m.%Y} при очистке старых файлов")
    directory = context.config().system.paths.dir("recordings")
    path = await run_in_threadpool(recording_file, call.recording, directory)
    if path is None:
        raise HTTPException(404, "Файла записи нет")
    media_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return FileResponse(
        path,
        media_type=media_type,
        filename=path.name,
        content_disposition_type="attachment" if download in ("1", "true") else "inline",
    )


def recording_file(recording: str, directory: str) -> Path | None:
    """The file the call log names, if it exists inside the recordings directory
    (after following links: a link there to elsewhere does not count)."""
    try:
        root = Path(directory).resolve()
        path = Path(recording).resolve()
    except (OSError, RuntimeError):  # a loop of links
        return None
    if not path.is_relative_to(root) or not path.is_file():
        return None
    return path


# Reports


@dataclass(frozen=True)
class ReportForm:
    name: str
    title: str
    filters: tuple[str, ...]


def reports_values(context: WebContext, first: str | None, last: str | None) -> dict[str, Any]:
    today = context.clock().astimezone(context.zone).date().isoformat()
    forms = [
        ReportForm(name, report.title, tuple(sorted(report.filters)))
        for name, report in REPORTS.items()
    ]
    users = [(u.login, u.name or u.login) for u in context.config().users]
    return {
        "reports": forms,
        "labels": FILTER_LABELS,
        "operators": users,
        "first": first or today,
        "last": last or today,
    }


@router.get("/reports")
async def reports_page(request: Request, user: ManagerUser) -> Response:
    values = reports_values(context_of(request), None, None)
    return render(request, "manager_reports.html", user, **values)


@router.get("/reports/{name}.xlsx")
async def report_file(
    request: Request,
    name: str,
    user: ManagerUser,
    *,
    first: FromDay = None,
    to: str | None = None,
    operator: str = "",
    number: str = "",
) -> Response:
    """The report as an .xlsx download, `NAME-FROM-TO.xlsx`."""
    context = context_of(request)
    report = REPORTS.get(name)
    if report is None:
        values = reports_values(context, first, to)
        error = f"Отчёта «{name}» нет"
        return render(request, "manager_reports.html", user, 404, error=error, **values)
    tz = context.zone
    today = context.clock().astimezone(tz).date()
    try:
        start, end = local_period(first, to, today, tz)
    except BadPeriod as exc:
        values = reports_values(context, first, to)
        return render(request, "manager_reports.html", user, 400, error=str(exc), **values)
    given = {"operator": operator.strip(), "number": number.strip()[:FILTER_LENGTH]}
    filters = {key: given[key] for key in report.filters if given.get(key)}
    content = await run_in_threadpool(
        workbook_bytes, name, context.database, start=start, end=end, tz=tz, filters=filters
    )
    last_day = (end - timedelta(days=1)).date()
    filename = f"{name}-{start.date().isoformat()}-{last_day.isoformat()}.xlsx"
    disposition = f'attachment; filename="{filename}"'
    return Response(content, media_type=XLSX, headers={"Content-Disposition": disposition})


def workbook_bytes(
    name: str,
    database: Database,
    *,
    start: datetime,
    end: datetime,
    tz: tzinfo,
    filters: dict[str, str],
) -> bytes:
    buffer = io.BytesIO()
    make(name, database, start, end, tz, **filters).workbook.save(buffer)
    return buffer.getvalue()


# Helpers


def parse_day(text: str, what: str) -> date:
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise BadPeriod(f"{what}: «{text[:40]}» — не дата ГГГГ-ММ-ДД") from None
    if not FIRST_DAY <= day <= LAST_DAY:
        raise BadPeriod(f"{what}: {day:%d.%m.%Y} — вне допустимых дат")
    return day


def local_period(
    first: str | None, last: str | None, today: date, tz: tzinfo
) -> tuple[datetime, datetime]:
    """[start, end) of the local days `first` to `last` (both included, default today)."""
    start = parse_day(first, "Начало периода") if first else today
    end = parse_day(last, "Конец периода") if last else today
    if end < start:
        raise BadPeriod("Конец периода раньше его начала")
    return period(start, end, tz)


def parse_log_id(text: str) -> int:
    """A call's log id from the URL; 404 for anything else (the URL names no call)."""
    if not LOG_ID.fullmatch(text) or int(text) > MAX_LOG_ID:
        raise HTTPException(404, "Нет такого вызова")
    return int(text)


async def form_fields(request: Request) -> dict[str, str]:
    """The fields of a form post or of a JSON object (what `manager.js` sends)."""
    if request.headers.get("content-type", "").startswith("application/json"):
        try:
            data = await request.json()
        except ValueError:
            raise HTTPException(400, "Тело запроса — не JSON") from None
        if not isinstance(data, dict):
            raise HTTPException(400, "Тело запроса — не объект JSON")
        return {str(k): json_text(v) for k, v in data.items()}
    form = await request.form()
    return {k: v for k, v in form.items() if isinstance(v, str)}


def json_text(value: object) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    return "" if value is None else str(value)


def local_text(at: datetime, tz: tzinfo) -> str:
    return at.astimezone(tz).strftime("%d.%m.%Y %H:%M:%S")


def clock_text(span: timedelta) -> str:
    """`1:02:03`, `2:03`: how long an active call has lasted."""
    total = max(0, int(span.total_seconds()))
    hours, rest = divmod(total, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}:{minutes:02}:{seconds:02}" if hours else f"{minutes}:{seconds:02}"


def duration_text(span: timedelta | None) -> str:
    """The manual's «19 сек.», longer ones «2 мин. 05 сек.»; a call going on: «идёт»."""
    if span is None:
        return "идёт"
    total = max(0, round(span.total_seconds()))
    hours, rest = divmod(total, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours} ч. {minutes:02} мин. {seconds:02} сек."
    if minutes:
        return f"{minutes} мин. {seconds:02} сек."
    return f"{seconds} сек."
