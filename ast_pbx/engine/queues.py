"""The queues on Asterisk: `core.queueing` decides, this module rings and connects.

A member is rung by originating `system.asterisk.phone_dial` into the Stasis app with
args `queued,<call>,<member>`: its StasisStart means it answered. The first to answer is
handed to the caller's session, which bridges them; the others are hung up. A member
is busy while it talks on any call the engine bridged; online and accepting as
`Presence` says. Every wait goes to the queue statistics (`queues.*` writes), and the
operator of a caller's last answered call of the day is kept for `sticky` queues.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from ast_pbx.ari import AriError
from ast_pbx.config.model import Queue
from ast_pbx.core.queueing import (
    Connect,
    Decision,
    QueueState,
    Ring,
    SendAway,
    StopRinging,
)
from ast_pbx.engine.legs import Leg, app_args
from ast_pbx.engine.ports import CONNECTED, SEND_AWAY

if TYPE_CHECKING:
    from ast_pbx.engine.ports import QueuesHost, Waiting

log = logging.getLogger("astpbx.queue")

EXTRA_RING = 5  # seconds Asterisk lets a member ring past ring_timeout before giving up
RETRY_FAILED_RING = 1.0  # seconds before the queue decides again after a ring failed


class Queues:
    def __init__(self, engine: QueuesHost) -> None:
        self.engine = engine
        self.states: dict[str, QueueState] = {}
        self.calls: dict[str, tuple[Waiting, Queue]] = {}  # call id → session, queue
        self.ringing: dict[str, tuple[str, str]] = {}  # member channel → (call, member)
        self.talking: dict[str, str] = {}  # phone → the call it talks on
        self._timers: dict[str, asyncio.TimerHandle] = {}
        # `sticky`: caller → the member who answered them last today (system timezone)
        self.today: dict[str, str] = {}
        self.day: date | None = None

    def load_today(self, operators: dict[str, str], now: datetime) -> None:
        """Today's answered callers from the statistics, after a restart."""
        self.day = self._local_day(now)
        self.today = dict(operators)

    def _local_day(self, now: datetime) -> date:
        return now.astimezone(self.engine.current.config.system.zone()).date()

    def _operator_of_today(self, caller: str | None) -> str | None:
        if caller is None or self.day != self._local_day(self.engine.clock()):
            return None
        return self.today.get(caller)

    async def enter(self, session: Waiting, queue: Queue) -> None:
        state = self.states.get(queue.number)
        if state is None:
            state = QueueState(queue, operator_of_today=self._operator_of_today)
            self.states[queue.number] = state
        arrived = session.queued_at or self.engine.clock()
        if not session.rejoining:  # one a predecessor engine had waiting is counted there
            self.engine.record(
                "queues.entered", session.id, queue.number, session.call.caller, arrived
            )
        state.enter(session.id, session.call.caller, arrived)
        session.rejoining = False
        self.calls[session.id] = (session, queue)
        self._publish_waiting()
        await self.dispatch(queue.number)

    async def leave(self, call: str, outcome: str) -> None:
        """The caller hung up (`abandoned`) or a handler moved them on (`moved`):
        idempotent."""
        entry = self.calls.pop(call, None)
        if entry is None:
            return
        number = entry[1].number
        self.engine.record("queues.left", call, outcome, self.engine.clock())
        self._publish_waiting()
        await self._carry_out(number, self.states[number].leave(call))
        await self.dispatch(number)

    def waiting(self) -> dict[str, int]:
        """Callers waiting per queue, for the page's statistics panel."""
        return {number: len(state.calls) for number, state in self.states.items()}

    def _publish_waiting(self) -> None:
        self.engine.events.publish("queues", waiting=self.waiting())
        self.engine.events.publish("calls")

    async def dispatch_all(self) -> None:
        """Members' states changed: every queue may ring someone now."""
        for number in list(self.states):
            await self.dispatch(number)

    def occupy(self, phone: str, call: str) -> None:
        self.talking[phone] = call

    def release(self, phone: str, call: str) -> None:
        """`phone` left the conversation of `call` (not another it has meanwhile)."""
        if self.talking.get(phone) == call:
            del self.talking[phone]
            self.engine.spawn(self.dispatch_all())

    def position(self, call: str) -> int | None:
        entry = self.calls.get(call)
        return self.states[entry[1].number].position(call) if entry else None

    async def dispatch(self, number: str) -> None:
        state = self.states[number]
        current = self.engine.current.config.targets.get(number)
        if isinstance(current, Queue) and current is not state.queue:
            state.reconfigure(current)  # a reload: members and timings as they are now
        presence = self.engine.presence
        members = {m: presence.state(m, busy=m in self.talking) for m in state.queue.members}
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
                    now = self.engine.clock()
                    self.engine.record("queues.left", decision.call, "sent_away", now)
                    self._publish_waiting()
                    entry[0].put({"type": SEND_AWAY, "reason": decision.reason})

    async def _ring(self, number: str, call: str, member: str) -> None:
        session, queue = self.calls[call]
        log.info("queue %s: ringing %s for %s", number, member, call)
        self.engine.events.publish("ringing", phone=member, caller=session.call.caller, call=call)
        # Our own channel id, known before Asterisk answers: a member who picks up at
        # once enters the app before the originate request returns.
        channel = f"{call}-q{uuid.uuid4().hex[:12]}"
        self.ringing[channel] = (call, member)
        params = {
            "endpoint": self.engine.phone_endpoint(session.version, member),
            "app": self.engine.app,
            "appArgs": app_args(Leg.QUEUED, call, member),
            "timeout": int(queue.ring_timeout) + EXTRA_RING,
            "callerId": session.call.caller or "",
            "originator": call,
            "channelId": channel,
        }
        try:
            await self.engine.ari.request("POST", "channels", params)
        except AriError as exc:
            log.warning("queue %s: ringing %s failed: %s", number, member, exc)
            if self.ringing.pop(channel, None) is not None:
                self.states[number].declined(call, member)
                # The next member is tried (and the timers set) as for one who declined,
                # a second later: a phone that cannot be dialed at all is not hammered.
                asyncio.get_running_loop().call_later(
                    RETRY_FAILED_RING, lambda: self.engine.spawn(self.dispatch(number))
                )

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
        session = entry[0]
        now = self.engine.clock()
        operator = self.engine.presence.operator_of(member)
        login = operator.login if operator is not None else None
        self.engine.record("queues.answered", call, member, now, operator=login)
        if session.call.caller:
            if self.day != self._local_day(now):
                self.today, self.day = {}, self._local_day(now)
            self.today[session.call.caller] = member
        session.put({"type": CONNECTED, "member": member, "peer": channel})
        self._publish_waiting()

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
        # Connect at once: from this moment the member is busy. Done in a task, a second
        # member answering in the same read would dispatch first and ring this one again.
        connects = [d for d in decisions if isinstance(d, Connect)]
        for connect in connects:
            self._connect(connect.call, connect.member)
        rest: list[Decision] = [d for d in decisions if not isinstance(d, Connect)]
        self.engine.spawn(self._answered(number, channel, rest, connected=bool(connects)))

    async def _answered(
        self, number: str, channel: str, decisions: list[Decision], *, connected: bool
    ) -> None:
        if not connected:  # too late: another member took the caller, or the caller left
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
        """The conversation of `call` is over: its phones are free again."""
        freed = [p for p, owner in self.talking.items() if owner == call]
        for phone in freed:
            del self.talking[phone]
        if freed:
            self.engine.spawn(self.dispatch_all())

    def handles(self, channel: str) -> bool:
        return channel in self.ringing

    def describe(self) -> dict[str, Any]:
        return {n: list(s.calls) for n, s in self.states.items()}
