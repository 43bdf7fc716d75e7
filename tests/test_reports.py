"""The six reports: queries over a seeded database (SQLite and PostgreSQL), and the
workbooks as Excel reads them back."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from openpyxl import load_workbook

from ast_pbx import reports
from ast_pbx.errors import UsageError
from ast_pbx.storage import reporting
from ast_pbx.storage.db import Database
from ast_pbx.storage.models import Call, Callback, DialerAttempt, DialerTask, QueueCall
from tests.storage_fixtures import database_fixture, postgres_url_fixture, url_fixture  # noqa: F401

MOSCOW = ZoneInfo("Europe/Moscow")
# The local days 2026-03-02 and 2026-03-03: [01.03 21:00 UTC, 03.03 21:00 UTC).
START, END = reports.period(date(2026, 3, 2), date(2026, 3, 3), MOSCOW)
TITLE_PERIOD = "за период с 02.03.2026 по 03.03.2026"


def utc(day: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, minute, second, tzinfo=UTC)


def msk(day: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
    """A Moscow wall-clock time as the workbook holds it: naive."""
    return datetime(2026, 3, day, hour, minute, second)


def call(channel: str, at: datetime, outcome: str, caller: str = "+79610000000") -> Call:
    return Call(
        channel_id=channel,
        started_at=at,
        ended_at=at + timedelta(minutes=2),
        caller=caller,
        called="90000",
        path=["90000"],
        outcome=outcome,
    )


def seconds(n: float) -> timedelta:
    return timedelta(seconds=n)


def wait(  # noqa: PLR0917 (a row of the seed, positional for brevity)
    call_id: str,
    queue: str,
    caller: str,
    entered: datetime,
    left: float | None,
    outcome: str | None,
    member: tuple[str, str] | None = None,
    talk: float | None = None,
) -> QueueCall:
    """A wait; `left` and `talk` in seconds after entering and after the answer."""
    left_at = None if left is None else entered + seconds(left)
    answered = outcome == "answered"
    return QueueCall(
        call_id=call_id,
        queue=queue,
        caller=caller,
        entered_at=entered,
        answered_at=left_at if answered else None,
        member=member[0] if member else None,
        operator=member[1] if member else None,
        left_at=left_at,
        outcome=outcome,
        talk_ended_at=None if talk is None or left_at is None else left_at + seconds(talk),
    )


def attempt(  # noqa: PLR0917
    task: int, number: str, at: datetime, outcome: str, answer: float | None, end: float
) -> DialerAttempt:
    return DialerAttempt(
        task_id=task,
        number=number,
        started_at=at,
        answered_at=None if answer is None else at + seconds(answer),
        ended_at=at + seconds(end),
        outcome=outcome,
    )


def callback(at: datetime, operator: str | None, called: bool, done: bool) -> Callback:
    return Callback(
        caller="+79610000001",
        requested_at=at,
        operator=operator,
        called_at=at + timedelta(minutes=30) if called else None,
        done=done,
    )


@pytest.fixture(name="seeded")
def seeded_fixture(database: Database) -> Database:
    """Two local days of a call center, and rows just outside them on both sides."""
    with database.session() as session:
        session.add_all(
            [
                call("before", utc(1, 20, 30), "hangup"),  # 23:30 on 01.03 in Moscow
                call("c1", utc(1, 21, 30), "hangup"),  # 00:30 on 02.03: the IVR only
                call("c2", utc(2, 7), "queue 92000"),  # answered in a queue
                call("c3", utc(2, 8), "hangup"),  # hung up waiting: neither
                call("c4", utc(3, 9), "phone 1001"),  # straight to a phone
                call("c5", utc(3, 10), "queue 92001"),  # sent away, answered in another
                call("after", utc(3, 21), "hangup"),  # 00:00 on 04.03
                wait("c2", "92000", "+79610000001", utc(2, 7, 0, 10), 30, "answered",
                     ("1001", "alice"), 180),
                wait("c3", "92000", "+79610000002", utc(2, 8, 0, 5), 60, "abandoned"),
                wait("c5", "92000", "+79620000003", utc(3, 10, 0, 5), 2, "sent_away"),
                wait("c5", "92001", "+79620000003", utc(3, 10, 0, 10), 15, "answered",
                     ("1002", "bob"), 60),
                # No call row (its start failed to log): the wait still counts.
                wait("lost", "92000", "+79610000004", utc(3, 12), 20, "answered",
                     ("1001", "alice"), 100),
                wait("c6", "92001", "+79610000005", utc(3, 13), 30, "moved"),
                wait("c7", "92000", "+79610000006", utc(3, 14), None, None),
                wait("old", "92000", "+79610000007", utc(1, 20), 5, "answered",
                     ("1001", "alice"), 50),
                DialerTask(id=1, number="+79990000001", text="Ваши документы готовы",
                           enqueued_at=utc(1, 6)),
                DialerTask(id=2, number="+79990000002", text="Запись на приём подтверждена",
                           enqueued_at=utc(1, 6)),
            ]
        )  # fmt: skip
    with database.session() as session:
        session.add_all(
            [
                attempt(1, "+79990000001", utc(2, 9), "no_answer", None, 30),
                attempt(1, "+79990000001", utc(2, 11), "answered", 10, 40),
                attempt(2, "+79990000002", utc(3, 9, 30), "busy", None, 5),
                attempt(2, "+79990000002", utc(4, 6), "answered", 5, 20),  # 04.03
                callback(utc(2, 8, 30), "alice", called=True, done=True),
                callback(utc(2, 12), "alice", called=True, done=False),
                callback(utc(3, 15), "bob", called=True, done=True),
                callback(utc(3, 16), None, called=False, done=False),
                callback(utc(1, 10), "alice", called=True, done=True),  # 01.03
            ]
        )
    return database


def saved(
    database: Database, tmp_path: Path, name: str, **filters: str | None
) -> tuple[object, list[tuple[object, ...]]]:
    """Build, save, read back: the worksheet and its rows as values."""
    path = tmp_path / f"{name}.xlsx"
    reports.build(name, database, START, END, MOSCOW, **filters).save(path)
    sheet = load_workbook(path).active
    return sheet, list(sheet.iter_rows(values_only=True))


def assert_layout(sheet: object, title: str, header: tuple[str, ...], sheet_title: str) -> None:
    assert sheet.title == sheet_title
    assert sheet["A1"].value == f"{title} {TITLE_PERIOD}"
    assert sheet["A1"].font.bold
    assert tuple(c.value for c in sheet[2]) == header
    assert all(c.font.bold for c in sheet[2])
    assert sheet.freeze_panes == "A3"
    last = sheet.max_row
    assert all(c.font.bold for c in sheet[last] if c.value is not None)
    # Every column fitted to its widest cell below the title, plus a margin.
    for index, name in enumerate(header, start=1):
        letter = chr(ord("A") + index - 1)
        width = sheet.column_dimensions[letter].width
        assert width >= len(name) + 2


# The queries


def test_traffic_counts_each_local_day(seeded: Database) -> None:
    days = reporting.traffic(seeded, START, END, MOSCOW)
    assert days == [
        reporting.DayTraffic(date(2026, 3, 2), received=3, ivr_only=1, operators=1, dialer=2),
        reporting.DayTraffic(date(2026, 3, 3), received=2, ivr_only=0, operators=3, dialer=1),
    ]


def test_traffic_lists_days_without_calls(seeded: Database) -> None:
    start, end = reports.period(date(2026, 3, 5), date(2026, 3, 6), MOSCOW)
    assert [d.received for d in reporting.traffic(seeded, start, end, MOSCOW)] == [0, 0]


def test_local_days() -> None:
    assert reporting.local_days(START, END, MOSCOW) == [date(2026, 3, 2), date(2026, 3, 3)]
    assert reporting.local_days(END, START, MOSCOW) == []


def test_answered_per_queue_operator_and_phone(seeded: Database) -> None:
    rows = reporting.answered(seeded, START, END)
    assert [(r.queue, r.operator, r.member, r.answered) for r in rows] == [
        ("92000", "alice", "1001", 2),
        ("92001", "bob", "1002", 1),
    ]
    assert (rows[0].wait_seconds, rows[0].mean_wait_seconds, rows[0].talk_seconds) == (
        50.0,
        25.0,
        280.0,
    )
    assert [r.operator for r in reporting.answered(seeded, START, END, operator="bob")] == ["bob"]


def test_callbacks_per_operator(seeded: Database) -> None:
    assert reporting.callbacks(seeded, START, END) == [
        reporting.CallbackTotals("alice", 2, 2, 1),
        reporting.CallbackTotals("bob", 1, 1, 1),
        reporting.CallbackTotals(None, 1, 0, 0),
    ]


def test_number_fragments_are_not_patterns(seeded: Database) -> None:
    assert [r.caller for r in reporting.waits(seeded, START, END, number="7962")] == [
        "+79620000003",
        "+79620000003",
    ]
    assert reporting.waits(seeded, START, END, number="7%2") == []
    assert [r.number for r in reporting.dialer(seeded, START, END, number="0002")] == [
        "+79990000002"
    ]


# The workbooks


def test_calls_report(seeded: Database, tmp_path: Path) -> None:
    sheet, rows = saved(seeded, tmp_path, "calls")
    header = (
        "Дата",
        "Поступило звонков",
        "Обработано в голосовом меню",
        "Обработано операторами",
        "Исходящие (автодозвон)",
    )
    assert_layout(sheet, reports.REPORTS["calls"].title, header, "Поступившие звонки")
    assert rows[2:] == [
        (datetime(2026, 3, 2), 3, 1, 1, 2),
        (datetime(2026, 3, 3), 2, 0, 3, 1),
        ("Итого", 5, 1, 4, 3),
    ]
    assert sheet["A3"].number_format == "DD.MM.YYYY"


def test_answered_report(seeded: Database, tmp_path: Path) -> None:
    sheet, rows = saved(seeded, tmp_path, "answered")
    header = (
        "Очередь",
        "Оператор",
        "Телефон",
        "Принято звонков",
        "Среднее ожидание, с",
        "Время разговоров, с",
    )
    assert_layout(sheet, reports.REPORTS["answered"].title, header, "Принятые звонки")
    assert rows[2:] == [
        ("92000", "alice", "1001", 2, 25, 280),
        ("92000", "Всего по очереди", None, 2, 25, 280),
        ("92001", "bob", "1002", 1, 15, 60),
        ("92001", "Всего по очереди", None, 1, 15, 60),
        ("Итого", None, None, 3, 22, 340),  # (30 + 20 + 15) / 3 = 21.7
    ]
    assert [c.font.bold for c in sheet["A"][2:]] == [False, True, False, True, True]


def test_answered_report_of_one_operator(seeded: Database, tmp_path: Path) -> None:
    _, rows = saved(seeded, tmp_path, "answered", operator="alice")
    assert rows[2:] == [
        ("92000", "alice", "1001", 2, 25, 280),
        ("92000", "Всего по очереди", None, 2, 25, 280),
        ("Итого", None, None, 2, 25, 280),
    ]


def test_missed_report(seeded: Database, tmp_path: Path) -> None:
    sheet, rows = saved(seeded, tmp_path, "missed")
    header = ("Время", "Номер абонента", "Очередь", "Ожидание, с", "Причина")
    assert_layout(sheet, "Непринятые звонки в очереди", header, "Непринятые звонки")
    assert rows[2:] == [
        (msk(2, 11, 0, 5), "+79610000002", "92000", 60, "абонент положил трубку"),
        (msk(3, 13, 0, 5), "+79620000003", "92000", 2, "нет операторов в очереди"),
        ("Итого: 2", None, None, 62, None),
    ]
    assert sheet["A3"].number_format == "DD.MM.YYYY HH:MM:SS"


def test_waits_report(seeded: Database, tmp_path: Path) -> None:
    sheet, rows = saved(seeded, tmp_path, "waits")
    header = (
        "Вход в очередь",
        "Номер абонента",
        "Очередь",
        "Оператор",
        "Телефон",
        "Ожидание, с",
        "Разговор, с",
        "Результат",
    )
    assert_layout(sheet, reports.REPORTS["waits"].title, header, "Ожидание и разговоры")
    assert rows[2:] == [
        (msk(2, 10, 0, 10), "+79610000001", "92000", "alice", "1001", 30, 180, "принят"),
        (msk(2, 11, 0, 5), "+79610000002", "92000", None, None, 60, None,
         "абонент положил трубку"),
        (msk(3, 13, 0, 5), "+79620000003", "92000", None, None, 2, None,
         "нет операторов в очереди"),
        (msk(3, 13, 0, 10), "+79620000003", "92001", "bob", "1002", 15, 60, "принят"),
        (msk(3, 15), "+79610000004", "92000", "alice", "1001", 20, 100, "принят"),
        (msk(3, 16), "+79610000005", "92001", None, None, 30, None, "переведён дальше"),
        (msk(3, 17), "+79610000006", "92000", None, None, None, None, "ожидает"),
        ("Итого: 7", None, None, None, None, 157, 340, None),
    ]  # fmt: skip
    for row in sheet.iter_rows(min_row=3, max_row=9, max_col=1):
        assert isinstance(row[0].value, datetime)
        assert row[0].number_format == "DD.MM.YYYY HH:MM:SS"


def test_waits_report_of_a_number(seeded: Database, tmp_path: Path) -> None:
    _, rows = saved(seeded, tmp_path, "waits", number="7962")
    assert [row[:3] for row in rows[2:]] == [
        (msk(3, 13, 0, 5), "+79620000003", "92000"),
        (msk(3, 13, 0, 10), "+79620000003", "92001"),
        ("Итого: 2", None, None),
    ]


def test_dialer_report(seeded: Database, tmp_path: Path) -> None:
    sheet, rows = saved(seeded, tmp_path, "dialer")
    header = (
        "Номер телефона",
        "Текст",
        "Начало",
        "Ответ",
        "Окончание",
        "Разговор, с",
        "Результат",
    )
    assert_layout(sheet, "Исходящие вызовы в режиме «автодозвон»", header, "Автодозвон")
    ready, confirmed = "Ваши документы готовы", "Запись на приём подтверждена"
    assert rows[2:] == [
        ("+79990000001", ready, msk(2, 12), None, msk(2, 12, 0, 30), None, "не ответил"),
        ("+79990000001", ready, msk(2, 14), msk(2, 14, 0, 10), msk(2, 14, 0, 40), 30, "ответил"),
        ("+79990000002", confirmed, msk(3, 12, 30), None, msk(3, 12, 30, 5), None, "занято"),
        ("Итого: 3", None, None, None, None, 30, "ответили: 1"),
    ]
    assert sheet.column_dimensions["B"].width == len(confirmed) + 2
    assert sheet["D4"].number_format == "DD.MM.YYYY HH:MM:SS"


def test_callbacks_report(seeded: Database, tmp_path: Path) -> None:
    sheet, rows = saved(seeded, tmp_path, "callbacks")
    header = ("Оператор", "Заявок", "Перезвонили", "Выполнено")
    assert_layout(sheet, "Обратные вызовы по операторам", header, "Обратные вызовы")
    assert rows[2:] == [
        ("alice", 2, 2, 1),
        ("bob", 1, 1, 1),
        ("не назначен", 1, 0, 0),
        ("Итого", 4, 3, 2),
    ]


def test_empty_period_has_header_and_totals(database: Database, tmp_path: Path) -> None:
    built = reports.make("missed", database, START, END, MOSCOW)
    assert built.rows == 0
    _, rows = saved(database, tmp_path, "missed")
    assert rows[2:] == [("Итого: 0", None, None, 0, None)]


def test_row_counts_leave_out_subtotals(seeded: Database) -> None:
    counts = {name: reports.make(name, seeded, START, END, MOSCOW).rows for name in reports.REPORTS}
    assert counts == {
        "calls": 2,
        "answered": 2,
        "missed": 2,
        "waits": 7,
        "dialer": 3,
        "callbacks": 3,
    }


def test_unknown_report_or_filter_is_a_usage_error(database: Database) -> None:
    with pytest.raises(UsageError, match="no report 'nope'; the reports are: calls, answered"):
        reports.build("nope", database, START, END, MOSCOW)
    with pytest.raises(UsageError, match="does not filter by operator"):
        reports.build("calls", database, START, END, MOSCOW, operator="alice")
    # A filter left unset is no filter.
    reports.build("calls", database, START, END, MOSCOW, operator=None, number=None)


def test_text_is_never_a_formula(database: Database, tmp_path: Path) -> None:
    with database.session() as session:
        session.add(wait("x", "92000", '=HYPERLINK("http://x","y")', utc(2, 7), 3, "abandoned"))
    sheet, rows = saved(database, tmp_path, "missed")
    assert rows[2][1] == '=HYPERLINK("http://x","y")'
    assert sheet["B3"].data_type == "s"


def test_period_text() -> None:
    assert reports.period_text(START, END, MOSCOW) == TITLE_PERIOD
    one_day = reports.period(date(2026, 3, 2), date(2026, 3, 2), MOSCOW)
    assert reports.period_text(*one_day, MOSCOW) == "за период с 02.03.2026 по 02.03.2026"
    hours = (utc(2, 7), utc(2, 9, 30))
    assert reports.period_text(*hours, MOSCOW) == "за период с 02.03.2026 10:00 до 02.03.2026 12:30"


def test_times_are_written_in_the_zone_given(seeded: Database, tmp_path: Path) -> None:
    plus5 = timezone(timedelta(hours=5))
    path = tmp_path / "w.xlsx"
    reports.build("missed", seeded, START, END, plus5).save(path)
    assert load_workbook(path).active["A3"].value == msk(2, 13, 0, 5)
