"""A starting engine takes over what its predecessor left in Asterisk.

Calls: every channel in the Stasis application with a state (`engine.callstate`) is
carried on by a session of this engine from where it was; a caller without one (its
engine died before writing it) starts from the beginning; the channels that belong to
an adopted call (its peer, its recording's snoop) are that call's. Members ringing for
an adopted queue call are hung up and the queue rings afresh. Listen-in legs and what
nothing owns are hung up by the engine's resync.

The log: a call still open in the database whose channel is gone ended while no engine
ran. It is closed with the time and cause the dialplan noted as it ended (the global
`ASTPBX_END_<channel>`), or, when Asterisk itself restarted since and kept no note,
with the time Asterisk started. Its recording, finished by Asterisk meanwhile, is
fetched like any other.
"""

from __future__ import annotations

import asyncio
import logging
import re
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ast_pbx.ari import AriError
from ast_pbx.engine.callstate import DIALING, QUEUE, STATE_VARIABLE, Saved, decode
from ast_pbx.engine.legs import Leg
from ast_pbx.engine.ports import PEER_UP
from ast_pbx.engine.session import CallSession

if TYPE_CHECKING:
    from ast_pbx.engine.ports import CallsHost

log = logging.getLogger("astpbx.adoption")

# Channels the engine placed, by the id it gave them: not callers.
PLACED = ("rec-", "snoop-", "listener-", "callback-")
# A call's legs: `<call>-d<n>` dialed, `<call>-x<n>` a transfer's target, `<call>-q…` a
# queue member (engine.session, engine.conversation, engine.queues).
LEG = re.compile(r".+-[dxq][0-9a-f]+")
DIALPLAN = ("astpbx-phones", "astpbx-call", "astpbx-trunk-")


class Adoption:
    def __init__(self, engine: CallsHost) -> None:
        self.engine = engine

    async def adopt(self, present: set[str], channels: dict[str, dict[str, Any]]) -> set[str]:
        """Adopt the calls in the app (`present`) that no session has; the ids adopted."""
        engine = self.engine
        await engine.dialer.adopt(channels)
        unknown = [c for c in present if c not in engine.sessions and c not in engine.peers]
        states: dict[str, Saved] = {}
        fresh: list[str] = []
        for channel in unknown:
            if channel.startswith(PLACED) or LEG.fullmatch(channel) or engine.dialer.owns(channel):
                continue
            saved = await self._state(channel)
            if saved is not None:
                states[channel] = saved
            elif _from_dialplan(channels.get(channel)):
                fresh.append(channel)
        owned = {p for s in states.values() for p in (*s.parties, s.peer) if p}
        adopted: set[str] = set()
        # Queue callers in order of arrival: their places are kept.
        for channel, saved in sorted(states.items(), key=lambda i: i[1].queued or i[1].started):
            if channel in owned and channel not in (saved.parties[:1] or [channel]):
                continue  # a party of another adopted call (a transfer's target)
            session = CallSession.adopt(engine, engine.current, _info(channels, channel), saved)
            _claim(engine, session, saved)  # before the sweep of what nobody owns
            if saved.place == DIALING and _answered(channels, saved.peer):
                session.put({"type": PEER_UP, "peer": saved.peer})  # answered while away
            if saved.place == QUEUE:  # before the queue rings anew: one ring at a time
                await self._stop_ringing(channel, channels)
            self._start(session)
            adopted.add(channel)
        for channel in (c for c in fresh if c not in owned):
            info = _info(channels, channel)
            context = str((info.get("dialplan") or {}).get("context", ""))
            trunk = context.removeprefix("astpbx-trunk-") if context.startswith(DIALPLAN[2]) else ""
            args = [Leg.TRUNK.value, trunk] if trunk else [Leg.INTERNAL.value]
            log.info("call %s had not started at the last engine: starting it", channel)
            session = CallSession(engine, engine.current, info, args)
            session.restarted = True
            self._start(session)
            adopted.add(channel)
        if adopted:
            log.info("adopted %d calls", len(adopted))
            engine.events.publish("calls")
        return adopted

    def _start(self, session: CallSession) -> None:
        self.engine.sessions[session.id] = session
        session.start()

    async def _state(self, channel: str) -> Saved | None:
        try:
            found = await self.engine.ari.request(
                "GET", "asterisk/variable", {"variable": STATE_VARIABLE + channel}
            )
        except AriError:
            return None
        return decode(str(found.get("value") or "")) if isinstance(found, dict) else None

    async def _stop_ringing(self, call: str, channels: dict[str, dict[str, Any]]) -> None:
        """Members the predecessor rang for `call`: hung up, the queue rings anew."""
        for channel in channels:
            if channel.startswith(f"{call}-q"):
                await self.engine.ari.quiet("DELETE", f"channels/{channel}")

    # The log

    async def close_left(self, alive: set[str], adopted: set[str]) -> None:
        """Close the log rows of calls that ended while no engine ran (`alive`: the
        channels Asterisk has)."""
        engine = self.engine
        if engine.call_log is None:
            return
        try:
            rows = await asyncio.to_thread(engine.call_log.open_channels)
        except Exception:
            log.exception("cannot read the open calls of the log")
            return
        left = [(c, t) for c, t in rows if c not in alive and c not in engine.sessions]
        if not left:
            return
        booted = await self._asterisk_started()
        ended: set[str] = set()
        for channel, started in left:
            end = await engine.ended_while_away(channel)
            if end is not None:
                at, cause = end
                reason = f"ended while no engine ran (cause {cause})"
            else:  # Asterisk restarted and took the call with it
                at = booted if booted is not None and booted > started else engine.clock()
                reason = "ended while no engine ran (Asterisk restarted)"
            engine.record("ended", channel, at=at, outcome="hangup", reason=reason)
            ended.add(channel)
        log.info("closed %d calls that ended while no engine ran", len(ended))
        await engine.recorder.collect_left(ended)

    async def _asterisk_started(self) -> datetime | None:
        try:
            info = await self.engine.ari.request("GET", "asterisk/info", {"only": "status"})
        except AriError:
            return None
        text = str(((info or {}).get("status") or {}).get("startup_time") or "")
        try:
            return datetime.fromisoformat(text.replace("+0000", "+00:00"))
        except ValueError:
            return None


def _info(channels: dict[str, dict[str, Any]], channel: str) -> dict[str, Any]:
    return channels.get(channel) or {"id": channel}


def _from_dialplan(info: dict[str, Any] | None) -> bool:
    context = str(((info or {}).get("dialplan") or {}).get("context", ""))
    return context.startswith(DIALPLAN)


def _claim(engine: CallsHost, session: CallSession, saved: Saved) -> None:
    """The channels an adopted call owns: its peer or parties, its recording's snoop."""
    for channel in (*saved.parties, saved.peer):
        if channel and channel != session.id:
            engine.watch_peer(channel, session)
    if saved.recordings:
        engine.recorder.adopt(session.id, saved.recordings)


def _answered(channels: dict[str, dict[str, Any]], channel: str | None) -> bool:
    """A channel the engine placed that answered. (Not "in the app": the app lists the
    channels it is subscribed to, and a placed channel is from its first ring.)"""
    return channel is not None and channels.get(channel, {}).get("state") == "Up"
