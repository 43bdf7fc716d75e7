"""Live monitoring: the list of active calls, and a manager listening in on one.

Listening in: Asterisk snoops on the caller's channel (`spy=both`: what the caller says
and hears) into a snoop channel; the manager's phone is rung, and when it answers it
is bridged with the snoop channel. The manager is muted (no whisper) unless asked to
whisper, in which case the snoop is on the operator's channel with `whisper=out`: only
the operator hears the manager. The listening legs end with the call.
"""

from __future__ import annotations

import itertools
import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from ast_pbx.ari import AriError
from ast_pbx.core.call import Phase
from ast_pbx.engine.legs import AppArgs, Leg, app_args
from ast_pbx.errors import AstPbxError

if TYPE_CHECKING:
    from ast_pbx.engine.ports import CallsHost
    from ast_pbx.engine.session import CallSession

log = logging.getLogger("astpbx.monitor")

LISTEN_RING = 30  # seconds the manager's phone rings


class NoSuchCall(AstPbxError):
    """The call asked for is not (or no longer) active."""


@dataclass(frozen=True)
class ActiveCall:
    id: str
    caller: str | None
    called: str  # the number first called
    peer: str | None  # who the caller talks to or is being connected to
    state: str  # VOICE_MENU | QUEUE | DIALING | TALK | TRANSFER
    since: datetime
    queue_position: int | None = None


def call_state(session: CallSession) -> str:
    if session.transferring:
        return "TRANSFER"
    if session.bridge is not None:
        return "TALK"
    if session.peer is not None:
        return "DIALING"
    if session.call.phase is Phase.QUEUED:
        return "QUEUE"
    return "VOICE_MENU"


@dataclass
class Listening:
    id: str
    call: str
    phone: str
    snoop: str = ""
    leg: str = ""
    bridge: str | None = None
    channels: set[str] = field(default_factory=set)


class Monitor:
    def __init__(self, engine: CallsHost) -> None:
        self.engine = engine
        self.listening: dict[str, Listening] = {}
        self._ids = itertools.count(1)

    def active_calls(self) -> list[ActiveCall]:
        calls = [
            ActiveCall(
                s.id,
                s.call.caller,
                s.call.called,
                s.peer_number,
                call_state(s),
                s.started_at,
                self.engine.queues.position(s.id),
            )
            for s in self.engine.sessions.values()
            if s.call.phase is not Phase.ENDED or s.peer is not None
        ]
        return sorted(calls, key=lambda c: c.since)

    async def listen(self, call: str, phone: str, *, whisper: bool = False) -> str:
        """Ring `phone` and let it hear `call`; the id of this listening."""
        session = self.engine.sessions.get(call)
        if session is None:
            raise NoSuchCall(f"no active call {call}")
        listening = Listening(f"listen{next(self._ids)}", call, phone)
        # Our own channel ids: a channel may enter the app before its request returns.
        unique = uuid.uuid4().hex[:12]
        listening.snoop, listening.leg = f"snoop-{unique}", f"listener-{unique}"
        listening.channels = {listening.snoop, listening.leg}
        self.listening[listening.id] = listening
        spied = session.peer if whisper and session.peer else call
        try:
            await self.engine.ari.request(
                "POST",
                f"channels/{spied}/snoop",
                {
                    "spy": "both",
                    "whisper": "out" if whisper else "none",
                    "app": self.engine.app,
                    "appArgs": app_args(Leg.SNOOP, listening.id),
                    "snoopId": listening.snoop,
                },
            )
            await self.engine.ari.request(
                "POST",
                "channels",
                {
                    "endpoint": self.engine.phone_endpoint(session.version, phone),
                    "app": self.engine.app,
                    "appArgs": app_args(Leg.LISTENER, listening.id),
                    "timeout": LISTEN_RING,
                    "callerId": session.call.caller or "",
                    "channelId": listening.leg,
                },
            )
        except AriError:
            await self._end(listening)
            raise
        log.info("%s: %s listens to call %s", listening.id, phone, call)
        return listening.id

    async def stop(self, listening_id: str) -> None:
        listening = self.listening.get(listening_id)
        if listening is not None:
            await self._end(listening)

    # Events

    def handles(self, channel: str) -> bool:
        return any(channel in x.channels for x in self.listening.values())

    def stasis_start(self, args: AppArgs, channel: str) -> bool:
        """A snoop or listener channel entered the app: True if it is ours."""
        if args.leg not in (Leg.SNOOP, Leg.LISTENER):
            return False
        listening = self.listening.get(args.value())
        if listening is None:
            self.engine.spawn(self.engine.ari.quiet("DELETE", f"channels/{channel}"))
        elif args.leg is Leg.LISTENER:
            self.engine.spawn(self._connect(listening))
        return True

    def channel_gone(self, channel: str) -> None:
        for listening in list(self.listening.values()):
            if channel in listening.channels:
                self.engine.spawn(self._end(listening))

    def call_ended(self, call: str) -> None:
        for listening in list(self.listening.values()):
            if listening.call == call:
                self.engine.spawn(self._end(listening))

    async def _connect(self, listening: Listening) -> None:
        bridge = await self.engine.ari.request("POST", "bridges", {"type": "mixing"})
        listening.bridge = str(bridge["id"])
        await self.engine.ari.request(
            "POST",
            f"bridges/{listening.bridge}/addChannel",
            {"channel": f"{listening.snoop},{listening.leg}"},
        )

    async def _end(self, listening: Listening) -> None:
        if self.listening.pop(listening.id, None) is None:
            return
        for channel in (listening.leg, listening.snoop):
            if channel:
                await self.engine.ari.quiet("DELETE", f"channels/{channel}")
        if listening.bridge is not None:
            await self.engine.ari.quiet("DELETE", f"bridges/{listening.bridge}")
        log.info("%s ended", listening.id)
