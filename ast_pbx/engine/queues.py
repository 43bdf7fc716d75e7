"""The queues on Asterisk: `core.queueing` decides, this module rings and connects.

A member is rung by originating `system.asterisk.phone_dial` into the Stasis app with
args `queued,<call>,<member>`: its StasisStart means it answered. The first to answer is
handed to the caller's session, which bridges them; the others are hung up. A member
is busy while a call it answered is up.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from ast_pbx.ari import AriError
from ast_pbx.config.model import Queue
from ast_pbx.core.queueing import (
    Connect,
    Decision,
    MemberState,
    QueueState,
    Ring,
    SendAway,
    StopRinging,
)

if TYPE_CHECKING:
    from ast_pbx.engine.engine import Engine
    from ast_pbx.engine.session import CallSession

log = logging.getLogger("astpbx.queue")

CONNECTED, SEND_AWAY = "astpbx.connected", "astpbx.send_away"
EXTRA_RING = 5  # seconds Asterisk lets a member ring past ring_timeout before giving up


class Queues:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.states: dict[str, QueueState] = {}
        self.calls: dict[str, tuple[CallSession, Queue]] = {}  # call id → session, queue
        self.ringing: dict[str, tuple[str, str]] = {}  # member channel → (call, member)
        self.talking: dict[str, str] = {}  # member → the call they answered
        self._timers: dict[str, asyncio.TimerHandle] = {}

    async def enter(self, session: CallSession, queue: Queue) -> None:
        state = self.states.setdefault(queue.number, QueueState(queue))
        state.enter(session.id, session.call.caller, self.engine.clock())
        self.calls[session.id] = (session, queue)
        await self.dispatch(queue.number)

    async def leave(self, call: str) -> None:
        """The caller hung up or moved on: idempotent."""
        entry = self.calls.pop(call, None)
        if entry is None:
            return
        number = entry[1].number
        await self._carry_out(number, self.states[number].leave(call))
        await self.dispatch(number)

    def position(self, call: str) -> int | None:
        entry = self.calls.get(call)
        return self.states[entry[1].number].position(call) if entry else None

    async def dispatch(self, number: str) -> None:
        state = self.states[number]
        members = {m: MemberState(busy=m in self.talking) for m in state.queue.members}
        await self._carry_out(number, state.dispatch(self.engine.clock(), members))
        self._schedule(number)

    def _schedule(self, number: str) -> None:
        old = self._timers.pop(number, None)
        if old is not None:
            old.cancel()
        deadline = self.states[number].next_deadline()
        if deadline is None:
            return
        delay = max(0.0, (deadline - self.engine.clock()).total_seconds())
        loop = asyncio.get_running_loop()
        self._timers[number] = loop.call_later(
            delay, lambda: self.engine.spawn(self.dispatch(number))
        )

    async def _carry_out(self, number: str, decisions: list[Decision]) -> None:
        for decision in decisions:
            if isinstance(decision, Ring):
                for member in decision.members:
                    await self._ring(number, decision.call, member)
            elif isinstance(decision, StopRinging):
                await self._stop(decision.call, decision.members)
            elif isinstance(decision, Connect):
                self._connect(decision.call, decision.member)
            elif isinstance(decision, SendAway):
                entry = self.calls.pop(decision.call, None)
                if entry is not None:
                    entry[0].put({"type": SEND_AWAY, "reason": decision.reason})

    async def _ring(self, number: str, call: str, member: str) -> None:
        session, queue = self.calls[call]
        params = {
            "endpoint": self.engine.phone_endpoint(session.version, member),
            "app": self.engine.app,
            "appArgs": f"queued,{call},{member}",
            "timeout": int(queue.ring_timeout) + EXTRA_RING,
            "callerId": session.call.caller or "",
            "originator": call,
        }
        try:
            channel = await self.engine.ari.request("POST", "channels", params)
        except AriError as exc:
            log.warning("queue %s: ringing %s failed: %s", number, member, exc)
            self.states[number].declined(call, member)
            return
        self.ringing[str(channel["id"])] = (call, member)

    async def _stop(self, call: str, members: tuple[str, ...]) -> None:
        for channel, (owner, member) in list(self.ringing.items()):
            if owner == call and member in members:
                del self.ringing[channel]
                await self.engine.ari.quiet("DELETE", f"channels/{channel}")

    def _connect(self, call: str, member: str) -> None:
        channel = next(c for c, (o, m) in self.ringing.items() if o == call and m == member)
        del self.ringing[channel]
        entry = self.calls.pop(call, None)
        if entry is None:
            return
        self.talking[member] = call
        entry[0].put({"type": CONNECTED, "member": member, "peer": channel})

    # Events of members' channels

    def answered(self, channel: str) -> None:
        """A rung member's channel entered the app: it answered."""
        found = self.ringing.get(channel)
        if found is None:
            self.engine.spawn(self.engine.ari.quiet("DELETE", f"channels/{channel}"))
            return
        call, member = found
        entry = self.calls.get(call)
        if entry is None:
            return
        number = entry[1].number
        decisions = self.states[number].answered(call, member)
        self.engine.spawn(self._answered(number, channel, decisions))

    async def _answered(self, number: str, channel: str, decisions: list[Decision]) -> None:
        if not any(isinstance(d, Connect) for d in decisions):
            self.ringing.pop(channel, None)
            await self.engine.ari.quiet("DELETE", f"channels/{channel}")
        await self._carry_out(number, decisions)
        await self.dispatch(number)

    def gone(self, channel: str) -> None:
        """A rung member's channel ended before answering: they declined."""
        found = self.ringing.pop(channel, None)
        if found is None:
            return
        call, member = found
        entry = self.calls.get(call)
        if entry is not None:
            self.states[entry[1].number].declined(call, member)
            self.engine.spawn(self.dispatch(entry[1].number))

    def hung_up(self, call: str) -> None:
        """The conversation of `call` is over: its member is free again."""
        for member, owner in list(self.talking.items()):
            if owner == call:
                del self.talking[member]

    def handles(self, channel: str) -> bool:
        return channel in self.ringing

    def describe(self) -> dict[str, Any]:
        return {n: list(s.calls) for n, s in self.states.items()}
