"""A conversation on Asterisk: two parties in a bridge, recorded, with the `*2` transfer.

The call's session hands its events here once the caller is connected (a phone or
trunk answered, or a queue member). `core.transfer` decides the transfer; this module
carries it out: the transferor leaves the bridge and hears a dial tone while keying,
the transferee hears `transfer.playlist`, the target is dialed into the app, the
consultation gets a bridge of its own, and completing moves the target into the
conversation's bridge. The recording follows the caller (`engine.recordings`), so it
covers the whole call, the transfer included.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ast_pbx.ari import AriClient, AriError
from ast_pbx.config.model import Phone
from ast_pbx.core.routing import resolve
from ast_pbx.core.transfer import (
    Abandon,
    Complete,
    Consult,
    DialTarget,
    DropTarget,
    Hold,
    KeyTimer,
    Resume,
    Transfer,
    TransferAction,
)
from ast_pbx.engine.callstate import Saved, Transferring
from ast_pbx.engine.hold import Hold as Playlist
from ast_pbx.engine.legs import Leg, app_args
from ast_pbx.engine.ports import PEER_UP

if TYPE_CHECKING:
    from ast_pbx.engine.session import CallSession

log = logging.getLogger("astpbx.conversation")

KEY_TIMER = "astpbx.transfer_timer"
GONE = frozenset({"StasisEnd", "ChannelDestroyed"})
TARGET_RING = 30  # seconds a transfer target rings


class Conversation:
    def __init__(
        self,
        session: CallSession,
        parties: tuple[str, str],
        phones: dict[str, str],
        external: frozenset[str],
    ) -> None:
        self.session = session
        self.parties = list(parties)
        self.phones = dict(phones)  # channel → the phone it is (members, dialed phones)
        self.transfer = Transfer(parties, external)
        self.bridge: str | None = None
        self.consulting: str | None = None  # the transferor's bridge with the target
        self.target: str | None = None
        self.target_phone: str | None = None
        self.transferor: str | None = None  # who started the transfer going on
        self.playback: str | None = None  # what the held side hears
        self.tone: str | None = None  # what the transferor hears
        self.playlist: Playlist | None = None
        self._count = 0
        self.ended = False
        self.talk_ended_at: datetime | None = None  # when a side first hung up

    @property
    def ari(self) -> AriClient:
        return self.session.engine.ari

    @property
    def transferee(self) -> str | None:
        transferor = self.transfer.transferor
        return next((p for p in self.parties if p != transferor), None) if transferor else None

    async def start(self) -> None:
        engine = self.session.engine
        bridge = await self.ari.request("POST", "bridges", {"type": "mixing"})
        self.bridge = str(bridge["id"])
        await self.ari.request(
            "POST", f"bridges/{self.bridge}/addChannel", {"channel": ",".join(self.parties)}
        )
        caller = self.session.call.caller
        for phone in self.phones.values():
            engine.queues.occupy(phone, self.session.id)
            engine.events.publish("answered", phone=phone, caller=caller, call=self.session.id)
        engine.events.publish("calls")
        self.session.recordings = 1
        await engine.recorder.start(self.session.id, 1)

    @classmethod
    def adopt(cls, session: CallSession, saved: Saved) -> Conversation:
        """The conversation another engine had bridged, as it wrote it down."""
        parties = [p for p in saved.parties if p]
        conversation = cls(
            session, (parties[0], parties[-1]), saved.phones, frozenset(saved.external)
        )
        conversation.parties = parties
        conversation.bridge = saved.bridge
        return conversation

    async def resume(self, saved: Saved) -> None:
        """Take over the bridge as it is: the parties talk on, the recording goes on
        (its snoop is the recorder's again). A transfer under way falls back to the
        conversation: the target is hung up and the transferor rejoins the caller."""
        engine = self.session.engine
        for party in self.parties:
            if party != self.session.id:
                engine.watch_peer(party, self.session)
        for phone in self.phones.values():
            engine.queues.occupy(phone, self.session.id)
        if saved.recordings:
            engine.recorder.adopt(self.session.id, saved.recordings)
        transfer = saved.transfer
        if transfer is not None:
            log.info(
                "call %s: the transfer under way falls back to the conversation", self.session.id
            )
            for playback in transfer.playbacks:
                await self.ari.quiet("DELETE", f"playbacks/{playback}")
            if transfer.target is not None:
                await self.ari.quiet("DELETE", f"channels/{transfer.target}")
            if transfer.consulting is not None:
                await self.ari.quiet("DELETE", f"bridges/{transfer.consulting}")
            if transfer.transferor in self.parties:
                await self.ari.quiet(
                    "POST", f"bridges/{self.bridge}/addChannel", {"channel": transfer.transferor}
                )
            await self.session.save()
        engine.events.publish("calls")

    def transferring(self) -> Transferring | None:
        """The transfer under way, for a successor to undo; None when there is none."""
        if self.transferor is None:
            return None
        playbacks = [p for p in (self.playback, self.tone) if p]
        return Transferring(self.transferor, self.target, self.consulting, playbacks)

    async def on_event(self, event: dict[str, Any]) -> None:
        """One event of a party, the target or a timer; sets `ended` when it is over."""
        kind = event.get("type")
        channel = str((event.get("channel") or {}).get("id", ""))
        if kind == "ChannelDtmfReceived" and channel in self.parties:
            await self._do(self.transfer.dtmf(channel, str(event.get("digit", ""))))
        elif kind == KEY_TIMER:
            await self._do(self.transfer.key_timeout(int(event["token"])))
        elif kind == PEER_UP and str(event.get("peer")) == self.target:
            await self._do(self.transfer.target_answered())
        elif kind == "PlaybackFinished":
            if (event.get("playback") or {}).get("id") == self.playback:
                self.playback = None
                await self._play_playlist()
        elif kind in GONE or kind == "ChannelHangupRequest":
            await self._gone(channel)

    async def _gone(self, channel: str) -> None:
        if channel == self.target:
            self.target = None
            self.session.engine.forget_peer(channel)
            await self._do(self.transfer.target_gone())
        elif channel == self.transfer.transferor:
            self._drop_party(channel)
            await self._do(self.transfer.transferor_gone())
            if not self.transfer.active and len(self.parties) < 2:
                await self.end()
        elif channel in self.parties:
            self._drop_party(channel)
            await self.end()  # one side hung up: the conversation is over

    def _drop_party(self, channel: str) -> None:
        if self.talk_ended_at is None and not self.transfer.active:
            self.talk_ended_at = self.session.engine.clock()
        self.parties.remove(channel)
        phone = self.phones.pop(channel, None)
        if phone is not None:
            self.session.engine.queues.release(phone, self.session.id)

    async def end(self) -> None:
        """Hang up whoever is left and remove the bridges; the recording ends with the
        caller's channel."""
        if self.ended:
            return
        self.ended = True
        if self.talk_ended_at is None:
            self.talk_ended_at = self.session.engine.clock()
        for channel in [*self.parties, *([self.target] if self.target else [])]:
            await self.ari.quiet("DELETE", f"channels/{channel}")
        for phone in self.phones.values():
            self.session.engine.queues.release(phone, self.session.id)
        for bridge in (self.consulting, self.bridge):
            if bridge is not None:
                await self.ari.quiet("DELETE", f"bridges/{bridge}")

    # Carrying out the transfer

    async def _do(self, actions: list[TransferAction]) -> None:
        handlers: dict[type, Callable[[Any], Any]] = {
            Hold: self._hold,
            KeyTimer: self._key_timer,
            DialTarget: self._dial_target,
            Consult: self._consult,
            DropTarget: self._drop_target,
            Resume: self._resume,
            Complete: self._complete,
            Abandon: self._abandon,
        }
        for action in actions:
            await handlers[type(action)](action)

    async def _hold(self, action: Hold) -> None:
        log.info("call %s: %s starts a transfer", self.session.id, action.transferor)
        self.transferor = action.transferor
        await self.ari.request(
            "POST", f"bridges/{self.bridge}/removeChannel", {"channel": action.transferor}
        )
        await self._tone(action.transferor, "dial")
        playlist = self.session.version.config.transfer.playlist
        found = self.session.version.config.playlist_by_id.get(playlist or "")
        self.playlist = Playlist(found) if found is not None and found.items else None
        await self._play_playlist()
        await self.session.save()

    async def _play_playlist(self) -> None:
        """The next item for the held side: the playlist round and round, or ringing."""
        transferee = self.transferee
        if transferee is None or not self.transfer.active:
            return
        if self.playlist is None:
            self.playback = await self._play(transferee, "tone:ring", self.playback)
            await self.session.save()
            return
        for _ in self.playlist.playlist.items:
            item = await self.session.hold_item(self.playlist.next())
            if item is not None:
                media = await self.session.engine.media(self.session.version, item)
                self.playback = await self._play(transferee, media, self.playback)
                await self.session.save()  # a successor stops what plays now
                return

    async def _tone(self, channel: str, tone: str | None) -> None:
        """What the transferor hears: a dial tone while keying, ringing, or nothing."""
        if tone is not None:
            self.tone = await self._play(channel, f"tone:{tone}", self.tone)
        elif self.tone is not None:
            playback, self.tone = self.tone, None
            await self.ari.quiet("DELETE", f"playbacks/{playback}")

    async def _play(self, channel: str, media: str, replacing: str | None) -> str:
        if replacing is not None:
            await self.ari.quiet("DELETE", f"playbacks/{replacing}")
        self._count += 1
        playback = f"{self.session.id}-t{self._count}"
        await self.ari.quiet(
            "POST", f"channels/{channel}/play", {"media": media, "playbackId": playback}
        )
        return playback

    async def _silence(self) -> None:
        for playback in (self.playback, self.tone):
            if playback is not None:
                await self.ari.quiet("DELETE", f"playbacks/{playback}")
        self.playback = self.tone = None

    async def _key_timer(self, action: KeyTimer) -> None:
        if self.transfer.digits and self.tone is not None:  # the first key stops the tone
            tone, self.tone = self.tone, None
            await self.ari.quiet("DELETE", f"playbacks/{tone}")
        loop = asyncio.get_running_loop()
        loop.call_later(
            action.seconds, self.session.put, {"type": KEY_TIMER, "token": action.token}
        )

    async def _dial_target(self, action: DialTarget) -> None:
        endpoint = self._endpoint(action.number)
        transferor = self.transfer.transferor
        if endpoint is None or transferor is None:
            log.info(
                "call %s: transfer to %s: not a phone or trunk", self.session.id, action.number
            )
            await self._do(self.transfer.target_gone())
            return
        await self._tone(transferor, "ring")
        try:
            target = await self.ari.request(
                "POST",
                "channels",
                {
                    "endpoint": endpoint,
                    "app": self.session.engine.app,
                    "appArgs": app_args(Leg.DIALED, self.session.id),
                    "timeout": TARGET_RING,
                    "callerId": self.session.call.caller or "",
                    "originator": transferor,
                    "channelId": f"{self.session.id}-x{self._count}",
                },
            )
        except AriError as exc:
            log.warning("call %s: transfer to %s failed: %s", self.session.id, action.number, exc)
            await self._do(self.transfer.target_gone())
            return
        self.target = str(target["id"])
        self.session.engine.watch_peer(self.target, self.session)
        await self.session.save()
        log.info("call %s: transfer dials %s", self.session.id, action.number)

    def _endpoint(self, number: str) -> str | None:
        """How to dial a transfer target: phones and trunk numbers (rules apply)."""
        session = self.session
        local = session.engine.clock().astimezone(session.version.tz)
        found = resolve(session.version.config, number, session.call.caller, local)
        self.target_phone = None
        if isinstance(found.target, Phone):
            self.target_phone = found.target.number
            return session.engine.phone_endpoint(session.version, found.target.number)
        if found.trunk is not None:
            return session.engine.trunk_endpoint(found.trunk, found.number)
        return None

    async def _consult(self, _: Consult) -> None:
        transferor = self.transfer.transferor or ""
        await self._tone(transferor, None)
        bridge = await self.ari.request("POST", "bridges", {"type": "mixing"})
        self.consulting = str(bridge["id"])
        await self.ari.request(
            "POST",
            f"bridges/{self.consulting}/addChannel",
            {"channel": f"{transferor},{self.target}"},
        )
        await self.session.save()

    async def _drop_target(self, _: DropTarget) -> None:
        if self.target is not None:
            target, self.target = self.target, None
            self.session.engine.forget_peer(target)
            await self.ari.quiet("DELETE", f"channels/{target}")
        if self.target_phone is not None:
            self.session.engine.queues.release(self.target_phone, self.session.id)

    async def _resume(self, _: Resume) -> None:
        await self._silence()
        await self._close_consultation()
        if self.transferor in self.parties:
            try:
                await self.ari.request(
                    "POST", f"bridges/{self.bridge}/addChannel", {"channel": self.transferor}
                )
            except AriError as exc:  # not one party left alone in silence: the call ends
                log.error("call %s: the transferor could not rejoin: %s", self.session.id, exc)
                await self.end()
                return
        self.transferor = None
        await self.session.save()
        log.info("call %s: transfer cancelled", self.session.id)

    async def _complete(self, _: Complete) -> None:
        await self._silence()
        await self._close_consultation()
        target, self.target, self.transferor = self.target, None, None
        if target is None:
            await self.end()
            return
        await self.ari.request("POST", f"bridges/{self.bridge}/addChannel", {"channel": target})
        self.parties.append(target)
        if self.target_phone is not None:
            self.phones[target] = self.target_phone
            self.session.engine.queues.occupy(self.target_phone, self.session.id)
        self.session.transferred_to(target, self.target_phone)
        await self.session.save()
        log.info("call %s: transferred", self.session.id)

    async def _abandon(self, _: Abandon) -> None:
        await self.end()

    async def _close_consultation(self) -> None:
        if self.consulting is not None:
            bridge, self.consulting = self.consulting, None
            await self.ari.quiet("DELETE", f"bridges/{bridge}")
