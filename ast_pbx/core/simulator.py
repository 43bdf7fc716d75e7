"""Walk one call through the core offline, in virtual time, from a line of input.

Input: DTMF presses separated by spaces ("1 *123# w20"): a token of keys presses them
one after the other, `wN` waits N seconds. Prompts take no time, so keys that follow
the arrival in a menu are pressed while its prompt plays (barge-in applies). When the
input is used up the caller stays silent: menu timeouts keep firing until the call
reaches a phone, a trunk, a queue (where a simulation ends: the caller waits for an
operator) or hangs up.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from ast_pbx.config.configuration import Config
from ast_pbx.config.model import Trunk
from ast_pbx.core.call import Call, Phase
from ast_pbx.core.scenarios import DirectoryPort
from ast_pbx.core.steps import Action, Lookup, StartTimer, Step

# Silence longer than this means the menus send a silent caller round for ever.
MAX_SILENCE = timedelta(hours=1)
MAX_EVENTS = 10_000

_TOKEN = re.compile(r"w(\d+(?:\.\d+)?)|([0-9*#]+)")


@dataclass(frozen=True)
class Press:
    key: str


@dataclass(frozen=True)
class Wait:
    seconds: float


def parse_input(text: str) -> list[Press | Wait]:
    """The events of an input line; ValueError names a token that is neither keys nor wN."""
    events: list[Press | Wait] = []
    for token in text.split():
        match = _TOKEN.fullmatch(token)
        if match is None:
            raise ValueError(f"input token '{token}' is neither DTMF keys (0-9 * #) nor wN")
        if match.group(1) is not None:
            events.append(Wait(float(match.group(1))))
        else:
            events.extend(Press(key) for key in token)
    return events


@dataclass(frozen=True)
class Outcome:
    visits: tuple[str, ...]
    ends: str
    steps: tuple[tuple[float, Step], ...]  # (seconds since the call started, step)

    def heard(self) -> list[str]:
        """What the caller heard as text: prompts and scenario answers."""
        texts = []
        for _, step in self.steps:
            text = getattr(step, "text", None) or getattr(step, "result", None)
            if getattr(step, "prompt", None) == "say":
                text = getattr(step, "value", None)
            if text:
                texts.append(str(text))
        return texts

    def as_dict(self) -> dict[str, Any]:
        return {
            "visits": list(self.visits),
            "ends": self.ends,
            "steps": [{"t": round(t, 3), **step.as_dict()} for t, step in self.steps],
        }


class _Driver:
    def __init__(self, call: Call, directory: DirectoryPort, start: datetime) -> None:
        self.call = call
        self.directory = directory
        self.start = self.now = start
        self.timer: tuple[datetime, int] | None = None
        self.timed: list[tuple[float, Step]] = []

    def carry_out(self, actions: list[Action]) -> None:
        work = deque(actions)
        while work:
            action = work.popleft()
            if isinstance(action, StartTimer):
                self.timer = (self.now + timedelta(seconds=action.seconds), action.token)
            elif isinstance(action, Lookup):
                answer = self.directory.lookup(action.scenario, action.key)
                work.extend(self.call.lookup_done(answer, self.now))
        offset = (self.now - self.start).total_seconds()
        self.timed.extend((offset, step) for step in self.call.steps[len(self.timed) :])

    def fire_timer(self) -> None:
        assert self.timer is not None
        deadline, token = self.timer
        self.timer = None
        self.now = max(self.now, deadline)
        self.carry_out(self.call.timer(token, self.now))

    def wait(self, event: Wait, pending: deque[Press | Wait]) -> None:
        end = self.now + timedelta(seconds=event.seconds)
        if self.timer is not None and self.timer[0] <= end:
            remaining = (end - self.timer[0]).total_seconds()
            self.fire_timer()
            if remaining > 0:
                pending.appendleft(Wait(remaining))
        else:
            self.now = end

    def silence(self) -> bool:
        """Let time pass with no input; False when nothing more can happen."""
        if self.call.phase is Phase.PROMPT:
            self.carry_out(self.call.prompt_done(self.now))
            return True
        if self.timer is None or self.now - self.start > MAX_SILENCE:
            return False
        self.fire_timer()
        return True


def simulate(
    config: Config,
    *,
    to: str,
    caller: str | None,
    at: datetime,
    tz: tzinfo,
    input_text: str = "",
    directory: DirectoryPort,
    trunk: Trunk | None = None,
) -> Outcome:
    """Run one call; `at` is timezone-aware. Raises ValueError for unreadable input."""
    # Virtual time runs in UTC: aware arithmetic in a local zone is wall-clock arithmetic
    # and would step into a DST gap instead of over it.
    at = at.astimezone(UTC)
    pending: deque[Press | Wait] = deque(parse_input(input_text))
    call = Call(config, called=to, caller=caller, tz=tz, trunk=trunk)
    driver = _Driver(call, directory, at)
    driver.carry_out(call.start(at))
    for _ in range(MAX_EVENTS):
        if call.phase is Phase.ENDED or (call.phase is Phase.QUEUED and not pending):
            break
        if not pending:
            if not driver.silence():
                break
            continue
        event = pending.popleft()
        if isinstance(event, Press):
            driver.carry_out(call.dtmf(event.key, driver.now))
            continue
        if call.phase is Phase.PROMPT:
            driver.carry_out(call.prompt_done(driver.now))  # the prompt ends, then the wait
        driver.wait(event, pending)
    return Outcome(tuple(call.visits), call.ends or "hangup", tuple(driver.timed))
