"""Queue decisions: who rings for which waiting caller, and when that changes.

Pure: the shell tells a `QueueState` what happens (a caller enters or leaves, a member
answers or declines, time passes) and what it knows of the members (online from the
PJSIP endpoint state, busy on a call, the operator's "accept queue calls" switch), and
carries out the decisions: ring members for a caller, stop them, connect a member.

The rules, from the manual and the config language:
- callers are served in order of arrival; `ring_at_once` members ring for a caller at the
  same time, for `ring_timeout` seconds, then the next ones;
- members offline, busy or not accepting are skipped; a member rings for one caller at a
  time; a member who did not answer is not rung again for the same caller before the
  others have been tried;
- `sticky`: a repeat caller of the day is offered first to the operator who talked to them,
  whenever that operator is free, whatever their place; any other free operator still
  serves them in their turn ("a priority, never a penalty");
- `leave_when_empty`: while no member is online, waiting callers are sent away.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from ast_pbx.config.model import Queue


@dataclass(frozen=True)
class MemberState:
    online: bool = True
    busy: bool = False
    accepting: bool = True

    @property
    def free(self) -> bool:
        return self.online and not self.busy and self.accepting


@dataclass(frozen=True)
class Ring:
    call: str
    members: tuple[str, ...]


@dataclass(frozen=True)
class StopRinging:
    call: str
    members: tuple[str, ...]


@dataclass(frozen=True)
class Connect:
    call: str
    member: str


@dataclass(frozen=True)
class SendAway:
    call: str
    reason: str


Decision = Ring | StopRinging | Connect | SendAway


@dataclass
class _Waiting:
    call: str
    caller: str | None
    since: datetime
    tried: set[str] = field(default_factory=set)  # did not answer, since the last full round
    ringing: tuple[str, ...] = ()
    ringing_since: datetime | None = None


class QueueState:
    def __init__(
        self,
        queue: Queue,
        *,
        operator_of_today: Callable[[str | None], str | None] = lambda caller: None,
    ) -> None:
        self.queue = queue
        self.ring_for = timedelta(seconds=queue.ring_timeout)
        self._operator_of_today = operator_of_today  # for `sticky`: the shell's statistics
        self._waiting: list[_Waiting] = []

    # What happens

    def enter(self, call: str, caller: str | None, now: datetime) -> None:
        """A caller arrives at `now` (earlier for one an engine's predecessor had
        waiting): their place is by arrival."""
        place = len(self._waiting)
        while place and self._waiting[place - 1].since > now:
            place -= 1
        self._waiting.insert(place, _Waiting(call, caller, now))

    def reconfigure(self, queue: Queue) -> None:
        """The config was reloaded: members, `ring_timeout`, `sticky` and
        `leave_when_empty` are the new ones from the next decision on."""
        self.queue = queue
        self.ring_for = timedelta(seconds=queue.ring_timeout)

    def leave(self, call: str) -> list[Decision]:
        """The caller hung up or a handler moved them on: stop what rings for them."""
        waiting = self._find(call)
        if waiting is None:
            return []
        self._waiting.remove(waiting)
        return [StopRinging(call, waiting.ringing)] if waiting.ringing else []

    def answered(self, call: str, member: str) -> list[Decision]:
        """`member` picked up for `call`: connect them, silence the others."""
        waiting = self._find(call)
        if waiting is None or member not in waiting.ringing:
            return []
        self._waiting.remove(waiting)
        others = tuple(m for m in waiting.ringing if m != member)
        return [Connect(call, member), *([StopRinging(call, others)] if others else [])]

    def declined(self, call: str, member: str) -> None:
        """`member`'s phone rejected or failed the call: try the others first."""
        waiting = self._find(call)
        if waiting is not None and member in waiting.ringing:
            waiting.ringing = tuple(m for m in waiting.ringing if m != member)
            waiting.tried.add(member)
            if not waiting.ringing:
                waiting.ringing_since = None

    # What the caller is told

    def position(self, call: str) -> int | None:
        """1 for the caller served next."""
        return next((i + 1 for i, w in enumerate(self._waiting) if w.call == call), None)

    @property
    def calls(self) -> tuple[str, ...]:
        return tuple(w.call for w in self._waiting)

    # Decisions

    def dispatch(self, now: datetime, members: Mapping[str, MemberState]) -> list[Decision]:
        """Everything that should change now: rings that timed out, callers sent away,
        members to ring. Call it after every event and at `next_deadline()`."""
        decisions: list[Decision] = self._expire(now)
        if self.queue.leave_when_empty and not any(
            members.get(m, MemberState(online=False)).online for m in self.queue.members
        ):
            decisions += [SendAway(w.call, "no queue member online") for w in self._waiting]
            self._waiting.clear()
            return decisions
        free = self._free_members(members)
        if self.queue.sticky:
            decisions += self._offer_to_their_operator(free, now)
        for waiting in self._waiting:
            if not free:
                break
            if not waiting.ringing:
                decisions += self._ring_next(waiting, free, members, now)
        return decisions

    def next_deadline(self) -> datetime | None:
        """When the next ring times out, if anything rings."""
        times = [w.ringing_since for w in self._waiting if w.ringing_since is not None]
        return min(times) + self.ring_for if times else None

    def _expire(self, now: datetime) -> list[Decision]:
        stopped: list[Decision] = []
        for waiting in self._waiting:
            since = waiting.ringing_since
            if since is not None and now - since >= self.ring_for:
                stopped.append(StopRinging(waiting.call, waiting.ringing))
                waiting.tried.update(waiting.ringing)
                waiting.ringing, waiting.ringing_since = (), None
        return stopped

    def _free_members(self, members: Mapping[str, MemberState]) -> list[str]:
        taken = {m for w in self._waiting for m in w.ringing}
        return [
            m
            for m in self.queue.members
            if members.get(m, MemberState(online=False)).free and m not in taken
        ]

    def _offer_to_their_operator(self, free: list[str], now: datetime) -> list[Decision]:
        decisions: list[Decision] = []
        for waiting in self._waiting:
            operator = self._operator_of_today(waiting.caller)
            if not waiting.ringing and operator in free:
                free.remove(operator)
                decisions.append(self._ring(waiting, (operator,), now))
        return decisions

    def _ring_next(
        self, waiting: _Waiting, free: list[str], members: Mapping[str, MemberState], now: datetime
    ) -> list[Decision]:
        reachable = {
            m for m in self.queue.members if members.get(m, MemberState(online=False)).free
        }
        if reachable <= waiting.tried:
            waiting.tried.clear()  # everyone had a turn: start a new round
        chosen = tuple(m for m in free if m not in waiting.tried)[: self.queue.ring_at_once]
        if not chosen:
            return []
        for member in chosen:
            free.remove(member)
        return [self._ring(waiting, chosen, now)]

    @staticmethod
    def _ring(waiting: _Waiting, members: tuple[str, ...], now: datetime) -> Ring:
        waiting.ringing, waiting.ringing_since = members, now
        return Ring(waiting.call, members)

    def _find(self, call: str) -> _Waiting | None:
        return next((w for w in self._waiting if w.call == call), None)
