"""One call on Asterisk: ARI events in, the core's decisions, ARI requests out.

Events of the call are queued and handled one at a time, in order; calls do not
wait for each other. Whatever goes wrong inside a call, its channel is hung up
rather than left in the application (wazo-calld's rule), and the call log entry
is closed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ast_pbx.ari import AriClient, AriError
from ast_pbx.config.model import Prompt, Queue
from ast_pbx.core.call import Call, Phase
from ast_pbx.core.steps import (
    Action,
    DialPhone,
    DialTrunk,
    EnterQueue,
    Hangup,
    Lookup,
    Play,
    StartTimer,
    StopPlayback,
)
from ast_pbx.engine.callstate import DIALING, MENU, QUEUE, STATE_VARIABLE, Saved
from ast_pbx.engine.carrying import snapshot
from ast_pbx.engine.conversation import Conversation
from ast_pbx.engine.hold import Hold, greeting_text, position_text
from ast_pbx.engine.legs import Leg, app_args, parse
from ast_pbx.engine.ports import CONNECTED, PEER_UP, SEND_AWAY
from ast_pbx.engine.presence import bind_code, phone_of_channel
from ast_pbx.engine.version import ConfigVersion

if TYPE_CHECKING:
    from ast_pbx.engine.ports import CallsHost

log = logging.getLogger("astpbx.call")

# Internal events: timers, directory answers, the peer of a dial.
TIMER, LOOKUP = "astpbx.timer", "astpbx.lookup"
RECEIVED = "astpbx.received"  # perf_counter() when the event arrived
GONE = frozenset({"StasisEnd", "ChannelDestroyed", "ChannelHangupRequest"})
DIAL_TIMEOUT = 30


class CallSession:
    def __init__(
        self,
        engine: CallsHost,
        version: ConfigVersion,
        channel: dict[str, Any],
        args: list[str],
        *,
        calls: tuple[str, str] | None = None,
    ) -> None:
        """`calls`: (caller, number) of a call the engine places for a phone itself
        (a callback: the operator's phone answered and now calls the citizen)."""
        self.engine = engine
        self.version = version  # the config this call started on: it keeps it to the end
        self.id = str(channel["id"])
        caller = (channel.get("caller") or {}).get("number") or None
        called = str((channel.get("dialplan") or {}).get("exten") or "")
        self.placed = calls is not None
        if calls is not None:
            caller, called = calls
        parsed = parse(args)
        trunk = (
            version.config.trunk_by_name.get(parsed.value()) if parsed.leg is Leg.TRUNK else None
        )
        self.trunk = trunk
        self.phone = phone_of_channel(channel)  # the phone calling, for `1*NNNNN`
        self.call = Call(version.config, called=called, caller=caller, tz=version.tz, trunk=trunk)
        self.events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.playback: str | None = None
        self.peer: str | None = None
        self.peer_number: str | None = None  # the phone, member or outside number of peer
        self.peer_trunk: str | None = None  # the trunk the peer was dialed through
        self.conversation: Conversation | None = None
        self.queue_answered = False  # for the queue statistics: a talk to end
        self.transfers: list[str] = []  # numbers the call was transferred to
        self.started_at = engine.clock()
        self._playbacks = 0  # a successor numbers on: ids stay unique
        self.answered_at: datetime | None = None
        self.channel_gone = False  # Asterisk said the caller's channel is gone
        self.hold: Hold | None = None  # the queue's playlist while waiting
        self.dialed_phone: str | None = None
        self._timers: list[asyncio.TimerHandle] = []
        self.task: asyncio.Task[None] | None = None
        self.adopted: Saved | None = None  # what a predecessor engine wrote down
        self.queued_at: datetime | None = None  # entered the queue (at a predecessor's)
        self.rejoining = False  # back in the queue a predecessor had it waiting in
        self.restarted = False  # a predecessor took it but wrote no state: from the start
        self.external: frozenset[str] = frozenset()  # the conversation's outside parties
        self.recordings = 0  # recording parts started
        self._saved = ""  # the state last written on the channel
        self.handed_over = False  # the engine stops and leaves the call to the next
        self.held = False  # on music on hold, with a deadline, until the next engine

    @classmethod
    def adopt(
        cls, engine: CallsHost, version: ConfigVersion, channel: dict[str, Any], saved: Saved
    ) -> CallSession:
        """A call another engine had (a restart, a standby taking over), from the state
        it wrote on the channel: `start()` carries it on from there."""
        args = [Leg.TRUNK.value, saved.trunk] if saved.trunk else [Leg.INTERNAL.value]
        calls = (saved.caller or "", saved.called) if saved.placed else None
        session = cls(engine, version, channel, args, calls=calls)
        session.adopted = saved
        number = (saved.playback or "").rpartition("-p")[2]
        session._playbacks = int(number) + 1 if number.isdigit() else 1000
        session.started_at = datetime.fromtimestamp(saved.started or time.time(), UTC)
        return session

    def start(self) -> None:
        self.task = asyncio.create_task(self._run(), name=f"call {self.id}")

    def put(self, event: dict[str, Any]) -> None:
        self.events.put_nowait(event)

    @property
    def ari(self) -> AriClient:
        return self.engine.ari

    def _now(self) -> datetime:
        return self.engine.clock()

    @property
    def bridge(self) -> str | None:
        return self.conversation.bridge if self.conversation is not None else None

    @property
    def transferring(self) -> bool:
        return self.conversation is not None and self.conversation.transfer.active

    async def _run(self) -> None:
        try:
            await self._begin()
            while self.call.phase is not Phase.ENDED or self.peer is not None:
                event = await self.events.get()
                if self.conversation is not None:
                    await self._converse(event)
                    if self.conversation.ended:
                        break
                    continue
                queued = self.call.phase is Phase.QUEUED
                going_on = await self._handle(event)
                if queued and self.call.phase is not Phase.QUEUED:
                    # A handler moved the caller on, or the caller is gone.
                    outcome = "abandoned" if self.channel_gone else "moved"
                    await self.engine.queues.leave(self.id, outcome)
                    self.hold = None
                    self.queued_at = None
                if not going_on:
                    break
        except AriError as exc:
            if exc.status == 404:  # the channel is gone: the caller hung up meanwhile
                self.call.hangup(self._now())
            else:
                log.exception("call %s failed; hanging up", self.id)
                self.call.fail(self._now(), "engine error")
        except Exception:
            log.exception("call %s failed; hanging up", self.id)
            self.call.fail(self._now(), "engine error")
        finally:
            await self._leave()

    async def _leave(self) -> None:
        if not self.handed_over:
            await self._finish()
            return
        for timer in self._timers:  # the next engine carries the call on
            timer.cancel()

    async def _begin(self) -> None:
        if self.adopted is not None:
            await self._resume(self.adopted)
            return
        log.info("call %s from %s to %s", self.id, self.call.caller, self.call.called)
        self._log_start(once=self.restarted)
        if not self.placed:  # a channel the engine placed was answered to get here
            await self.ari.request("POST", f"channels/{self.id}/answer")
        self.answered_at = self._now()
        code = bind_code(self.call.called)
        if code is not None:
            await self._bind_phone(code)
            return
        await self._execute(self.call.start(self._now()))

    def _log_start(self, *, once: bool) -> None:
        """The call's log row; `once`: another engine may have written it already."""
        self.engine.record(
            "started",
            self.id,
            self.call.caller,
            self.call.called,
            at=self.started_at,
            trunk=self.trunk.name if self.trunk else None,
            external=bool(self.trunk and self.trunk.external),
            config_version=self.version.version,
            once=once,
        )

    async def _bind_phone(self, code: str) -> None:
        """`1*NNNNN` dialed: bind the calling phone to whoever got the code, say so."""
        login = await self.engine.presence.bind(code, self.phone) if self.phone else None
        if login is None:
            text, reason = "Код не найден или устарел.", f"bind code {code} unknown"
        else:
            name = next(
                (u.name for u in self.version.config.users if u.login == login and u.name), login
            )
            text, reason = f"Телефон {self.phone} закреплён за {name}.", f"phone bound to {login}"
        await self._play(Play("say", text))
        while (event := await self.events.get()).get("type") not in GONE:
            if event.get("type") == "PlaybackFinished":
                break
        self.call.fail(self._now(), reason)

    async def _handle(self, event: dict[str, Any]) -> bool:
        """Feed one event to the core; False when the call is over for us."""
        kind = event.get("type")
        now = self._now()
        if kind in GONE:
            return await self._gone(event)
        if kind == "ChannelDtmfReceived":
            actions = self.call.dtmf(str(event.get("digit", "")), now)
            if actions and RECEIVED in event:
                await self._do(actions[0])
                self.engine.key_latency.record(time.perf_counter() - event[RECEIVED])
                actions = actions[1:]
            await self._execute(actions)
        elif kind == "PlaybackFinished":
            if (event.get("playback") or {}).get("id") == self.playback:
                self.playback = None
                if self.hold is not None and self.call.phase is Phase.QUEUED:
                    await self._play_hold()
                else:
                    await self._execute(self.call.prompt_done(now))
        elif kind == TIMER:
            await self._execute(self.call.timer(int(event["token"]), now))
        elif kind == LOOKUP:
            await self._execute(self.call.lookup_done(event.get("answer"), now))
        elif kind == PEER_UP:
            await self._converse_with(str(event["peer"]))
        elif kind == CONNECTED:
            await self._connected(str(event["member"]), str(event["peer"]))
        elif kind == SEND_AWAY:
            self.call.fail(now, str(event.get("reason", "sent away")))
        return True

    async def _connected(self, member: str, peer: str) -> None:
        """A queue member answered: theirs is the call (the queue keeps no more of it)."""
        await self._stop_hold()
        self.peer, self.peer_number = peer, member
        self.engine.watch_peer(peer, self)
        await self._execute(self.call.connected(member, self._now()))
        self.queue_answered = True
        await self._converse_with(peer, phone=member)

    async def _converse_with(self, peer: str, phone: str | None = None) -> None:
        external = {self.id} if self.trunk is not None and self.trunk.external else set()
        dialed = self.version.config.trunk_by_name.get(self.peer_trunk or "")
        if dialed is not None and dialed.external:
            external.add(peer)
        phone = phone or self.dialed_phone  # a queue member, or the phone this call dialed
        phones = {peer: phone} if phone else {}
        self.external = frozenset(external)
        self.conversation = Conversation(self, (self.id, peer), phones, self.external)
        await self.conversation.start()
        await self.save()
        log.debug("call %s: bridged with %s", self.id, peer)

    async def _converse(self, event: dict[str, Any]) -> None:
        assert self.conversation is not None
        await self.conversation.on_event(event)
        channel = str((event.get("channel") or {}).get("id", ""))
        if event.get("type") in GONE and channel == self.id:
            self.channel_gone = True
        if self.conversation.ended:
            self.peer = None

    def transferred_to(self, target: str, phone: str | None) -> None:
        """The conversation's transfer completed: `target` talks to the caller now."""
        self.transfers.append(phone or "outside")
        self.peer_number = phone

    async def _gone(self, event: dict[str, Any]) -> bool:
        channel = str((event.get("channel") or {}).get("id", ""))
        if channel == self.peer:
            self.peer = None
            log.info("call %s: the called side hung up", self.id)
            await self.ari.quiet("DELETE", f"channels/{self.id}")
            return self.call.phase is not Phase.ENDED
        self.call.hangup(self._now())
        self.channel_gone = True
        if self.peer is not None:
            await self.ari.quiet("DELETE", f"channels/{self.peer}")
            self.peer = None
        return False

    async def _execute(self, actions: list[Action]) -> None:
        for action in actions:
            await self._do(action)
        await self.save()

    # What a successor needs (engine.callstate)

    async def save(self) -> None:
        """Write where the call is on its channel when that changed (a new menu, the
        queue, a conversation): one request per place, not per key."""
        saved = snapshot(self)
        text = saved.encode() if saved is not None else ""
        if not text or text == self._saved:
            return
        self._saved = text
        try:
            await self.ari.request(
                "POST", "asterisk/variable", {"variable": STATE_VARIABLE + self.id, "value": text}
            )
        except AriError as exc:
            log.warning("call %s: its state not written: %s", self.id, exc)

    async def _resume(self, saved: Saved) -> None:
        """Carry on the call from `saved`: a menu or queue starts over there (the queue
        keeps the arrival time), a ringing phone rings on, a conversation goes on."""
        log.info("call %s adopted: %s %s", self.id, saved.place, saved.node or saved.peer)
        self._saved = saved.encode()
        self.answered_at = _moment(saved.answered)
        self.call.visits = list(saved.visits)
        self.transfers = list(saved.transfers)
        self.queue_answered = saved.queue_answered
        self.recordings = saved.recordings
        self._log_start(once=True)
        if saved.playback is not None:  # Asterisk would play ours after it
            await self.ari.quiet("DELETE", f"playbacks/{saved.playback}")
        if saved.held:
            # What an engine stopping on SIGTERM left: music on hold and a deadline.
            # Only then: Asterisk runs both after what the channel plays now, and the
            # requests of the call would wait behind them.
            await self.ari.quiet("DELETE", f"channels/{self.id}/moh")
            await self.ari.quiet(
                "POST",
                f"channels/{self.id}/variable",
                {"variable": "TIMEOUT(absolute)", "value": "0"},
            )
        if saved.place in (MENU, QUEUE) and saved.node:
            self.queued_at = _moment(saved.queued)
            self.rejoining = saved.place == QUEUE
            waited = (self._now() - self.queued_at).total_seconds() if self.queued_at else 0.0
            await self._execute(
                self.call.resume(saved.node, saved.input, self._now(), waited=waited)
            )
            return
        self.call.resume_ended(saved.ends)
        self.peer, self.peer_number = saved.peer, saved.peer_number
        self.peer_trunk, self.dialed_phone = saved.peer_trunk, saved.dialed_phone
        if saved.place == DIALING and self.peer is not None:
            self.engine.watch_peer(self.peer, self)
            return
        self.external = frozenset(saved.external)
        self.conversation = Conversation.adopt(self, saved)
        await self.conversation.resume(saved)

    async def _do(self, action: Action) -> None:
        handlers: dict[type[Action], Callable[[Any], Awaitable[None]]] = {
            Play: self._play,
            StopPlayback: self._stop_playback,
            StartTimer: self._start_timer,
            Lookup: self._lookup,
            EnterQueue: self._enter_queue,
            DialPhone: self._dial_phone,
            DialTrunk: self._dial_trunk,
            Hangup: self._hangup,
        }
        await handlers[type(action)](action)

    async def _play(self, action: Play) -> None:
        if self.hold is not None and self.call.phase is not Phase.QUEUED:
            await self._stop_hold()  # a handler moved the caller on: the music stops
        media = await self.engine.media(self.version, action)
        self._playbacks += 1
        self.playback = f"{self.id}-p{self._playbacks}"
        await self.ari.request(
            "POST", f"channels/{self.id}/play", {"media": media, "playbackId": self.playback}
        )

    async def _stop_playback(self, action: StopPlayback) -> None:
        if self.playback is not None:
            playback, self.playback = self.playback, None
            await self.ari.quiet("DELETE", f"playbacks/{playback}")

    async def _start_timer(self, action: StartTimer) -> None:
        loop = asyncio.get_running_loop()
        event = {"type": TIMER, "token": action.token}
        self._timers.append(loop.call_later(action.seconds, self.put, event))

    async def _lookup(self, action: Lookup) -> None:
        async def ask() -> None:
            try:
                answer = await self.engine.lookup(
                    self.version, action.scenario, action.key, self.id
                )
            except Exception:  # a directory that fails answers "nothing found"
                log.exception("call %s: directory lookup %s failed", self.id, action.scenario)
                answer = None
            self.put({"type": LOOKUP, "answer": answer})

        self.engine.spawn(ask())

    async def _enter_queue(self, action: EnterQueue) -> None:
        queue = self.version.config.targets[action.queue]
        assert isinstance(queue, Queue)
        self.queued_at = self.queued_at or self._now()
        await self.engine.queues.enter(self, queue)
        await self.save()  # before the hold music, which may take a TTS synthesis
        playlist = self.version.config.playlist_by_id.get(queue.playlist or "")
        if playlist is None or not playlist.items:
            await self.ari.request("POST", f"channels/{self.id}/ring")  # the ringing tone
            return
        self.hold = Hold(playlist)
        await self._play_hold()

    async def _play_hold(self) -> None:
        """The next item of the hold playlist; an item with nothing to say is skipped."""
        assert self.hold is not None
        for _ in self.hold.playlist.items:
            text = await self.hold_item(self.hold.next())
            if text is not None:
                await self._play(text)
                # Each item is a playback of its own: a successor must know which to
                # stop, or what it plays next would wait behind the whole song.
                await self.save()
                return

    async def hold_item(self, item: Prompt) -> Play | None:
        """What a playlist item says to this caller now; None when nothing."""
        if item.kind != "scenario":
            return Play(item.kind, item.value)
        if item.value == "queue_position":
            position = self.engine.queues.position(self.id)
            return None if position is None else Play("say", position_text(position))
        name = await self.engine.lookup(self.version, "caller_name", self.call.caller or "")
        return Play("say", greeting_text(name)) if isinstance(name, str) and name else None

    async def _stop_hold(self) -> None:
        self.hold = None
        await self._stop_playback(StopPlayback())

    async def _dial_phone(self, action: DialPhone) -> None:
        self.peer_number = self.dialed_phone = action.phone
        self.engine.events.publish(
            "ringing", phone=action.phone, caller=self.call.caller, call=self.id
        )
        await self._dial(self.engine.phone_endpoint(self.version, action.phone))

    async def _dial_trunk(self, action: DialTrunk) -> None:
        trunk = self.version.config.trunk_by_name[action.trunk]
        self.peer_number, self.peer_trunk = action.number, trunk.name
        await self._dial(self.engine.trunk_endpoint(trunk, action.number))

    async def _dial(self, endpoint: str) -> None:
        params = {
            "endpoint": endpoint,
            "app": self.engine.app,
            "appArgs": app_args(Leg.DIALED, self.id),
            "timeout": DIAL_TIMEOUT,
            "callerId": self.call.caller or "",
            # The dialed side takes the caller's formats: no transcoding in the bridge.
            "originator": self.id,
            # Ours, not Asterisk's: a successor tells the call's peer from a caller.
            "channelId": f"{self.id}-d{self._playbacks}",
        }
        try:
            peer = await self.ari.request("POST", "channels", params)
        except AriError as exc:
            log.warning("call %s: dialing %s failed: %s", self.id, endpoint, exc)
            await self.ari.quiet("DELETE", f"channels/{self.id}")
            return
        self.peer = str(peer["id"])
        self.engine.watch_peer(self.peer, self)
        await self.ari.request("POST", f"channels/{self.id}/ring")
        await self.save()

    async def _hangup(self, action: Hangup) -> None:
        log.debug("call %s: hang up (%s)", self.id, action.reason)
        await self.ari.quiet("DELETE", f"channels/{self.id}")

    async def _finish(self) -> None:
        for timer in self._timers:
            timer.cancel()
        if self.call.phase is not Phase.ENDED:
            self.call.hangup(self._now())
        try:
            await self.engine.queues.leave(self.id, "abandoned")
            if self.conversation is not None:
                await self.conversation.end()
            if not self.channel_gone:
                await self.ari.quiet("DELETE", f"channels/{self.id}")
        except Exception:  # whatever ARI does now, the call is over for us: log it, forget it
            log.exception("call %s: hanging up failed", self.id)
        finally:
            self._close()

    def _close(self) -> None:
        """The call leaves the engine and its log entry is closed, whatever failed."""
        self.engine.forget_end(self.id)
        self.engine.queues.hung_up(self.id)
        self.engine.monitor.call_ended(self.id)
        if self.queue_answered:
            talk_ended = self.conversation.talk_ended_at if self.conversation else None
            self.engine.record("queues.talk_ended", self.id, talk_ended or self._now())
        ended = self.call.steps[-1] if self.call.steps else None
        reason = getattr(ended, "reason", None) or ("adopted" if self.adopted else None)
        if self.transfers:
            reason = f"{reason}; transferred to {', '.join(self.transfers)}"
        self.engine.record(
            "ended",
            self.id,
            at=self._now(),
            outcome=self.call.ends or "hangup",
            reason=reason,
            path=list(self.call.visits),
            answered_at=self.answered_at,
        )
        self.engine.forget(self)
        log.info("call %s ended: %s (%s)", self.id, self.call.ends, reason)


def _moment(epoch: float | None) -> datetime | None:
    return datetime.fromtimestamp(epoch, UTC) if epoch else None
