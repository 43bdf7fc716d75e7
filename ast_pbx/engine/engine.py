"""The engine: routes ARI events to calls, owns what calls share, reloads the config."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Any

import watchfiles

from ast_pbx.ari import AriClient, AriError
from ast_pbx.config.model import Trunk
from ast_pbx.core.scenarios import Answer
from ast_pbx.core.steps import Play
from ast_pbx.engine.adoption import Adoption
from ast_pbx.engine.callbacks import Callbacks
from ast_pbx.engine.callstate import END_VARIABLE, STATE_VARIABLE, parse_end
from ast_pbx.engine.dialer import Dialer
from ast_pbx.engine.directory import SqlDirectory
from ast_pbx.engine.events import Bus
from ast_pbx.engine.legs import AppArgs, Leg, parse
from ast_pbx.engine.metrics import Latencies
from ast_pbx.engine.monitor import Monitor
from ast_pbx.engine.ports import PEER_UP
from ast_pbx.engine.presence import Presence
from ast_pbx.engine.queues import Queues
from ast_pbx.engine.recordings import Recorder
from ast_pbx.engine.session import RECEIVED, CallSession
from ast_pbx.engine.version import ConfigVersion

log = logging.getLogger("astpbx.engine")

Clock = Callable[[], datetime]

# The events of the call application that the engine acts on. Asterisk is asked to send
# only these: the rest cost it serialising and the engine parsing, for nothing (a SIP
# call alone brought five ChannelVarset of RTP statistics at its hang-up).
EVENTS = (
    "StasisStart",
    "StasisEnd",
    "ChannelDestroyed",
    "ChannelHangupRequest",
    "ChannelDtmfReceived",
    "Dial",
    "PlaybackFinished",
    "RecordingFinished",
    "RecordingFailed",
    # Not an event, but Asterisk filters the answers to REST requests on the socket too.
    "RESTResponse",
)


class Engine:
    def __init__(
        self,
        config_path: str,
        version: ConfigVersion,
        *,
        clock: Clock = lambda: datetime.now(UTC),
        prepare: Any = None,
        call_log: Any = None,
        queue_stats: Any = None,
        operators: Any = None,
        dialer: Any = None,
        callbacks: Any = None,
        tts: Any = None,
    ) -> None:
        self.config_path = config_path
        self.current = version
        self.clock = clock
        self.call_log = call_log  # ast_pbx.storage.calls.CallLog, or None to keep no log
        # Where `record("queues.…")` writes: ast_pbx.storage.queues.QueueStats, or None.
        self.queue_stats = queue_stats
        self.callbacks = callbacks  # ast_pbx.storage.callbacks.CallbackStore, or None
        self.tts = tts  # async (text) -> media URI
        self._prepare = prepare  # blocking (path) -> ConfigVersion, for reloads
        system = version.config.system
        self.app = system.ari.app
        self.endpoints_app = f"{self.app}-endpoints"  # phones' states only: see Presence
        self.ari = AriClient(
            system.ari.url,
            system.ari.username,
            system.ari.password,
            self.app,
            on_event=self.on_event,
            on_connected=self.resync,
            also=(self.endpoints_app,),
        )
        self.directory = SqlDirectory(version.config.directory)
        self.sessions: dict[str, CallSession] = {}
        self.peers: dict[str, CallSession] = {}
        self.queues = Queues(self)
        self.presence = Presence(self, operators)  # operators: storage.operators.OperatorStore
        self.recorder = Recorder(self)
        self.monitor = Monitor(self)
        self.dialer = Dialer(self, dialer)  # dialer: storage.dialer.DialerStore
        self.callback_calls = Callbacks(self)
        self.adoption = Adoption(self)
        self.events = Bus()  # live events for the web page
        self.key_latency = Latencies()  # a key's arrival → the engine's next ARI request
        self._tasks: set[asyncio.Task[Any]] = set()
        self._writes: asyncio.Queue[tuple[str, tuple[Any, ...], dict[str, Any]]] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None
        # How `run` leaves the calls: "end" them, "hand_over" (music on hold, a
        # deadline) or "abandon" (not one request: another engine leads already).
        self.stop_mode = "end"

    # Running

    async def run(self, stop: asyncio.Event, *, hand_over: bool = False) -> None:
        """Handle calls until `stop`; then end them, or with `hand_over` leave them up
        in Asterisk for the next engine to adopt (a SIGTERM: restart, upgrade)."""
        await self._load_today()
        connection = asyncio.create_task(self.ari.run(), name="ari")
        watcher = asyncio.create_task(self._watch_config(stop), name="config watcher")
        dialing = asyncio.create_task(self.dialer.run(stop), name="dialer")
        done, _ = await asyncio.wait(
            [asyncio.ensure_future(stop.wait()), connection, watcher],
            return_when=asyncio.FIRST_COMPLETED,
        )
        for task in done & {connection, watcher}:  # must run as long as the engine does
            if not stop.is_set():
                log.error("%s stopped: %r; the engine stops", task.get_name(), task.exception())
                stop.set()
        await asyncio.gather(dialing, return_exceptions=True)
        if self.stop_mode == "end" and hand_over:
            self.stop_mode = "hand_over"
        if self.stop_mode == "abandon":
            await self._leave()
        elif self.stop_mode == "hand_over":
            await self._hand_over()
        else:
            # End the calls while ARI can still hang them up, then close the connection.
            for session in list(self.sessions.values()):
                session.put({"type": "StasisEnd", "channel": {"id": session.id}})
            await asyncio.gather(
                *(s.task for s in self.sessions.values() if s.task), return_exceptions=True
            )
        await self.ari.close()
        watcher.cancel()
        await asyncio.gather(connection, watcher, return_exceptions=True)
        await self._writes.join()  # every call's end is in the log before we stop
        if self._writer is not None:
            self._writer.cancel()
        self.directory.close()
        log.info("metrics key_to_action %s", json.dumps(self.key_latency.summary()))

    async def _load_today(self) -> None:
        """Who talked to whom today, for `sticky` queues, survives a restart."""
        if self.queue_stats is None:
            return
        now = self.clock()
        local = now.astimezone(self.current.config.system.zone())
        midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
        operators = await asyncio.to_thread(self.queue_stats.operators_since, midnight)
        self.queues.load_today(operators, now)

    def spawn(self, coroutine: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            log.error("background task failed: %r", exc, exc_info=exc)

    async def _leave(self) -> None:
        self.ari.stop_requests()
        await self._let_go(list(self.sessions.values()))

    async def _let_go(self, sessions: list[CallSession]) -> None:
        """The sessions' tasks end without ending their calls: another engine's now."""
        for session in sessions:
            session.handed_over = True
            if session.task is not None:
                session.task.cancel()
        await asyncio.gather(*(s.task for s in sessions if s.task), return_exceptions=True)

    async def _hand_over(self) -> None:
        """Stop without touching the calls: a caller in a menu or a queue hears music on
        hold until the next engine adopts them, for `handover_grace` seconds at most
        (then the dialplan's `T`: unavailable_sound, hang-up); conversations go on.
        Members ringing for a queue are hung up: the next engine rings afresh."""
        grace = str(int(self.current.config.system.handover_grace))
        for channel in list(self.queues.ringing):
            await self.ari.quiet("DELETE", f"channels/{channel}")
        deadline = {"variable": "TIMEOUT(absolute)", "value": grace}
        sessions = list(self.sessions.values())
        await self._let_go(sessions)
        for session in sessions:
            if session.conversation is not None or session.peer is not None:
                continue  # talking, or a phone ringing for them: not in silence
            if session.playback is not None:
                await self.ari.quiet("DELETE", f"playbacks/{session.playback}")
            await self.ari.quiet("POST", f"channels/{session.id}/moh")
            await self.ari.quiet("POST", f"channels/{session.id}/variable", deadline)
            session.playback, session.held = None, True
            await session.save()  # the next engine clears the hold and the deadline
        for channel in list(self.dialer.calls):  # a citizen is not kept on the line for ever
            await self.ari.quiet("POST", f"channels/{channel}/variable", deadline)
        log.info("engine stopped; %d calls left for the next engine", len(self.sessions))

    # Events

    def on_event(self, event: dict[str, Any]) -> None:
        event[RECEIVED] = time.perf_counter()
        kind = event.get("type")
        if kind != "EndpointStateChange" and event.get("application", self.app) != self.app:
            return  # a copy for the endpoints application: its channels are ours already
        channel = event.get("channel")
        if not isinstance(channel, dict):
            channel = {}
        channel_id = str(channel.get("id", "")) or _other_channel(event)
        if kind == "StasisStart":
            self._stasis_start(event, channel)
            return
        if self._not_a_call(str(kind), channel_id, event):
            return
        session = self.sessions.get(channel_id) or self.peers.get(channel_id)
        if session is not None:
            session.put(event)

    def _not_a_call(self, kind: str, channel_id: str, event: dict[str, Any]) -> bool:
        """Events of what is not a caller's call (members ringing, a callback ringing the
        operator, listeners, the dialer's calls; phones' states, recordings): True if one
        of those took the event."""
        gone = kind in ("ChannelDestroyed", "StasisEnd")
        if gone and self.queues.handles(channel_id):
            self.queues.gone(channel_id)
        elif kind == "ChannelDestroyed" and self.callback_calls.handles(channel_id):
            self.callback_calls.gone(channel_id)
        elif gone and self.monitor.handles(channel_id):
            self.monitor.channel_gone(channel_id)
        elif kind == "EndpointStateChange":
            if self.presence.endpoint_changed(event) is not None:
                self.spawn(self.queues.dispatch_all())
        elif self.recorder.handles(event):
            self.recorder.on_event(event)
        elif self.recorder.owns(channel_id):
            if gone:
                self.recorder.snoop_gone(channel_id)
        elif self.dialer.handles(channel_id):
            self.dialer.on_event(channel_id, event)
        else:
            return False
        return True

    def _stasis_start(self, event: dict[str, Any], channel: dict[str, Any]) -> None:
        args = [str(a) for a in event.get("args") or []]
        channel_id = str(channel.get("id", ""))
        leg = parse(args)
        if self._leg_started(leg, event, channel) or self.monitor.stasis_start(leg, channel_id):
            return
        if channel_id in self.sessions or not channel_id:
            return
        session = CallSession(self, self.current, channel, args)
        self.sessions[channel_id] = session
        session.start()
        self.events.publish("calls")

    def _leg_started(self, args: AppArgs, event: dict[str, Any], channel: dict[str, Any]) -> bool:
        """A channel the engine made for a call entered the app (its arguments say
        whose it is: a queue member, a recording's snoop, ...): True if it was one."""
        channel_id = str(channel.get("id", ""))
        handlers: dict[Leg, Callable[[], None]] = {
            Leg.QUEUED: lambda: self.queues.answered(channel_id),
            Leg.RECORDER: lambda: self.recorder.snoop_started(channel_id),
            Leg.CALLBACK: lambda: self.callback_calls.answered(channel),
            Leg.DIALER: lambda: self.dialer.on_event(channel_id, event),
            Leg.DIALED: lambda: self._peer_up(channel_id, args.value()),
        }
        handler = handlers.get(args.leg) if args.leg is not None else None
        if handler is None:
            return False
        handler()
        return True

    def _peer_up(self, channel: str, owner: str) -> None:
        parent = self.peers.get(channel) or self.sessions.get(owner)
        if parent is not None:
            parent.put({"type": PEER_UP, "peer": channel})

    async def members_changed(self) -> None:
        await self.queues.dispatch_all()

    def watch_peer(self, peer: str, session: CallSession) -> None:
        self.peers[peer] = session

    def forget_peer(self, peer: str) -> None:
        self.peers.pop(peer, None)

    def forget(self, session: CallSession) -> None:
        self.sessions.pop(session.id, None)
        self.events.publish("calls")
        if session.peer is not None:
            self.peers.pop(session.peer, None)
        for peer, owner in list(self.peers.items()):
            if owner is session:
                del self.peers[peer]

    async def resync(self) -> None:
        """After a (re)connection: end the calls whose channels are gone, hang up the
        channels left in the application that no call owns (a restarted engine cannot
        know where they were)."""
        try:
            await self.ari.request(
                "PUT",
                f"applications/{self.app}/eventFilter",
                body={"allowed": [{"type": t} for t in EVENTS], "disallowed": []},
            )
        except AriError as exc:  # an Asterisk without filters sends all: more work, no harm
            log.warning("cannot filter the events of %s: %s", self.app, exc)
        try:
            application = await self.ari.request("GET", f"applications/{self.app}")
        except AriError as exc:
            log.warning("cannot list the channels of %s: %s", self.app, exc)
            return
        await self.presence.resync()
        ids = application.get("channel_ids", []) if isinstance(application, dict) else []
        present = {str(c).removeprefix("channel:") for c in ids}
        for channel_id, session in list(self.sessions.items()):
            if channel_id not in present:
                session.put({"type": "StasisEnd", "channel": {"id": channel_id}})
        try:
            listed = await self.ari.request("GET", "channels")
        except AriError as exc:
            log.warning("cannot list the channels of Asterisk: %s", exc)
            listed = []
        listed = listed if isinstance(listed, list) else []
        channels = {str(c.get("id")): c for c in listed if isinstance(c, dict)}
        self.dialer.forget_gone(set(channels))
        adopted = await self.adoption.adopt(present, channels)
        ours = set(self.sessions) | set(self.peers) | set(self.queues.ringing)
        ours |= {c for x in self.monitor.listening.values() for c in x.channels}
        ours |= set(self.dialer.calls) | set(self.callback_calls.ringing)
        ours |= set(self.recorder.snoops)
        for channel_id in present - ours:
            log.info("hanging up channel %s left in %s without a call", channel_id, self.app)
            await self.ari.quiet("DELETE", f"channels/{channel_id}")
        await self.adoption.close_left(present | set(channels), adopted)
        log.info("in charge of %d calls", len(self.sessions))

    async def ended_while_away(self, channel: str) -> tuple[datetime, int | None] | None:
        """When and how `channel` ended, as the dialplan noted it (astpbx-ended); the
        note is removed. None when Asterisk has none (it restarted since)."""
        variable = END_VARIABLE + channel
        try:
            found = await self.ari.request("GET", "asterisk/variable", {"variable": variable})
        except AriError:
            return None
        end = parse_end(str(found.get("value") or "")) if isinstance(found, dict) else None
        if end is None:
            return None
        await self.ari.quiet("POST", "asterisk/variable", {"variable": variable})
        await self.ari.quiet("POST", "asterisk/variable", {"variable": STATE_VARIABLE + channel})
        return datetime.fromtimestamp(end[0], UTC), end[1]

    def forget_end(self, channel: str) -> None:
        """The end of `channel` is logged: drop Asterisk's notes of it (its end, its
        state), a little later: the dialplan writes the end as the channel goes, maybe
        after this engine heard."""
        asyncio.get_running_loop().call_later(2.0, lambda: self.spawn(self._forget(channel)))

    async def _forget(self, channel: str) -> None:
        for variable in (END_VARIABLE + channel, STATE_VARIABLE + channel):
            await self.ari.quiet("POST", "asterisk/variable", {"variable": variable})

    # What calls share

    async def media(self, version: ConfigVersion, play: Play) -> str:
        if play.prompt == "audio":
            path = version.audio.get(play.value)
            if path is None:
                raise AriError(f"audio {play.value} was not converted")
            return "sound:" + str(path.with_suffix(""))
        return await self.say(play.value)

    async def lookup(
        self, version: ConfigVersion, scenario: str, key: str, call: str | None = None
    ) -> Answer:
        if scenario == "callback_request":
            return await self._request_callback(key, call)
        return await self.directory.lookup_async(scenario, key)

    async def _request_callback(self, caller: str, call: str | None) -> bool:
        """Store a citizen's callback request; False (they hear so) when it cannot be."""
        if self.callbacks is None or not caller:
            return False
        await asyncio.to_thread(self.callbacks.add, caller, self.clock(), call_id=call)
        log.info("callback requested by %s", caller)
        self.events.publish("callbacks")
        return True

    async def say(self, text: str) -> str:
        """The media URI of `text` spoken by TTS."""
        if self.tts is None:
            raise AriError("no TTS engine")
        media: str = await self.tts(text)
        return media

    def trunk_calls(self, trunk: str) -> int:
        """Calls up on `trunk` now: inbound, dialed out, and the dialer's."""
        inbound = sum(1 for s in self.sessions.values() if s.trunk and s.trunk.name == trunk)
        outbound = sum(1 for s in self.sessions.values() if s.peer_trunk == trunk)
        return inbound + outbound + self.dialer.on_trunk(trunk)

    def phone_endpoint(self, version: ConfigVersion, number: str) -> str:
        return version.config.system.phone_dial.replace("{number}", number)

    def trunk_endpoint(self, trunk: Trunk, number: str) -> str:
        if trunk.endpoint:
            technology, _, name = trunk.endpoint.partition("/")
            return f"{technology}/{number}@{name}"
        return f"PJSIP/{number}@{trunk.name}"

    def record(self, what: str, *args: Any, **kwargs: Any) -> None:
        """Queue a write: `ended` for the call log, `queues.entered` for the queue
        statistics. Calls never wait for the database: one writer applies the writes in
        order, in a thread; a failure is only logged."""
        if self._store(what) is None:
            return
        self._writes.put_nowait((what, args, kwargs))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_log(), name="call log writer")

    async def _write_log(self) -> None:
        while True:
            batch = [await self._writes.get()]
            while not self._writes.empty():  # what queued meanwhile goes in the same trip
                batch.append(self._writes.get_nowait())
            try:
                await asyncio.to_thread(self._apply_writes, batch)
            finally:
                for _ in batch:
                    self._writes.task_done()

    def _apply_writes(self, batch: list[tuple[str, tuple[Any, ...], dict[str, Any]]]) -> None:
        for what, args, kwargs in batch:
            try:
                getattr(self._store(what), what.rpartition(".")[2])(*args, **kwargs)
            except Exception:
                log.exception("call log: %s failed", what)

    def _store(self, what: str) -> Any:
        return self.queue_stats if what.startswith("queues.") else self.call_log

    async def mark(self, call: str, marked: bool = True) -> bool:
        """Mark ("отметка") a call by its channel id, active or logged."""
        if self.call_log is None:
            return False
        found: bool = await asyncio.to_thread(self.call_log.mark_channel, call, marked)
        return found

    # Reloading

    async def _watch_config(self, stop: asyncio.Event) -> None:
        if self._prepare is None:  # nothing to reload with: nothing to watch
            await stop.wait()
            return
        async for _ in watchfiles.awatch(self.config_path, stop_event=stop, debounce=300):
            await self.reload()

    async def reload(self) -> bool:
        """Swap in the config on disk if it is valid; calls already up keep theirs."""
        try:
            version = await asyncio.to_thread(self._prepare, self.config_path)
        except Exception as exc:
            log.error("config %s not reloaded: %s", self.config_path, exc)
            for problem in getattr(exc, "problems", ()):
                log.error("  %s", problem)
            return False
        if version.version != self.current.version:
            if version.config.directory != self.current.config.directory:
                # A new URL or new queries: lookups from now on use them. The old pool is
                # closed once lookups under way are done (a thread may hold it now).
                old, self.directory = self.directory, SqlDirectory(version.config.directory)
                asyncio.get_running_loop().call_later(30, old.close)
            self.current = version
            log.info("config version %s loaded; new calls use it", version.version)
        return True


def _other_channel(event: dict[str, Any]) -> str:
    """The channel of an event about something else: a playback's, a Dial's peer."""
    peer = event.get("peer")
    if event.get("type") == "Dial" and isinstance(peer, dict):
        return str(peer.get("id", ""))
    playback = event.get("playback")
    target = str(playback.get("target_uri", "")) if isinstance(playback, dict) else ""
    return target.removeprefix("channel:") if target.startswith("channel:") else ""
