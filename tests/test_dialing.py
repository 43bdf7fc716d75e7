"""Autodialer decisions (`core.dialing`): the window, outcomes, counters and retries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from ast_pbx.config.model import Dialer
from ast_pbx.config.timespec import TimeSpan
from ast_pbx.core.dialing import (
    OUTCOMES,
    Outcome,
    TaskChange,
    after_attempt,
    classify,
    in_window,
)

MSK = timezone(timedelta(hours=3))
NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
SETTINGS = Dialer(retry_after=30, max_unanswered=3, max_failed=5)


def at(hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 3, 2, hour, minute, tzinfo=MSK)


# The window


def test_no_hours_means_always() -> None:
    assert all(in_window(None, at(hour)) for hour in range(24))


def test_day_window_is_half_open() -> None:
    day = TimeSpan.parse("09:00-20:00")
    assert not in_window(day, at(8, 59))
    assert in_window(day, at(9, 0))
    assert in_window(day, at(19, 59))
    assert not in_window(day, at(20, 0))
    assert not in_window(day, at(3))


def test_window_spanning_midnight() -> None:
    night = TimeSpan.parse("21:00-06:30")
    assert in_window(night, at(21, 0))
    assert in_window(night, at(23, 59))
    assert in_window(night, at(0, 0))
    assert in_window(night, at(6, 29))
    assert not in_window(night, at(6, 30))
    assert not in_window(night, at(12))
    assert not in_window(night, at(20, 59))


def test_window_reads_the_wall_clock_it_is_given() -> None:
    day = TimeSpan.parse("09:00-20:00")
    # 07:00 UTC is 10:00 in Moscow: the caller converts to the system zone first.
    utc = datetime(2026, 3, 2, 7, 0, tzinfo=UTC)
    assert not in_window(day, utc)
    assert in_window(day, utc.astimezone(MSK))


def test_window_until_the_end_of_the_day() -> None:
    evening = TimeSpan.parse("18:00-24:00")
    assert in_window(evening, at(23, 59))
    assert not in_window(evening, at(0, 0))


# Outcomes


@pytest.mark.parametrize(
    ("answered", "rang", "cause", "outcome"),
    [
        (True, True, 16, "answered"),
        (True, False, None, "answered"),
        (True, True, 17, "answered"),
        (False, False, 17, "busy"),
        (False, True, 17, "busy"),  # rejected while ringing with "busy"
        (False, False, 34, "failed"),
        (False, False, 41, "failed"),
        (False, False, 42, "failed"),
        (False, False, 44, "failed"),
        (False, True, 34, "failed"),  # the network dropped it, even after ringing
        (False, True, 16, "no_answer"),
        (False, True, None, "no_answer"),
        (False, True, 19, "no_answer"),
        (False, False, 18, "no_answer"),
        (False, False, 19, "no_answer"),
        (False, False, 21, "no_answer"),
        (False, False, 1, "failed"),  # unallocated number
        (False, False, 16, "failed"),  # hung up before ringing: the line
        (False, False, 38, "failed"),
        (False, False, None, "failed"),
    ],
)
def test_classify(answered: bool, rang: bool, cause: int | None, outcome: str) -> None:
    assert classify(answered, rang, cause) == outcome


# Counters and retries


def test_answered_is_done_and_counts_nothing() -> None:
    assert after_attempt(2, 4, "answered", SETTINGS, NOW) == TaskChange(
        2, 4, True, "answered", None
    )


def test_no_answer_counts_against_both_and_retries_later() -> None:
    change = after_attempt(0, 0, "no_answer", SETTINGS, NOW)
    assert change == TaskChange(1, 1, False, None, NOW + timedelta(minutes=30))


@pytest.mark.parametrize("outcome", ["busy", "failed"])
def test_busy_and_failed_count_against_max_failed_only(outcome: str) -> None:
    change = after_attempt(1, 2, outcome, SETTINGS, NOW)  # type: ignore[arg-type]
    assert change == TaskChange(1, 3, False, None, NOW + timedelta(minutes=30))


def test_lost_counts_nothing_and_retries_at_once() -> None:
    assert after_attempt(2, 4, "lost", SETTINGS, NOW) == TaskChange(2, 4, False, None, None)


def test_max_unanswered_reached() -> None:
    change = after_attempt(2, 2, "no_answer", SETTINGS, NOW)
    assert change == TaskChange(3, 3, True, "max_unanswered", None)


def test_max_unanswered_wins_when_both_are_reached() -> None:
    change = after_attempt(2, 4, "no_answer", SETTINGS, NOW)
    assert change == TaskChange(3, 5, True, "max_unanswered", None)


def test_max_failed_reached_by_busy_and_by_failures() -> None:
    assert after_attempt(0, 4, "busy", SETTINGS, NOW) == TaskChange(0, 5, True, "max_failed", None)
    assert after_attempt(1, 4, "failed", SETTINGS, NOW) == TaskChange(
        1, 5, True, "max_failed", None
    )


def test_max_failed_reached_by_unanswered_attempts() -> None:
    # Unanswered attempts fail too: with max_failed below max_unanswered it ends the task.
    settings = Dialer(max_unanswered=5, max_failed=2)
    first = after_attempt(0, 0, "no_answer", settings, NOW)
    assert not first.done
    second = after_attempt(first.unanswered, first.failed, "no_answer", settings, NOW)
    assert second == TaskChange(2, 2, True, "max_failed", None)


def test_a_whole_task_until_max_failed() -> None:
    unanswered = failed = 0
    moment = NOW
    seen: list[TaskChange] = []
    outcomes: tuple[Outcome, ...] = ("failed", "busy", "no_answer", "lost", "failed", "busy")
    for outcome in outcomes:
        change = after_attempt(unanswered, failed, outcome, SETTINGS, moment)
        seen.append(change)
        unanswered, failed = change.unanswered, change.failed
        moment = change.not_before or moment
    assert [c.failed for c in seen] == [1, 2, 3, 3, 4, 5]
    assert [c.unanswered for c in seen] == [0, 0, 1, 1, 1, 1]
    assert [c.done for c in seen] == [False] * 5 + [True]
    assert seen[-1].done_reason == "max_failed"
    # Each counted attempt waits retry_after; the lost one retries at once.
    assert seen[3].not_before is None
    assert seen[4].not_before == NOW + timedelta(minutes=120)


def test_retry_after_in_fractions_of_a_minute() -> None:
    change = after_attempt(0, 0, "failed", Dialer(retry_after=0.5), NOW)
    assert change.not_before == NOW + timedelta(seconds=30)


def test_retry_keeps_the_zone_of_now() -> None:
    local = NOW.astimezone(MSK)
    change = after_attempt(0, 0, "busy", SETTINGS, local)
    assert change.not_before == local + timedelta(minutes=30)
    assert change.not_before is not None and change.not_before.tzinfo is MSK


def test_unknown_outcome_refused() -> None:
    assert "lost" in OUTCOMES and len(OUTCOMES) == 5
    with pytest.raises(ValueError, match="hung_up"):
        after_attempt(0, 0, "hung_up", SETTINGS, NOW)  # type: ignore[arg-type]
