"""The autodialer on Asterisk: claims due tasks, dials them, speaks the text, files outcomes.

Decisions are `core.dialing`'s (the window, how an attempt counts, when to retry) and
the store's (which task is due, leases). This module only places calls: at most
`dialer.lines` at a time, through the trunk whose `match` takes the number, only while
that trunk has a free line (`trunks[].lines`, shared with inbound and outbound calls).
A call that is answered hears the task's text `repeat` times, then is hung up.

Several engines may share one PostgreSQL: each claims with a lease under its own worker
name, so a task is never dialed twice at once; an engine that dies leaves leases that
run out, and the tasks are dialed again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from ast_pbx.ari import AriError
from ast_pbx.config.model import Dialer as DialerSettings
from ast_pbx.config.model import Trunk
from ast_pbx.core.dialing import classify, in_window
from ast_pbx.engine.legs import Leg, app_args

if TYPE_CHECKING:
    from ast_pbx.engine.ports import DialerHost
    from ast_pbx.storage.dialer import AttemptRecord, Claim, DialerStore

log = logging.getLogger("astpbx.dialer")

# Asterisk's dial status of a refused call as the Q.850 cause `classify` reads.
DIAL_CAUSES = {"BUSY": 17, "NOANSWER": 19, "CONGESTION": 34, "CHANUNAVAIL": 3}
POLL = 2.0  # seconds between looks for due tasks when nothing wakes the dialer
LEASE = timedelta(minutes=3)  # renewed while the call goes on


@dataclass
class DialerCall:
    task: int
    attempt: int
    number: str
    text: str
    repeat: int
    trunk: str
    rang: bool = False
    answered: bool = False
    said: int = 0
    playback: str | None = None
    cause: int | None = None  # Q.850 cause from the dial status, when the line says
    lease_until: datetime = datetime.max.replace(tzinfo=UTC)  # set when the call is placed


def worker_name() -> str:
    """Who holds a lease: host and process, so that an administrator can tell engines apart."""
    return f"{socket.gethostname()}:{os.getpid()}"[:64]


class Dialer:
    def __init__(self, engine: DialerHost, store: DialerStore | None) -> None:
        self.engine = engine
        self.store = store
        self.worker = worker_name()
        self.calls: dict[str, DialerCall] = {}  # channel → the call placed for a task
        self._wake = asyncio.Event()

    @property
    def settings(self) -> DialerSettings:
        return self.engine.current.config.dialer

    def wake(self) -> None:
        """A task was added or asked to be dialed now: look without waiting."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        if self.store is None:
            return
        while not stop.is_set():
            try:
                await self._round()
            except Exception:  # a database hiccup must not stop the dialer for good
                log.exception("dialer round failed")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), POLL)

    async def _round(self) -> None:
        assert self.store is not None
        now = self.engine.clock()
        await self._keep_leases(now)
        settings = self.settings
        free = settings.lines - len(self.calls) if settings.enabled else 0
        if free <= 0 or not self.engine.ari.connected:
            return
        local = now.astimezone(self.engine.current.config.system.zone())
        claims = await asyncio.to_thread(
            self.store.claim,
            self.worker,
            now,
            limit=free,
            lease=LEASE,
            in_window=in_window(settings.hours, local),
        )
        for claim in claims:
            await self._dial(claim)

    async def _keep_leases(self, now: datetime) -> None:
        """Renew the leases of calls still going on once half of a lease has passed
        (not every round: a database write per call every POLL seconds is waste)."""
        assert self.store is not None
        for call in list(self.calls.values()):
            if call.lease_until - now < LEASE / 2:
                call.lease_until = now + LEASE
                await asyncio.to_thread(self.store.extend, call.task, self.worker, call.lease_until)

    # Placing a call

    async def _dial(self, claim: Claim) -> None:
        task = claim.task
        trunk = self.engine.current.config.trunk_for(task.number)
        if trunk is None or not self._line_free(trunk):
            reason = "no trunk takes the number" if trunk is None else "no free line"
            log.warning("dialer task %s: %s %s", task.id, task.number, reason)
            await self._finish_attempt(claim.attempt_id, "failed", cause_text=reason)
            return
        channel = self.channel_of(task.id, claim.attempt_id)
        call = DialerCall(
            task.id, claim.attempt_id, task.number, task.text, task.repeat, trunk.name
        )
        call.lease_until = self.engine.clock() + LEASE  # as claimed
        self.calls[channel] = call
        log.info("dialer task %s: dialing %s through %s", task.id, task.number, trunk.name)
        try:
            await self.engine.ari.request(
                "POST",
                "channels",
                {
                    "endpoint": self.engine.trunk_endpoint(trunk, task.number),
                    "app": self.engine.app,
                    "appArgs": app_args(Leg.DIALER, task.id, claim.attempt_id),
                    "timeout": int(self.settings.ring_timeout),
                    "channelId": channel,
                },
                # Its end is noted for an engine that does not see it (adoption).
                body={"variables": {"CHANNEL(hangup_handler_push)": "astpbx-ended,s,1"}},
            )
        except AriError as exc:
            log.warning("dialer task %s: the call failed to start: %s", task.id, exc)
            if self.calls.pop(channel, None) is not None:
                await self._finish_attempt(claim.attempt_id, "failed", cause_text=str(exc)[:64])
            return
        self._event(call, channel_id=channel)

    def channel_of(self, task: int, attempt: int) -> str:
        """The channel id of an attempt: unique on an Asterisk that several sites'
        databases share (their apps differ), and found again by a successor."""
        return f"{self.engine.app}-dialer-{task}-{attempt}"

    # Another engine's calls (a restart, a standby taking over)

    async def adopt(self, channels: dict[str, dict[str, Any]]) -> None:
        """Carry on the attempts still up (`channels`: every channel Asterisk has) and
        close those that ended while no engine ran, each once, as it really ended."""
        if self.store is None:
            return
        for attempt in await asyncio.to_thread(self.store.open_attempts):
            channel = attempt.channel_id or self.channel_of(attempt.task_id, attempt.id)
            if channel in self.calls:
                continue
            if channel in channels:
                info = channels[channel]
                await self._take_over(attempt, channel, info, info.get("state") == "Up")
            else:
                await self._closed_meanwhile(attempt, channel)

    async def _take_over(
        self, attempt: AttemptRecord, channel: str, info: dict[str, Any], answered: bool
    ) -> None:
        assert self.store is not None
        until = self.engine.clock() + LEASE
        task = await asyncio.to_thread(self.store.take_over, attempt.id, self.worker, until)
        if task is None:  # not this task's current attempt any more: not ours to go on
            await self.engine.ari.quiet("DELETE", f"channels/{channel}")
            return
        trunk = self.engine.current.config.trunk_for(task.number)
        call = DialerCall(
            task.id, attempt.id, task.number, task.text, task.repeat, trunk.name if trunk else ""
        )
        call.lease_until = until
        call.rang = attempt.ringing_at is not None or info.get("state") == "Ringing"
        call.answered = answered
        self.calls[channel] = call
        log.info("dialer task %s: call %s adopted (%s)", task.id, channel, info.get("state"))
        if answered:  # the text from its start: who hears it knows nothing of engines
            self.engine.spawn(self._say(channel, call))
        else:  # still ringing: its events come to us from now on
            await self.engine.ari.quiet(
                "POST",
                f"applications/{self.engine.app}/subscription",
                {"eventSource": f"channel:{channel}"},
            )

    async def _closed_meanwhile(self, attempt: AttemptRecord, channel: str) -> None:
        ended = await self.engine.ended_while_away(channel)
        at, cause = ended if ended is not None else (self.engine.clock(), None)
        outcome = classify(attempt.answered_at is not None, attempt.ringing_at is not None, cause)
        log.info(
            "dialer task %s: attempt %s ended while away: %s", attempt.task_id, attempt.id, outcome
        )
        await self._finish_attempt(attempt.id, outcome, cause=cause, at=at)
        self._wake.set()

    def forget_gone(self, channels: set[str]) -> None:
        """After Asterisk restarted: the calls it no longer has ended; their lines are
        free and their attempts are filed (no lease renewed forever)."""
        for channel in [c for c in self.calls if c not in channels]:
            self.on_event(channel, {"type": "ChannelDestroyed", "cause": 0})

    def _line_free(self, trunk: Trunk) -> bool:
        if trunk.lines is None:
            return True
        return self.engine.trunk_calls(trunk.name) < trunk.lines

    def on_trunk(self, trunk: str) -> int:
        """Calls the dialer has up on `trunk`."""
        return sum(1 for c in self.calls.values() if c.trunk == trunk)

    # Events of its calls

    def owns(self, channel: str) -> bool:
        """A channel of an attempt, this engine's or a predecessor's."""
        return channel in self.calls or channel.startswith(f"{self.engine.app}-dialer-")

    def handles(self, channel: str) -> bool:
        return channel in self.calls

    def on_event(self, channel: str, event: dict[str, Any]) -> None:
        call = self.calls.get(channel)
        if call is None:
            return
        kind = event.get("type")
        state = (event.get("channel") or {}).get("state")
        status = event.get("dialstatus") if kind == "Dial" else None
        if (state == "Ringing" or status == "RINGING") and not call.rang:
            call.rang = True
            self._event(call, ringing_at=self.engine.clock())
        elif status in DIAL_CAUSES:
            # How the line refused: a Local or remote channel's own hangup cause may
            # not say (0, "Unknown"); Asterisk's dial status does.
            call.cause = DIAL_CAUSES[status]
            call.rang = call.rang or status == "NOANSWER"
        elif kind == "StasisStart":
            call.answered = True
            self._event(call, answered_at=self.engine.clock())
            self.engine.spawn(self._say(channel, call))
        elif kind == "PlaybackFinished":
            if (event.get("playback") or {}).get("id") == call.playback:
                self.engine.spawn(self._say(channel, call))
        elif kind == "ChannelDestroyed":
            del self.calls[channel]
            cause = event.get("cause")
            if not isinstance(cause, int) or cause == 0:
                cause = call.cause
            outcome = classify(call.answered, call.rang, cause)
            log.info("dialer task %s: %s (%s)", call.task, outcome, event.get("cause_txt"))
            self.engine.spawn(
                self._finish_attempt(
                    call.attempt,
                    outcome,
                    cause=cause,
                    cause_text=str(event.get("cause_txt") or "")[:64] or None,
                )
            )
            self._wake.set()  # a line is free

    async def _say(self, channel: str, call: DialerCall) -> None:
        """The text, `repeat` times; then the call is over."""
        if call.said >= call.repeat:
            await self.engine.ari.quiet("DELETE", f"channels/{channel}")
            return
        call.said += 1
        call.playback = f"{channel}-say{call.said}"
        try:
            media = await self.engine.say(call.text)
            await self.engine.ari.request(
                "POST", f"channels/{channel}/play", {"media": media, "playbackId": call.playback}
            )
        except AriError as exc:
            if exc.status == 404:  # they hung up meanwhile: ChannelDestroyed files it
                return
            log.error("dialer task %s: the text could not be played: %s", call.task, exc)
            await self.engine.ari.quiet("DELETE", f"channels/{channel}")
        except Exception:  # TTS failed: the citizen must not be left in silence
            log.exception("dialer task %s: the text could not be played", call.task)
            await self.engine.ari.quiet("DELETE", f"channels/{channel}")

    def _event(self, call: DialerCall, **moments: Any) -> None:
        if self.store is not None:
            self.engine.spawn(asyncio.to_thread(self.store.attempt_event, call.attempt, **moments))

    async def _finish_attempt(
        self, attempt: int, outcome: str, at: datetime | None = None, **details: Any
    ) -> None:
        assert self.store is not None
        at = at or self.engine.clock()
        try:
            await asyncio.to_thread(
                self.store.finish, attempt, outcome, at, self.settings, **details
            )
        except Exception:  # the lease runs out and the attempt counts as lost: nothing lost
            log.exception("dialer attempt %s: outcome %s not stored", attempt, outcome)
