"""Why a channel entered the Stasis application: its `appArgs`, written and read here.

Callers come with what the generated dialplan gives (`internal`, or `trunk,NAME`); the
channels the engine places say whose they are (a queue member ringing for a call, the
phone a call dialed, a dialer attempt, a recording's snoop, ...), so that the event that
brings them into the app reaches their owner.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass


class Leg(enum.StrEnum):
    INTERNAL = "internal"  # a phone's call (dialplan)
    TRUNK = "trunk"  # a call in on trunk NAME (dialplan)
    QUEUED = "queued"  # CALL, MEMBER: a queue member answered
    DIALED = "dialed"  # CALL: the phone or number a call dialed answered
    DIALER = "dialer"  # TASK, ATTEMPT: a dialer call answered
    RECORDER = "recorder"  # a recording's snoop
    CALLBACK = "callback"  # REQUEST: an operator's phone answered for a callback
    SNOOP = "snoop"  # LISTENING: listen-in's snoop
    LISTENER = "listener"  # LISTENING: the listening manager's phone answered


@dataclass(frozen=True)
class AppArgs:
    leg: Leg | None  # None: arguments this engine does not know
    values: tuple[str, ...] = ()

    def value(self, index: int = 0) -> str:
        return self.values[index] if index < len(self.values) else ""


def app_args(leg: Leg, *values: object) -> str:
    """The `appArgs` of a channel the engine places. Asterisk splits them at commas, so
    a value may hold none."""
    texts = [str(v) for v in values]
    if any("," in t for t in texts):
        raise ValueError(f"appArgs values may not hold a comma: {texts}")
    return ",".join([leg.value, *texts])


def parse(args: Sequence[object]) -> AppArgs:
    """The arguments of a StasisStart."""
    texts = [str(a) for a in args]
    if not texts:
        return AppArgs(None)
    try:
        leg = Leg(texts[0])
    except ValueError:
        return AppArgs(None, tuple(texts))
    return AppArgs(leg, tuple(texts[1:]))
