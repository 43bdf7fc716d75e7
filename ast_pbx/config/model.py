"""The compiled configuration: immutable, typed, no I/O.

Every object keeps `where`, the place of the YAML mapping it came from, and
`fields`, the places of its keys' values, so that checks and run-time logs can
point at the line an administrator wrote. Regexes are compiled here once;
a regex that does not compile is None (the `bad-regex` check reports it).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any, Literal

from ast_pbx.config.problems import Where
from ast_pbx.config.timespec import TimeSpan

DEFAULT_MENU_TIMEOUT = 15.0  # seconds; the manual: a menu with handlers hangs up after 15 s

PromptKind = Literal["say", "audio", "scenario"]
HandlerKind = Literal["key", "digits", "timeout"]
# How a phone's or a trunk's DTMF keys travel (PJSIP's dtmf_mode; the schema lists them).
DtmfMode = Literal["rfc4733", "info", "inband", "auto"]
DTMF_MODES: tuple[DtmfMode, ...] = ("rfc4733", "info", "inband", "auto")
# Menu scenarios that act on the digits the caller entered before reaching the menu.
INPUT_SCENARIOS = frozenset({"echo_digits", "case_status", "dial_entered"})

_NOWHERE = Where("<default>")


def _frozen() -> Mapping[str, Any]:
    return MappingProxyType({})


@dataclass(frozen=True)
class Located:
    where: Where = field(default=_NOWHERE, compare=False, kw_only=True)
    fields: Mapping[str, Where] = field(default_factory=_frozen, compare=False, kw_only=True)
    # The place of each item of a list value (members, days, hours) by key.
    lists: Mapping[str, Sequence[Where]] = field(
        default_factory=_frozen, compare=False, kw_only=True
    )

    def at(self, key: str) -> Where:
        """Where the value of `key` stands, or the object itself when it was not written."""
        return self.fields.get(key, self.where)

    def item_at(self, key: str, index: int) -> Where:
        """Where item `index` of the list under `key` stands."""
        places = self.lists.get(key, ())
        return places[index] if 0 <= index < len(places) else self.at(key)


@dataclass(frozen=True)
class Regex(Located):
    """A regex as written and compiled; `pattern` is None when it does not compile."""

    source: str
    pattern: re.Pattern[str] | None

    def fullmatch(self, text: str) -> bool:
        return self.pattern is not None and self.pattern.fullmatch(text) is not None


@dataclass(frozen=True)
class Phone(Located):
    number: str
    password: str
    name: str | None = None
    type: str = "simple"
    dtmf: DtmfMode = "rfc4733"


@dataclass(frozen=True)
class Trunk(Located):
    name: str
    match: Regex | None = None
    inbound: str | None = None
    external: bool = False
    host: str | None = None
    port: int | None = None
    username: str | None = None
    password: str | None = None
    endpoint: str | None = None
    lines: int | None = None  # simultaneous calls the line carries; None: no limit
    dtmf: DtmfMode = "rfc4733"


@dataclass(frozen=True)
class Audio(Located):
    id: str
    file: str  # absolute path, resolved against the file that names it
    title: str | None = None


@dataclass(frozen=True)
class Prompt(Located):
    """What a menu or a playlist item plays: TTS text, an audio id or a scenario name."""

    kind: PromptKind
    value: str


@dataclass(frozen=True)
class Playlist(Located):
    id: str
    items: tuple[Prompt, ...]
    title: str | None = None
    order: Literal["in_order", "random"] = "in_order"


@dataclass(frozen=True)
class Handler(Located):
    """One `on` entry: a key, a digits regex or a timeout, and where it leads (None: hang up)."""

    kind: HandlerKind
    goto: str | None
    key: str | None = None
    digits: Regex | None = None
    timeout: float | None = None


@dataclass(frozen=True)
class Menu(Located):
    number: str
    prompt: Prompt | None
    handlers: tuple[Handler, ...] = ()
    name: str | None = None
    entry: bool = False

    @property
    def label(self) -> str:
        return f"menu {self.number}"

    @property
    def timeout(self) -> Handler | None:
        return next((h for h in self.handlers if h.kind == "timeout"), None)


@dataclass(frozen=True)
class Queue(Located):
    number: str
    members: tuple[str, ...]
    name: str | None = None
    ring_at_once: int = 1
    ring_timeout: float = 15.0
    playlist: str | None = None
    leave_when_empty: bool = False
    sticky: bool = False
    handlers: tuple[Handler, ...] = ()

    @property
    def label(self) -> str:
        return f"queue {self.number}"


@dataclass(frozen=True)
class Rule(Located):
    number: str
    goto: str | None = None
    callers: frozenset[str] | None = None
    caller_patterns: tuple[Regex, ...] | None = None
    days: frozenset[int] | None = None  # datetime.weekday() values
    hours: tuple[TimeSpan, ...] | None = None

    def applies(self, caller: str | None, local: datetime) -> bool:
        """Every condition the rule states holds for this caller at this local time."""
        if not self._caller_matches(caller):
            return False
        if self.days is not None and local.weekday() not in self.days:
            return False
        moment = local.time()
        return self.hours is None or any(span.contains(moment) for span in self.hours)

    def _caller_matches(self, caller: str | None) -> bool:
        if self.callers is None and self.caller_patterns is None:
            return True
        if caller is None:
            return False
        if self.callers and caller in self.callers:
            return True
        return any(regex.fullmatch(caller) for regex in self.caller_patterns or ())


@dataclass(frozen=True)
class Dialer(Located):
    enabled: bool = False
    lines: int = 2
    retry_after: float = 30.0  # minutes
    max_unanswered: int = 3
    max_failed: int = 5
    hours: TimeSpan | None = None
    ring_timeout: float = 40.0  # seconds a citizen's phone rings


@dataclass(frozen=True)
class Transfer(Located):
    playlist: str | None = None


@dataclass(frozen=True)
class User(Located):
    login: str
    role: Literal["operator", "manager", "admin"] = "operator"
    name: str | None = None
    password_hash: str | None = None


@dataclass(frozen=True)
class Directory(Located):
    url: str | None = None
    queries: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class CallTest(Located):
    name: str
    to: str
    caller: str | None = None
    moment: datetime | None = None  # `at`: naive local time in the system timezone
    input: str = ""
    visits: tuple[str, ...] | None = None
    ends: str | None = None
    says: tuple[str, ...] = ()
    # What the directory answers during the test: case → status, phone → cases, phone → name.
    cases: Mapping[str, str] = field(default_factory=_frozen)
    cases_by_phone: Mapping[str, tuple[str, ...]] = field(default_factory=_frozen)
    names: Mapping[str, str] = field(default_factory=_frozen)
