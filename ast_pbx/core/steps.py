"""What the core decides (steps, for logs and simulation output) and asks for (actions)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

from ast_pbx.config.problems import Where


@dataclass(frozen=True)
class Step:
    """One decision of the core; `where` is the config line that made it."""

    KIND: ClassVar[str] = "step"  # the step's name in JSON output
    where: Where | None = field(default=None, kw_only=True, compare=False)

    def describe(self) -> str:
        raise NotImplementedError

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"step": self.KIND}
        data.update((k, v) for k, v in asdict(self).items() if v is not None and k != "where")
        if self.where is not None:
            data["where"] = str(self.where)
        return data


@dataclass(frozen=True)
class RuleApplied(Step):
    KIND = "rule"
    number: str
    goto: str | None

    def describe(self) -> str:
        target = f"goes to {self.goto}" if self.goto else "hangs up"
        return f"rule for {self.number} applies: the call {target}"


@dataclass(frozen=True)
class Reached(Step):
    KIND = "reach"
    number: str
    what: str  # phone | menu | queue | trunk NAME | unknown

    def describe(self) -> str:
        return f"{self.number}: {self.what}"


@dataclass(frozen=True)
class Prompted(Step):
    KIND = "prompt"
    prompt: str  # say | audio | scenario
    value: str
    text: str | None = None  # what TTS says, when it is text

    def describe(self) -> str:
        if self.prompt == "say":
            return f"says: {self.value}"
        if self.prompt == "audio":
            return f"plays audio {self.value}"
        return f"scenario {self.value}" + (f" says: {self.text}" if self.text else "")


@dataclass(frozen=True)
class KeyTaken(Step):
    KIND = "key"
    key: str
    goto: str | None
    barge_in: bool = False

    def describe(self) -> str:
        interrupt = " (interrupts the prompt)" if self.barge_in else ""
        return f"key {self.key}{interrupt} → {self.goto or 'hang up'}"


@dataclass(frozen=True)
class DigitsMatched(Step):
    KIND = "digits"
    digits: str
    pattern: str
    goto: str | None

    def describe(self) -> str:
        return f"digits {self.digits} match '{self.pattern}' → {self.goto or 'hang up'}"


@dataclass(frozen=True)
class KeyIgnored(Step):
    KIND = "ignored"
    key: str

    def describe(self) -> str:
        return f"key {self.key} ignored: no handler takes it"


@dataclass(frozen=True)
class TimedOut(Step):
    KIND = "timeout"
    seconds: float
    goto: str | None
    default: bool = False

    def describe(self) -> str:
        if self.default:
            return f"no input for {self.seconds:g} s (no timeout handler): hang up"
        return f"timeout after {self.seconds:g} s → {self.goto or 'hang up'}"


@dataclass(frozen=True)
class ScenarioRan(Step):
    KIND = "scenario"
    scenario: str
    input: str
    result: str

    def describe(self) -> str:
        shown = f"({self.input})" if self.input else ""
        return f"scenario {self.scenario}{shown}: {self.result}"


@dataclass(frozen=True)
class Ended(Step):
    """Where the call ends, in the terms of `expect.ends`: hangup, phone N, queue N, trunk NAME."""

    KIND = "end"
    ends: str
    reason: str

    def describe(self) -> str:
        return f"ends: {self.ends} ({self.reason})"


# Actions: what the core asks a shell to do next.


@dataclass(frozen=True)
class Action:
    pass


@dataclass(frozen=True)
class Play(Action):
    prompt: str  # say | audio
    value: str  # the text to speak or the audio id


@dataclass(frozen=True)
class StopPlayback(Action):
    pass


@dataclass(frozen=True)
class StartTimer(Action):
    seconds: float
    token: int  # a timer that fires with an older token is stale and ignored


@dataclass(frozen=True)
class Lookup(Action):
    """Ask the directory port; answer with `Call.lookup_done`."""

    scenario: str
    key: str  # the case number, the caller's phone


@dataclass(frozen=True)
class EnterQueue(Action):
    queue: str


@dataclass(frozen=True)
class DialPhone(Action):
    phone: str


@dataclass(frozen=True)
class DialTrunk(Action):
    trunk: str
    number: str


@dataclass(frozen=True)
class Hangup(Action):
    reason: str
