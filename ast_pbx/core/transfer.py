"""The `*2` transfer of a conversation, decided without I/O.

Either side of a bridged conversation (the transferor) may press `*2`, unless that side
came through an external trunk (the manual: such callers may not start a transfer).
Then:
1. the other side (the transferee) is held and hears `transfer.playlist`;
2. the transferor keys the number and `#` (or stops keying for DIGIT_TIMEOUT seconds);
3. the number is dialed; when it answers, transferor and target talk (attended);
4. the transferor hangs up: the transferee is connected to the target. Hanging up while
   the target still rings hands the ringing call over (the transferee waits for it).
`*` while keying or consulting cancels: the target (if any) is dropped and the
transferor returns to the transferee; so does a target that fails or hangs up.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

DIGIT_TIMEOUT = 4.0  # seconds after the last key that end the number


class Stage(enum.Enum):
    IDLE = "idle"
    STAR = "star"  # `*` pressed, `2` may follow
    KEYING = "keying"
    RINGING = "ringing"  # the target is dialed
    CONSULTING = "consulting"  # transferor and target talk
    HANDED_OVER = "handed_over"  # transferor hung up while the target rang


@dataclass(frozen=True)
class Hold:
    """Take the transferor out of the conversation; the transferee hears the playlist."""

    transferor: str


@dataclass(frozen=True)
class KeyTimer:
    seconds: float
    token: int


@dataclass(frozen=True)
class DialTarget:
    number: str


@dataclass(frozen=True)
class Consult:
    """Bridge the transferor with the target that answered."""


@dataclass(frozen=True)
class DropTarget:
    """Hang up the target."""


@dataclass(frozen=True)
class Resume:
    """The transferor back with the transferee; the playlist stops."""


@dataclass(frozen=True)
class Complete:
    """Connect the transferee with the target; the transfer is over."""


@dataclass(frozen=True)
class Abandon:
    """Nobody is left to talk to the transferee: the call ends."""


TransferAction = Hold | KeyTimer | DialTarget | Consult | DropTarget | Resume | Complete | Abandon


class Transfer:
    def __init__(self, sides: tuple[str, str], external: frozenset[str] = frozenset()) -> None:
        self.sides = sides  # the two channels of the conversation
        self.external = external  # sides that came through an external trunk
        self.stage = Stage.IDLE
        self.transferor: str | None = None
        self.digits = ""
        self.token = 0
        self.target_up = False

    @property
    def active(self) -> bool:
        return self.stage not in (Stage.IDLE, Stage.STAR)

    def dtmf(self, side: str, digit: str) -> list[TransferAction]:
        if self.stage in (Stage.IDLE, Stage.STAR):
            return self._start(side, digit)
        if side != self.transferor:
            return []  # the held side's keys do not steer the transfer
        if digit == "*" and self.stage in (Stage.KEYING, Stage.RINGING, Stage.CONSULTING):
            return self._back([DropTarget()] if self.stage is not Stage.KEYING else [])
        if self.stage is Stage.KEYING:
            if digit == "#":
                return self._dial()
            if digit.isdigit():
                self.digits += digit
                return [self._timer()]
        return []

    def key_timeout(self, token: int) -> list[TransferAction]:
        if self.stage is Stage.KEYING and token == self.token:
            return self._dial()
        return []

    def target_answered(self) -> list[TransferAction]:
        self.target_up = True
        if self.stage is Stage.RINGING:
            self.stage = Stage.CONSULTING
            return [Consult()]
        if self.stage is Stage.HANDED_OVER:
            return self._done([Complete()])
        return []

    def target_gone(self) -> list[TransferAction]:
        """The target failed, declined or hung up before the transfer completed."""
        self.target_up = False
        if self.stage is Stage.HANDED_OVER:
            return self._done([Abandon()])
        if self.stage in (Stage.RINGING, Stage.CONSULTING):
            return self._back([])
        return []

    def transferor_gone(self) -> list[TransferAction]:
        if self.stage is Stage.CONSULTING:
            return self._done([Complete()])
        if self.stage is Stage.RINGING:
            self.stage = Stage.HANDED_OVER
            return []
        if self.stage is Stage.KEYING:
            return self._done([Abandon()])
        return []

    def _start(self, side: str, digit: str) -> list[TransferAction]:
        if side in self.external or side not in self.sides:
            return []
        if digit == "*":
            self.stage, self.transferor = Stage.STAR, side
            return []
        if digit == "2" and self.stage is Stage.STAR and side == self.transferor:
            self.stage, self.digits = Stage.KEYING, ""
            return [Hold(side), self._timer()]
        self.stage, self.transferor = Stage.IDLE, None
        return []

    def _timer(self) -> KeyTimer:
        self.token += 1
        return KeyTimer(DIGIT_TIMEOUT, self.token)

    def _dial(self) -> list[TransferAction]:
        if not self.digits:
            return self._back([])
        self.stage = Stage.RINGING
        return [DialTarget(self.digits)]

    def _back(self, first: list[TransferAction]) -> list[TransferAction]:
        return self._done([*first, Resume()])

    def _done(self, actions: list[TransferAction]) -> list[TransferAction]:
        self.stage, self.transferor, self.digits, self.target_up = Stage.IDLE, None, "", False
        return actions
