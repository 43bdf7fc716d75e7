"""The six reports of the manual as Excel workbooks (openpyxl), one sheet each.

`REPORTS` names them (`calls`, `answered`, `missed`, `waits`, `dialer`, `callbacks`);
`build(name, database, start, end, tz, **filters)` makes one over [start, end). A sheet
has a title row with the period, a bold header row (frozen), the data rows and, where
sums mean something, a bold totals row. Times are real Excel date-times in the system
timezone (naive: Excel has no zones), durations whole seconds. The wording is the
manual's Russian: the reports go to the centre's management as they are.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import date, datetime, time, timedelta, tzinfo
from typing import NamedTuple

from openpyxl import Workbook  # type: ignore[import-untyped]
from openpyxl.styles import Font  # type: ignore[import-untyped]
from openpyxl.utils import get_column_letter  # type: ignore[import-untyped]

from ast_pbx.errors import UsageError
from ast_pbx.storage import reporting
from ast_pbx.storage.db import Database
from ast_pbx.storage.queues import QueueCallRecord

DATETIME_FORMAT = "DD.MM.YYYY HH:MM:SS"
DATE_FORMAT = "DD.MM.YYYY"
MAX_WIDTH = 80  # characters: a long dialer text does not make a column screens wide
BOLD = Font(bold=True)
TITLE = Font(bold=True, size=12)
TOTAL = "Итого"

# What the queue and dialer outcomes are called in the reports.
QUEUE_OUTCOMES = {
    "answered": "принят",
    "abandoned": "абонент положил трубку",
    "moved": "переведён дальше",
    "sent_away": "нет операторов в очереди",
    None: "ожидает",
}
DIALER_OUTCOMES = {
    "answered": "ответил",
    "no_answer": "не ответил",
    "busy": "занято",
    "failed": "ошибка линии",
    "lost": "прерван",
    None: "идёт",
}
NO_OPERATOR = "не назначен"


class Built(NamedTuple):
    workbook: Workbook
    rows: int  # data rows, without title, header and totals


Builder = Callable[..., Built]


class Report(NamedTuple):
    title: str  # the manual's name of the report
    builder: Builder  # (database, start, end, tz, **filters) -> Built
    filters: frozenset[str] = frozenset()  # the keyword filters it takes


class Sheet:
    """One worksheet being written: title, header, rows, totals, then `finish()`."""

    def __init__(
        self, title: str, sheet_title: str, start: datetime, end: datetime, tz: tzinfo
    ) -> None:
        self.workbook = Workbook()
        self.sheet = self.workbook.active
        self.sheet.title = sheet_title
        self.tz = tz
        self.rows = 0
        self.sheet.append([f"{title} {period_text(start, end, tz)}"])
        self.sheet.cell(row=1, column=1).font = TITLE

    def header(self, *names: str) -> None:
        self.sheet.append(list(names))
        for cell in self.sheet[self.sheet.max_row]:
            cell.font = BOLD
        # Rows above A{n} stay in view: the title and this header.
        self.sheet.freeze_panes = f"A{self.sheet.max_row + 1}"

    def row(self, *values: object, bold: bool = False) -> None:
        """A row; aware datetimes become local naive ones, dates get a date format."""
        self.sheet.append([self._value(value) for value in values])
        for cell in self.sheet[self.sheet.max_row]:
            if cell.data_type == "f":
                # Text is never a formula: a caller id from a trunk or a dialer text
                # from the external system could be "=HYPERLINK(…)" on purpose.
                cell.data_type = "s"
            if isinstance(cell.value, datetime):
                cell.number_format = DATETIME_FORMAT
            elif isinstance(cell.value, date):
                cell.number_format = DATE_FORMAT
            if bold:
                cell.font = BOLD
        if not bold:
            self.rows += 1

    def total(self, *values: object) -> None:
        self.row(*values, bold=True)

    def finish(self) -> Built:
        """Fit the columns to what they hold (the title row aside) and hand it over."""
        widths: dict[int, int] = {}
        for row in self.sheet.iter_rows(min_row=2):
            for cell in row:
                widths[cell.column] = max(widths.get(cell.column, 0), _width(cell.value))
        for column, width in widths.items():
            letter = get_column_letter(column)
            self.sheet.column_dimensions[letter].width = min(width + 2, MAX_WIDTH)
        return Built(self.workbook, self.rows)

    def _value(self, value: object) -> object:
        if isinstance(value, datetime):
            return local(value, self.tz)
        if isinstance(value, timedelta):
            return seconds(value)
        return value


def local(at: datetime | None, tz: tzinfo) -> datetime | None:
    """`at` in `tz` without its zone (openpyxl stores no zones); None stays None."""
    return None if at is None else at.astimezone(tz).replace(tzinfo=None)


def seconds(span: timedelta | float | None) -> int | None:
    """Whole seconds, rounded; None stays None."""
    if span is None:
        return None
    total = span.total_seconds() if isinstance(span, timedelta) else span
    return round(total)


def day_start(day: date, tz: tzinfo) -> datetime:
    """Local midnight that begins `day`."""
    return datetime.combine(day, time(), tzinfo=tz)


def period(first: date, last: date, tz: tzinfo) -> tuple[datetime, datetime]:
    """[start, end) of the local days `first` to `last`, both included."""
    return day_start(first, tz), day_start(last + timedelta(days=1), tz)


def period_text(start: datetime, end: datetime, tz: tzinfo) -> str:
    """ "за период с 01.03.2026 по 02.03.2026" (whole days, the last included), or with
    times when the period does not fall on midnights."""
    first, stop = start.astimezone(tz), end.astimezone(tz)
    if first.time() == time() and stop.time() == time():
        last = stop.date() - timedelta(days=1)
        return f"за период с {first:%d.%m.%Y} по {last:%d.%m.%Y}"
    return f"за период с {first:%d.%m.%Y %H:%M} до {stop:%d.%m.%Y %H:%M}"


# The reports


def calls_report(database: Database, start: datetime, end: datetime, tz: tzinfo) -> Built:
    sheet = Sheet(REPORTS["calls"].title, "Поступившие звонки", start, end, tz)
    sheet.header(
        "Дата",
        "Поступило звонков",
        "Обработано в голосовом меню",
        "Обработано операторами",
        "Исходящие (автодозвон)",
    )
    days = reporting.traffic(database, start, end, tz)
    for day in days:
        sheet.row(day.day, day.received, day.ivr_only, day.operators, day.dialer)
    sheet.total(
        TOTAL,
        sum(d.received for d in days),
        sum(d.ivr_only for d in days),
        sum(d.operators for d in days),
        sum(d.dialer for d in days),
    )
    return sheet.finish()


def answered_report(
    database: Database, start: datetime, end: datetime, tz: tzinfo, *, operator: str | None = None
) -> Built:
    sheet = Sheet(REPORTS["answered"].title, "Принятые звонки", start, end, tz)
    sheet.header(
        "Очередь",
        "Оператор",
        "Телефон",
        "Принято звонков",
        "Среднее ожидание, с",
        "Время разговоров, с",
    )
    rows = reporting.answered(database, start, end, operator=operator)
    queues: dict[str, list[reporting.AnsweredTotals]] = {}
    for row in rows:
        queues.setdefault(row.queue, []).append(row)
    for queue, group in queues.items():
        for row in group:
            sheet.row(
                row.queue,
                row.operator or NO_OPERATOR,
                row.member,
                row.answered,
                seconds(row.mean_wait_seconds),
                seconds(row.talk_seconds),
            )
        sheet.total(queue, "Всего по очереди", None, *_answered_sums(group))
    sheet.total(TOTAL, None, None, *_answered_sums(rows))
    return sheet.finish()


def _answered_sums(rows: Sequence[reporting.AnsweredTotals]) -> tuple[int, int | None, int | None]:
    """Answered, mean wait (over every answered wait, not a mean of means), talk."""
    count = sum(row.answered for row in rows)
    wait = sum(row.wait_seconds for row in rows)
    talk = sum(row.talk_seconds for row in rows)
    return count, seconds(wait / count) if count else None, seconds(talk)


def missed_report(database: Database, start: datetime, end: datetime, tz: tzinfo) -> Built:
    sheet = Sheet(REPORTS["missed"].title, "Непринятые звонки", start, end, tz)
    sheet.header("Время", "Номер абонента", "Очередь", "Ожидание, с", "Причина")
    rows = reporting.missed(database, start, end)
    for row in rows:
        sheet.row(row.entered_at, row.caller, row.queue, row.wait, QUEUE_OUTCOMES[row.outcome])
    sheet.total(f"{TOTAL}: {len(rows)}", None, None, _sum_seconds(row.wait for row in rows))
    return sheet.finish()


def waits_report(
    database: Database, start: datetime, end: datetime, tz: tzinfo, *, number: str | None = None
) -> Built:
    sheet = Sheet(REPORTS["waits"].title, "Ожидание и разговоры", start, end, tz)
    sheet.header(
        "Вход в очередь",
        "Номер абонента",
        "Очередь",
        "Оператор",
        "Телефон",
        "Ожидание, с",
        "Разговор, с",
        "Результат",
    )
    rows = reporting.waits(database, start, end, number=number)
    for row in rows:
        sheet.row(
            row.entered_at,
            row.caller,
            row.queue,
            row.operator,
            row.member,
            row.wait,
            row.talk,
            _queue_outcome(row),
        )
    sheet.total(
        f"{TOTAL}: {len(rows)}",
        None,
        None,
        None,
        None,
        _sum_seconds(row.wait for row in rows),
        _sum_seconds(row.talk for row in rows),
    )
    return sheet.finish()


def dialer_report(
    database: Database, start: datetime, end: datetime, tz: tzinfo, *, number: str | None = None
) -> Built:
    sheet = Sheet(REPORTS["dialer"].title, "Автодозвон", start, end, tz)
    sheet.header(
        "Номер телефона", "Текст", "Начало", "Ответ", "Окончание", "Разговор, с", "Результат"
    )
    rows = reporting.dialer(database, start, end, number=number)
    for row in rows:
        sheet.row(
            row.number,
            row.text,
            row.started_at,
            row.answered_at,
            row.ended_at,
            row.talk,
            DIALER_OUTCOMES.get(row.outcome, row.outcome),
        )
    answered = sum(1 for row in rows if row.outcome == "answered")
    sheet.total(
        f"{TOTAL}: {len(rows)}",
        None,
        None,
        None,
        None,
        _sum_seconds(row.talk for row in rows),
        f"ответили: {answered}",
    )
    return sheet.finish()


def callbacks_report(database: Database, start: datetime, end: datetime, tz: tzinfo) -> Built:
    sheet = Sheet(REPORTS["callbacks"].title, "Обратные вызовы", start, end, tz)
    sheet.header("Оператор", "Заявок", "Перезвонили", "Выполнено")
    rows = reporting.callbacks(database, start, end)
    for row in rows:
        sheet.row(row.operator or NO_OPERATOR, row.requested, row.called, row.done)
    sheet.total(
        TOTAL,
        sum(row.requested for row in rows),
        sum(row.called for row in rows),
        sum(row.done for row in rows),
    )
    return sheet.finish()


def _queue_outcome(row: QueueCallRecord) -> str | None:
    return QUEUE_OUTCOMES.get(row.outcome, row.outcome)


def _width(value: object) -> int:
    """How many characters a cell's value shows as."""
    if value is None:
        return 0
    if isinstance(value, datetime):
        return len("DD.MM.YYYY HH:MM:SS")
    if isinstance(value, date):
        return len("DD.MM.YYYY")
    return max(len(line) for line in str(value).splitlines() or [""])


def _sum_seconds(spans: Iterable[timedelta | None]) -> int:
    return round(sum(span.total_seconds() for span in spans if span is not None))


REPORTS: dict[str, Report] = {
    "calls": Report(
        "Отчет о поступивших звонках, обработанных в голосовом меню, обработанных в ручном "
        "режиме операторами и исходящих вызовах в режиме автодозвона",
        calls_report,
    ),
    "answered": Report(
        "Отчет о принятых звонках операторами очереди в разрезе по каждой очереди "
        "и по операторам в отдельности",
        answered_report,
        frozenset({"operator"}),
    ),
    "missed": Report("Непринятые звонки в очереди", missed_report),
    "waits": Report(
        "Время ожидания и длительности разговоров в очереди",
        waits_report,
        frozenset({"number"}),
    ),
    "dialer": Report(
        "Исходящие вызовы в режиме «автодозвон»", dialer_report, frozenset({"number"})
    ),
    "callbacks": Report("Обратные вызовы по операторам", callbacks_report),
}


def validate(name: str, **filters: str | None) -> dict[str, str]:
    """The filters of report `name` that are set; UsageError for an unknown report, or
    a filter it does not take, naming what there is. Filters set to None are ignored."""
    report = REPORTS.get(name)
    if report is None:
        raise UsageError(f"no report {name!r}; the reports are: {', '.join(REPORTS)}")
    given = {key: value for key, value in filters.items() if value is not None}
    unknown = sorted(set(given) - report.filters)
    if unknown:
        takes = ", ".join(f"--{f}" for f in sorted(report.filters)) or "no filters"
        raise UsageError(f"report {name} does not filter by {unknown[0]} (it takes {takes})")
    return given


def make(
    name: str,
    database: Database,
    start: datetime,
    end: datetime,
    tz: tzinfo,
    **filters: str | None,
) -> Built:
    """The report `name` over [start, end) with its row count; see `validate`."""
    given = validate(name, **filters)
    return REPORTS[name].builder(database, start, end, tz, **given)


def build(
    name: str,
    database: Database,
    start: datetime,
    end: datetime,
    tz: tzinfo,
    **filters: str | None,
) -> Workbook:
    """The report `name` over [start, end) as an openpyxl Workbook; see `make`."""
    return make(name, database, start, end, tz, **filters).workbook
