"""Autodialer decisions: when to dial, what an attempt's end means, what comes next.

Pure: the shell (`engine.dialer`, `storage.dialer`) tells these functions the local
time, how a call ended, and a task's counters, and stores what they return.

The rules, from the config language (`dialer:`) and the manual:
- `hours`: tasks are dialed only inside the span (it may cross midnight); none = always.
  Urgent tasks (a negative priority, "dial now") are the store's exception to it.
- An attempt ends in one `Outcome`: "answered"; "no_answer" (it rang, nobody answered,
  or the network says nobody responded or the call was rejected); "busy"; "failed"
  (the provider or the line: congestion, a bad number, no cause at all without ringing);
  "lost" (the engine died during the attempt, so nobody knows how it ended).
- `max_unanswered`: attempts that rang without an answer before the task is given up;
  `max_failed`: attempts that failed at all, provider errors included. So a no_answer
  counts against both, busy and failed against `max_failed` only, and a lost attempt
  against neither: the task is dialed again at once, as if it had never been tried.
- An answered task is done. Otherwise, when `max_unanswered` is reached the task is done
  ("max_unanswered"), else when `max_failed` is reached it is done ("max_failed"), else it
  is dialed again `retry_after` minutes later.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, get_args

from ast_pbx.config.model import Dialer
from ast_pbx.config.timespec import TimeSpan

Outcome = Literal["answered", "no_answer", "busy", "failed", "lost"]
OUTCOMES: frozenset[str] = frozenset(get_args(Outcome))

# Q.850 hangup causes, as Asterisk reports them in ChannelDestroyed / HANGUPCAUSE.
USER_BUSY = 17
# The far end is there but nobody took the call: no user responding (18), no answer
# from the user (19), call rejected (21).
NO_ANSWER_CAUSES = frozenset({18, 19, 21})
# The network could not carry the call: no circuit (34), temporary failure (41),
# switching equipment congestion (42), requested circuit not available (44).
CONGESTION_CAUSES = frozenset({34, 41, 42, 44})


def in_window(hours: TimeSpan | None, local: datetime) -> bool:
    """Whether `local` (the system zone's wall clock) is inside the dialing hours.

    `hours` is [start, end) and may span midnight ("21:00-09:00"); None means always.
    """
    return hours is None or hours.contains(local.time())


def classify(answered: bool, rang: bool, cause: int | None) -> Outcome:
    """How an attempt ended, from what the engine saw and the hangup cause.

    In this order: answered; busy (cause 17); failed for congestion (34, 41, 42, 44),
    even after ringing, since the network dropped the call; no_answer if it rang or the
    cause says nobody responded or the call was rejected (18, 19, 21); failed otherwise
    (any other cause, or none, without ringing: the provider or the line).
    """
    if answered:
        return "answered"
    if cause == USER_BUSY:
        return "busy"
    if cause in CONGESTION_CAUSES:
        return "failed"
    if rang or cause in NO_ANSWER_CAUSES:
        return "no_answer"
    return "failed"


@dataclass(frozen=True)
class TaskChange:
    """A task's counters and state after an attempt, to store as they are."""

    unanswered: int
    failed: int
    done: bool
    # "answered", "max_unanswered", "max_failed"; None while not done.
    done_reason: str | None
    # The next attempt's earliest moment; None: at once (or never, when done).
    not_before: datetime | None


def after_attempt(
    unanswered: int, failed: int, outcome: Outcome, settings: Dialer, now: datetime
) -> TaskChange:
    """What an attempt that ended at `now` with `outcome` makes of a task whose counters
    were `unanswered` and `failed` (see the module's rules)."""
    if outcome not in OUTCOMES:
        raise ValueError(f"dialer outcome {outcome!r}: expected one of {sorted(OUTCOMES)}")
    if outcome == "answered":
        return TaskChange(unanswered, failed, True, "answered", None)
    if outcome == "lost":
        return TaskChange(unanswered, failed, False, None, None)
    if outcome == "no_answer":
        unanswered += 1
    failed += 1
    if unanswered >= settings.max_unanswered:
        return TaskChange(unanswered, failed, True, "max_unanswered", None)
    if failed >= settings.max_failed:
        return TaskChange(unanswered, failed, True, "max_failed", None)
    retry = now + timedelta(minutes=settings.retry_after)
    return TaskChange(unanswered, failed, False, None, retry)
