"""Rules about when things apply: rule conditions, dates, time zones and timeouts."""

from __future__ import annotations

import zoneinfo
from collections.abc import Iterator

from ast_pbx.config.compile import parse_local_time
from ast_pbx.config.loader import Loaded
from ast_pbx.config.problems import Level
from ast_pbx.config.timespec import DAYS, SpanError, TimeSpan
from ast_pbx.config.yamlread import LMap, LSeq
from ast_pbx.lint.registry import Finding, rule


def _rule_lists(loaded: Loaded, key: str) -> Iterator[tuple[LMap, LSeq]]:
    for item in loaded.lists.get("rules", []):
        if isinstance(item, LMap) and isinstance(item.get(key), LSeq):
            yield item, item[key]


def _span_problem(text: object) -> str | None:
    if not isinstance(text, str):
        return None  # the schema reports the type
    try:
        TimeSpan.parse(text)
    except SpanError as exc:
        return str(exc)
    return None


@rule("bad-hours", Level.ERROR)
def bad_hours(loaded: Loaded) -> Iterator[Finding]:
    """
    A rule's `hours` entry or the dialer's `hours` is not a span `HH:MM-HH:MM` of real
    times, is empty (`10:00-10:00`), or a rule's `hours` list is empty.

    A span may cross midnight (`22:00-06:00`); `24:00` may end one. An empty list would
    make the rule never apply: leave `hours` out to apply at any time.
    """
    for item, hours in _rule_lists(loaded, "hours"):
        if not hours:
            yield (
                item.value_at["hours"],
                f"rule for {item.get('number')}: hours is empty, "
                "so the rule never applies; leave hours out to apply at any time",
            )
        for text, where in zip(hours, hours.item_at, strict=True):
            problem = _span_problem(text)
            if problem:
                yield where, f"rule for {item.get('number')}: {problem}"
    dialer = loaded.maps.get("dialer")
    if dialer is not None and "hours" in dialer:
        problem = _span_problem(dialer["hours"])
        if problem:
            yield dialer.value_at["hours"], f"dialer: {problem}"


@rule("bad-day", Level.ERROR)
def bad_day(loaded: Loaded) -> Iterator[Finding]:
    """
    A rule's `days` entry is not one of mon tue wed thu fri sat sun, or the list is empty
    (the rule would never apply).
    """
    for item, days in _rule_lists(loaded, "days"):
        if not days:
            yield (
                item.value_at["days"],
                f"rule for {item.get('number')}: days is empty, "
                "so the rule never applies; leave days out to apply every day",
            )
        for day, where in zip(days, days.item_at, strict=True):
            if day not in DAYS:
                yield (
                    where,
                    f"rule for {item.get('number')}: '{day}' is not a day; use {' '.join(DAYS)}",
                )


@rule("empty-callers", Level.ERROR)
def empty_callers(loaded: Loaded) -> Iterator[Finding]:
    """
    A rule gives `callers: []` (and no `caller_patterns`): no caller can ever match it, so
    the rule never applies. Leave `callers` out to apply to every caller.
    """
    for item, callers in _rule_lists(loaded, "callers"):
        patterns = item.get("caller_patterns")
        if not callers and not patterns:
            yield (
                item.value_at["callers"],
                f"rule for {item.get('number')}: callers is empty, "
                "so the rule never applies; leave callers out to apply to every caller",
            )


@rule("bad-time", Level.ERROR)
def bad_time(loaded: Loaded) -> Iterator[Finding]:
    """A test's `at` is not a real local date and time `YYYY-MM-DD HH:MM`."""
    for item in loaded.lists.get("tests", []):
        at = item.get("at") if isinstance(item, LMap) else None
        if isinstance(at, str) and parse_local_time(at) is None:
            yield (
                item.value_at["at"],
                f"test '{item.get('name')}': '{at}' is not a date and time YYYY-MM-DD HH:MM",
            )


@rule("unknown-timezone", Level.ERROR)
def unknown_timezone(loaded: Loaded) -> Iterator[Finding]:
    """`system.timezone` is not an IANA time zone name such as Europe/Moscow."""
    system = loaded.config.system
    if system.timezone is None:
        return
    try:
        zoneinfo.ZoneInfo(system.timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        yield (
            system.at("timezone"),
            f"'{system.timezone}' is not an IANA time zone name (e.g. Europe/Moscow)",
        )


@rule("timeout-not-positive", Level.ERROR)
def timeout_not_positive(loaded: Loaded) -> Iterator[Finding]:
    """
    A `timeout` handler or a queue's `ring_timeout` is zero or negative seconds.

    A zero timeout fires before the caller can press anything.
    """
    config = loaded.config
    for owner in config.handler_owners:
        for handler in owner.handlers:
            if handler.timeout is not None and handler.timeout <= 0:
                yield (
                    handler.at("timeout"),
                    f"timeout of {owner.label} is {handler.timeout:g} "
                    "seconds; it must be more than 0",
                )
    for queue in config.queues:
        if queue.ring_timeout <= 0:
            yield (
                queue.at("ring_timeout"),
                f"queue {queue.number} ring_timeout is "
                f"{queue.ring_timeout:g} seconds; it must be more than 0",
            )
