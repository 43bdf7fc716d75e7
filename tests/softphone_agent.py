"""A softphone agent for tests: PJSIP's own user agent (pjsua2) driven by JSON lines.

    python -m tests.softphone_agent [--log FILE] [--log-level N]

One process runs one pjsua2 Endpoint (a process-wide singleton) with the null audio
device, and any number of phones, each an account on a UDP transport of its own bound to
127.0.0.1 (so each phone has its own contact). It reads one JSON command per line on
stdin and answers each with one JSON line on stdout:

    {"id": 7, "cmd": "call", "name": "a", "uri": "sip:b@127.0.0.1:40000"}
    {"id": 7, "ok": true, "call": 1}            or  {"id": 7, "ok": false, "error": "..."}

Events are JSON lines too, written when they happen: {"event": "ready"} once the
endpoint has started, then

    {"event": "reg_state", "phone", "code", "reason", "expires"}
    {"event": "incoming", "phone", "call", "remote"}
    {"event": "call_state", "phone", "call", "state", "code", "reason"}
    {"event": "media", "phone", "call", "active"}
    {"event": "dtmf", "phone", "call", "digit", "method"}
    {"event": "play_done", "phone", "call", "wav"}
    {"event": "recorded", "phone", "call", "path", "complete"}  (the WAV file is closed)

Calls are numbered per phone from 1 ("call" in commands and events); states are NULL,
CALLING, INCOMING, EARLY, CONNECTING, CONFIRMED, DISCONNECTED.

Commands ("name" is the phone's name; "call" is optional and means all its calls):

    phone       name, user? (name), password?, registrar "HOST:PORT"|null, port (0 = any),
                expires (300), answer "auto"|"busy"|"never"|"manual" ("auto"),
                answer_after (s, 0), record_dir?, timeout? (10 s)
                → contact "127.0.0.1:PORT"; with a registrar, the answer waits for its
                final answer: registration (its code), code, reason, expires
    register    name, expires?, timeout? (10 s) → code, reason, expires
    unregister  name, timeout? → code, reason
    call        name, uri → call
    answer      name, call?, code? (200) → calls
    hangup      name, call?, code? → calls
    dtmf        name, digits, method "rfc2833"|"info"|"inband" ("rfc2833"), call?,
                duration? (ms) → calls
    play        name, wav, call?, loop? (false) → calls
    calls       name → calls: [{call, direction, state, code, reason, remote,
                duration, digits, dtmf: [{digit, method}], recording, recording_done}]
    ping        → (nothing)
    quit        hangs up, unregisters, stops; end of stdin does the same

"answer" modes for incoming calls: auto rings (180) and answers after answer_after
seconds; busy rejects with 486; never rings and stays ringing; manual rings and waits for
the "answer" command. With record_dir, every call's received audio is recorded from the
moment its media is active into record_dir/<name>-<call>.wav; the file is closed
shortly after the call is disconnected, and then the "recorded" event says so (and
"recording_done" becomes true): read the WAV only after that.

DTMF: "rfc2833" and "info" are pjsua2's Call.sendDtmf methods, and both are reported
when received. pjsua2 has no inband DTMF method: "inband" plays the digits' tones into the
call's audio with a ToneGenerator; pjsua2 has no inband detector, so a phone of this agent
does not report inband digits it receives (Asterisk can).

Threads: pjsua2 runs with no SIP worker threads (uaConfig.threadCnt = 0, mainThreadOnly)
and the main thread polls it with libHandleEvents, so every callback into Python runs on
the main thread: SIP ones directly, and pjmedia's (DTMF from RTP, which its own media
and clock threads see) posted there by pjsua2. A reader thread only turns stdin lines
into a queue, and garbage cycles are collected in the main loop, never in that thread.

Log: nothing on the console; with --log, pjsip's log at --log-level (4, which has the
SIP messages) goes to that file.
pjsip's own messages never reach stdout: file descriptor 1 is pointed at stderr and the
JSON goes to a copy of the original stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import queue
import re
import sys
import threading
import time
import traceback
import wave
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import pjsua2 as pj  # type: ignore[import-untyped]

POLL_MS = 10
STATES = {
    pj.PJSIP_INV_STATE_NULL: "NULL",
    pj.PJSIP_INV_STATE_CALLING: "CALLING",
    pj.PJSIP_INV_STATE_INCOMING: "INCOMING",
    pj.PJSIP_INV_STATE_EARLY: "EARLY",
    pj.PJSIP_INV_STATE_CONNECTING: "CONNECTING",
    pj.PJSIP_INV_STATE_CONFIRMED: "CONFIRMED",
    pj.PJSIP_INV_STATE_DISCONNECTED: "DISCONNECTED",
}
DTMF_SEND = {"rfc2833": pj.PJSUA_DTMF_METHOD_RFC2833, "info": pj.PJSUA_DTMF_METHOD_SIP_INFO}
DTMF_NAMES = {value: key for key, value in DTMF_SEND.items()}
ANSWER_MODES = ("auto", "busy", "never", "manual")
INBAND_ON_MS = 100
INBAND_OFF_MS = 100
REQUEST_URI = re.compile(r"^\S+\s+sips?:(?:[^@\s;>]*@)?([^:;>\s]+)(?::(\d+))?", re.ASCII)

Json = dict[str, Any]


class CommandError(Exception):
    """A command that cannot be carried out: answered with ok false."""


class Output:
    """The JSON channel: a copy of the original stdout."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, message: Json) -> None:
        self.stream.write(json.dumps(message) + "\n")
        self.stream.flush()


def log(text: str) -> None:
    sys.stderr.write(f"softphone_agent: {text}\n")
    sys.stderr.flush()


def guarded(method: Callable[..., None]) -> Callable[..., None]:
    """A pjsua2 callback: an exception must never travel back into C++."""

    def wrapper(*args: Any) -> None:
        try:
            method(*args)
        except Exception:
            log(f"{method.__name__} failed:\n{traceback.format_exc()}")

    wrapper.__name__ = method.__name__
    return wrapper


@dataclass
class CallRecord:
    """What is known of one call; kept after the call is gone."""

    n: int
    direction: str
    remote: str = ""
    state: str = "NULL"
    code: int = 0
    reason: str = ""
    confirmed_at: float | None = None
    ended_at: float | None = None
    dtmf: list[Json] = field(default_factory=list)
    recording: str | None = None
    recording_done: bool = False

    def as_json(self) -> Json:
        duration = 0.0
        if self.confirmed_at is not None:
            end = self.ended_at if self.ended_at is not None else time.monotonic()
            duration = round(end - self.confirmed_at, 3)
        return {
            "call": self.n,
            "direction": self.direction,
            "state": self.state,
            "code": self.code,
            "reason": self.reason,
            "remote": self.remote,
            "duration": duration,
            "digits": "".join(d["digit"] for d in self.dtmf),
            "dtmf": list(self.dtmf),
            "recording": self.recording,
            "recording_done": self.recording_done,
        }


class SoftCall(pj.Call):  # type: ignore[misc]
    """One live call; dropped (and the C++ object deleted) once disconnected."""

    def __init__(self, phone: Phone, record: CallRecord, call_id: int = pj.PJSUA_INVALID_ID):
        super().__init__(phone.account, call_id)
        self.phone = phone
        self.record = record
        self.recorder: Any = None
        self.players: list[Playback] = []
        self.tones: list[Any] = []

    def audio(self) -> Any:
        """The call's active audio media, or None."""
        info = self.getInfo()
        for index, media in enumerate(info.media):
            if media.type == pj.PJMEDIA_TYPE_AUDIO and media.status == pj.PJSUA_CALL_MEDIA_ACTIVE:
                return self.getAudioMedia(index)
        return None

    @guarded
    def onCallState(self, prm: Any) -> None:
        info = self.getInfo()
        record = self.record
        record.state = STATES.get(info.state, str(info.state))
        record.code = int(info.lastStatusCode)
        record.reason = info.lastReason
        if not record.remote:
            record.remote = info.remoteUri
        now = time.monotonic()
        if record.state == "CONFIRMED" and record.confirmed_at is None:
            record.confirmed_at = now
        if record.state == "DISCONNECTED":
            record.ended_at = now
            self.release_media()
            self.phone.forget(self)
        self.phone.agent.event(
            "call_state",
            phone=self.phone.name,
            call=record.n,
            state=record.state,
            code=record.code,
            reason=record.reason,
        )

    @guarded
    def onCallMediaState(self, prm: Any) -> None:
        audio = self.audio()
        if audio is not None and self.phone.record_dir is not None and self.recorder is None:
            path = self.phone.record_dir / f"{self.phone.name}-{self.record.n}.wav"
            recorder = pj.AudioMediaRecorder()
            recorder.createRecorder(str(path))
            self.recorder = recorder
            self.record.recording = str(path)
        if audio is not None:
            # Again after a re-INVITE too: the call's audio may be a new conference port.
            if self.recorder is not None:
                audio.startTransmit(self.recorder)
            for play in self.players:
                play.player.startTransmit(audio)
            for tone in self.tones:
                tone.startTransmit(audio)
        self.phone.agent.event(
            "media", phone=self.phone.name, call=self.record.n, active=audio is not None
        )

    @guarded
    def onDtmfDigit(self, prm: Any) -> None:
        digit = {"digit": prm.digit, "method": DTMF_NAMES.get(prm.method, str(prm.method))}
        self.record.dtmf.append(digit)
        self.phone.agent.event("dtmf", phone=self.phone.name, call=self.record.n, **digit)

    def release_media(self) -> None:
        """Stop players and tones and close the recording.

        The recorder's destructor only asks for it: the conference bridge removes ports in
        its own clock thread, and the WAV header gets its lengths when the port is finally
        destroyed, a tick later. The agent watches the header (Agent.closing)."""
        self.players.clear()
        self.tones.clear()
        if self.recorder is not None:
            self.recorder = None
            self.phone.agent.closing.append((self.phone, self.record, time.monotonic() + 5))

    def poll_media(self) -> None:
        """Drop players that reached their end and tone generators that finished."""
        now = time.monotonic()
        for play in list(self.players):
            if play.finished(now):
                self.players.remove(play)
                self.phone.agent.event(
                    "play_done", phone=self.phone.name, call=self.record.n, wav=play.wav
                )
        self.tones = [tone for tone in self.tones if tone.isBusy()]


@dataclass
class Playback:
    """A WAV file played into a call. pjmedia's player goes back to position 0 at its end,
    even when it does not loop; the file's length is a fallback."""

    player: Any
    wav: str
    loop: bool
    ends_at: float
    last_pos: int = 0

    @classmethod
    def start(cls, wav: str, audio: Any, loop: bool) -> Playback:
        try:
            with wave.open(wav, "rb") as reader:
                seconds = reader.getnframes() / reader.getframerate()
        except (wave.Error, EOFError):
            seconds = 3600.0  # not PCM: pjmedia may still play it; its end is seen by getPos
        player = pj.AudioMediaPlayer()
        player.createPlayer(wav, 0 if loop else pj.PJMEDIA_FILE_NO_LOOP)
        player.startTransmit(audio)
        return cls(player, wav, loop, time.monotonic() + seconds)

    def finished(self, now: float) -> bool:
        if self.loop:
            return False
        pos = int(self.player.getPos())
        wrapped = pos < self.last_pos
        self.last_pos = pos
        return wrapped or now > self.ends_at + 0.5


class SoftAccount(pj.Account):  # type: ignore[misc]
    def __init__(self, phone: Phone) -> None:
        super().__init__()
        self.phone = phone

    @guarded
    def onRegState(self, prm: Any) -> None:
        self.phone.registration(int(prm.code), prm.reason, int(prm.expiration))

    @guarded
    def onIncomingCall(self, prm: Any) -> None:
        self.phone.incoming(prm.callId)


class Phone:
    def __init__(self, agent: Agent, spec: Json) -> None:
        self.agent = agent
        self.name = str(spec["name"])
        self.user = str(spec.get("user") or self.name)
        self.password = str(spec.get("password") or "")
        self.registrar: str | None = spec.get("registrar")
        self.expires = int(spec.get("expires", 300))
        self.answer_mode = str(spec.get("answer", "auto"))
        if self.answer_mode not in ANSWER_MODES:
            raise CommandError(f"answer must be one of {', '.join(ANSWER_MODES)}")
        self.answer_after = float(spec.get("answer_after", 0))
        record_dir = spec.get("record_dir")
        self.record_dir = Path(record_dir) if record_dir else None
        if self.record_dir is not None:
            self.record_dir.mkdir(parents=True, exist_ok=True)
        self.records: list[CallRecord] = []
        self.live: dict[int, SoftCall] = {}  # by call number
        self.reg_seq = 0
        self.reg_last: Json = {}

        transport = pj.TransportConfig()
        transport.port = int(spec.get("port", 0))
        transport.boundAddress = "127.0.0.1"
        transport.publicAddress = "127.0.0.1"
        self.transport_id = agent.ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, transport)
        self.contact = agent.ep.transportGetInfo(self.transport_id).localName
        self.port = int(self.contact.rsplit(":", 1)[1])

        self.account = SoftAccount(self)
        try:
            self.account.create(self.config(), True)
        except Exception:
            agent.ep.transportClose(self.transport_id)
            raise

    def config(self) -> Any:
        cfg = pj.AccountConfig()
        domain = self.registrar or self.contact
        cfg.idUri = f"sip:{self.user}@{domain}"
        cfg.sipConfig.transportId = self.transport_id
        if self.registrar:
            cfg.regConfig.registrarUri = f"sip:{self.registrar}"
            cfg.regConfig.registerOnAdd = True
            cfg.regConfig.timeoutSec = self.expires
            cfg.regConfig.retryIntervalSec = 0
            cfg.regConfig.dropCallsOnFail = False
            cfg.sipConfig.authCreds.append(
                pj.AuthCredInfo("digest", "*", self.user, 0, self.password)
            )
        else:
            cfg.regConfig.registerOnAdd = False
        nat = cfg.natConfig
        nat.sipOutboundUse = 0
        nat.contactRewriteUse = 0
        nat.viaRewriteUse = 0
        nat.sdpNatRewriteUse = 0
        nat.udpKaIntervalSec = 0
        nat.iceEnabled = False
        rtp = cfg.mediaConfig.transportConfig
        rtp.port = 0
        rtp.boundAddress = "127.0.0.1"
        rtp.publicAddress = "127.0.0.1"
        return cfg

    # callbacks -----------------------------------------------------------------------------

    def registration(self, code: int, reason: str, expires: int) -> None:
        self.reg_seq += 1
        self.reg_last = {"code": code, "reason": reason, "expires": expires}
        self.agent.event("reg_state", phone=self.name, **self.reg_last)

    def new_record(self, direction: str) -> CallRecord:
        record = CallRecord(n=len(self.records) + 1, direction=direction)
        self.records.append(record)
        return record

    def incoming(self, call_id: int) -> None:
        record = self.new_record("in")
        call = SoftCall(self, record, call_id)
        self.live[record.n] = call
        info = call.getInfo()
        record.remote = info.remoteUri
        record.state = STATES.get(info.state, str(info.state))
        self.agent.event("incoming", phone=self.name, call=record.n, remote=record.remote)
        if self.answer_mode == "busy":
            self.agent.later(0, lambda: self.respond(record.n, 486))
            return
        call.answer(op(180))
        if self.answer_mode == "auto":
            self.agent.later(self.answer_after, lambda: self.respond(record.n, 200))

    def respond(self, n: int, code: int) -> None:
        call = self.live.get(n)
        if call is None or call.record.state not in ("INCOMING", "EARLY"):
            return
        if code >= 300:
            call.hangup(op(code))
        else:
            call.answer(op(code))

    def forget(self, call: SoftCall) -> None:
        self.live.pop(call.record.n, None)

    # commands -------------------------------------------------------------------------------

    def selected(self, msg: Json) -> list[SoftCall]:
        n = msg.get("call")
        if n is None:
            return list(self.live.values())
        call = self.live.get(int(n))
        if call is None:
            raise CommandError(f"phone {self.name} has no live call {n}")
        return [call]

    def calls_json(self) -> list[Json]:
        return [record.as_json() for record in self.records]


def op(code: int = 0) -> Any:
    prm = pj.CallOpParam(True)
    if code:
        prm.statusCode = code
    return prm


@dataclass
class Waiter:
    """A command whose answer waits for an event: check() gives it, or None for not yet."""

    msg_id: Any
    check: Callable[[], Json | None]
    deadline: float
    what: str


class SoftEndpoint(pj.Endpoint):  # type: ignore[misc]
    def __init__(self, agent: Agent) -> None:
        super().__init__()
        self.agent = agent

    @guarded
    def onSelectAccount(self, prm: Any) -> None:
        """An incoming request belongs to the phone whose port is in its request URI."""
        match = REQUEST_URI.match(prm.rdata.wholeMsg)
        if match is None or match.group(2) is None:
            return
        port = int(match.group(2))
        for phone in self.agent.phones.values():
            if phone.port == port:
                prm.accountIndex = phone.account.getId()
                return


class Agent:
    def __init__(self, out: Output, log_file: str | None, log_level: int) -> None:
        self.out = out
        self.phones: dict[str, Phone] = {}
        self.waiters: list[Waiter] = []
        self.timers: list[tuple[float, Callable[[], None]]] = []
        self.closing: list[tuple[Phone, CallRecord, float]] = []  # recordings being closed
        self.running = True
        self.ep = SoftEndpoint(self)
        self.ep.libCreate()
        cfg = pj.EpConfig()
        cfg.uaConfig.threadCnt = 0
        cfg.uaConfig.mainThreadOnly = True
        cfg.uaConfig.userAgent = "astpbx-tests-pjsua2"
        cfg.uaConfig.maxCalls = 32
        cfg.logConfig.consoleLevel = 0
        cfg.logConfig.level = log_level if log_file else 0
        cfg.logConfig.msgLogging = bool(log_file)
        if log_file:
            cfg.logConfig.filename = log_file
        cfg.medConfig.noVad = True
        cfg.medConfig.ecTailLen = 0
        cfg.medConfig.clockRate = 8000
        cfg.medConfig.sndClockRate = 8000
        self.ep.libInit(cfg)
        self.ep.audDevManager().setNullDev()
        for codec, priority in (("PCMU/8000", 255), ("PCMA/8000", 254)):
            with contextlib.suppress(pj.Error):
                self.ep.codecSetPriority(codec, priority)
        self.ep.libStart()

    def event(self, name: str, **fields: Any) -> None:
        self.out.write({"event": name, **fields})

    def later(self, delay: float, action: Callable[[], None]) -> None:
        self.timers.append((time.monotonic() + delay, action))

    def phone(self, msg: Json) -> Phone:
        name = msg.get("name")
        phone = self.phones.get(str(name))
        if phone is None:
            raise CommandError(f"no phone named {name!r}")
        return phone

    # the loop ------------------------------------------------------------------------------

    def run(self, commands: queue.Queue[Json | None]) -> None:
        self.event("ready", version=self.ep.libVersion().full)
        last_gc = time.monotonic()
        while self.running:
            self.ep.libHandleEvents(POLL_MS)
            while self.running:
                try:
                    msg = commands.get_nowait()
                except queue.Empty:
                    break
                if msg is None:
                    self.running = False
                    break
                self.dispatch(msg)
            self.tick()
            if time.monotonic() - last_gc > 5:
                gc.collect()  # here, not in the reader thread: pjsua2 destructors
                last_gc = time.monotonic()
        self.shutdown()

    def tick(self) -> None:
        now = time.monotonic()
        due = [timer for timer in self.timers if timer[0] <= now]
        self.timers = [timer for timer in self.timers if timer[0] > now]
        for _, action in due:
            try:
                action()
            except Exception:
                log(f"scheduled action failed:\n{traceback.format_exc()}")
        for phone in self.phones.values():
            for call in list(phone.live.values()):
                try:
                    call.poll_media()
                except Exception:
                    log(f"media poll failed:\n{traceback.format_exc()}")
        for item in list(self.closing):
            phone, record, deadline = item
            complete = wav_complete(Path(str(record.recording)))
            if complete or now > deadline:
                self.closing.remove(item)
                record.recording_done = complete
                self.event(
                    "recorded",
                    phone=phone.name,
                    call=record.n,
                    path=record.recording,
                    complete=complete,
                )
        for waiter in list(self.waiters):
            try:
                result = waiter.check()
            except Exception as exc:
                self.waiters.remove(waiter)
                self.out.write({"id": waiter.msg_id, "ok": False, "error": describe(exc)})
                continue
            if result is not None:
                self.waiters.remove(waiter)
                self.out.write({"id": waiter.msg_id, "ok": True, **result})
            elif now > waiter.deadline:
                self.waiters.remove(waiter)
                self.out.write(
                    {"id": waiter.msg_id, "ok": False, "error": f"timed out: {waiter.what}"}
                )

    def dispatch(self, msg: Json) -> None:
        msg_id = msg.get("id")
        cmd = str(msg.get("cmd", ""))
        handler = getattr(self, f"cmd_{cmd}", None)
        if handler is None:
            self.out.write({"id": msg_id, "ok": False, "error": f"unknown command {cmd!r}"})
            return
        try:
            result = handler(msg)
        except Exception as exc:
            if not isinstance(exc, CommandError | KeyError | ValueError | pj.Error):
                log(f"{cmd} failed:\n{traceback.format_exc()}")
            self.out.write({"id": msg_id, "ok": False, "error": describe(exc)})
            return
        if isinstance(result, Waiter):
            result.msg_id = msg_id
            self.waiters.append(result)
        else:
            self.out.write({"id": msg_id, "ok": True, **result})

    def shutdown(self) -> None:
        with contextlib.suppress(Exception):
            self.ep.hangupAllCalls()
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline and any(p.live for p in self.phones.values()):
            self.ep.libHandleEvents(POLL_MS)
        registered = [
            p
            for p in self.phones.values()
            if p.registrar and 200 <= p.reg_last.get("code", 0) < 300 and p.reg_last["expires"]
        ]
        seqs = {p.name: p.reg_seq for p in registered}
        for phone in registered:
            with contextlib.suppress(Exception):
                phone.account.setRegistration(False)
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline and any(p.reg_seq == seqs[p.name] for p in registered):
            self.ep.libHandleEvents(POLL_MS)
        for phone in self.phones.values():
            phone.live.clear()
            with contextlib.suppress(Exception):
                phone.account.shutdown()
        self.phones.clear()
        # Calls and registrations are done with: no waiting for answers (pjsua would
        # otherwise sleep a second for them).
        self.ep.libDestroy(pj.PJSUA_DESTROY_NO_RX_MSG)

    # commands --------------------------------------------------------------------------------

    def cmd_bad_line(self, msg: Json) -> Json:
        raise CommandError(str(msg.get("error", "bad command line")))

    def cmd_ping(self, msg: Json) -> Json:
        return {}

    def cmd_quit(self, msg: Json) -> Json:
        self.running = False
        return {}

    def cmd_phone(self, msg: Json) -> Json | Waiter:
        name = str(msg["name"])
        if name in self.phones:
            raise CommandError(f"phone {name!r} exists")
        phone = Phone(self, msg)
        self.phones[name] = phone
        result: Json = {"contact": phone.contact}
        if not phone.registrar:
            return result
        return self.reg_waiter(phone, 0, result, float(msg.get("timeout", 10)))

    def reg_waiter(self, phone: Phone, seq: int, extra: Json, timeout: float) -> Waiter:
        def check() -> Json | None:
            if phone.reg_seq <= seq:
                return None
            return {**extra, "registration": phone.reg_last["code"], **phone.reg_last}

        return Waiter(None, check, time.monotonic() + timeout, f"registration of {phone.name}")

    def cmd_register(self, msg: Json) -> Waiter:
        phone = self.phone(msg)
        if not phone.registrar:
            raise CommandError(f"phone {phone.name} has no registrar")
        seq = phone.reg_seq
        expires = int(msg.get("expires", phone.expires))
        if expires != phone.expires:
            phone.expires = expires
            phone.account.modify(phone.config())  # re-registers with the new expiry
        else:
            phone.account.setRegistration(True)
        return self.reg_waiter(phone, seq, {}, float(msg.get("timeout", 10)))

    def cmd_unregister(self, msg: Json) -> Waiter:
        phone = self.phone(msg)
        if not phone.registrar:
            raise CommandError(f"phone {phone.name} has no registrar")
        seq = phone.reg_seq
        phone.account.setRegistration(False)
        return self.reg_waiter(phone, seq, {}, float(msg.get("timeout", 10)))

    def cmd_call(self, msg: Json) -> Json:
        phone = self.phone(msg)
        uri = str(msg["uri"])
        record = phone.new_record("out")
        record.remote = uri
        call = SoftCall(phone, record)
        phone.live[record.n] = call
        try:
            call.makeCall(uri, op())
        except Exception:
            phone.live.pop(record.n, None)
            record.state = "DISCONNECTED"
            raise
        return {"call": record.n}

    def cmd_answer(self, msg: Json) -> Json:
        phone = self.phone(msg)
        code = int(msg.get("code", 200))
        calls = [c for c in phone.selected(msg) if c.record.direction == "in"]
        ringing = [c for c in calls if c.record.state in ("INCOMING", "EARLY")]
        if not ringing:
            raise CommandError(f"phone {phone.name} has no ringing call")
        for call in ringing:
            phone.respond(call.record.n, code)
        return {"calls": phone.calls_json()}

    def cmd_hangup(self, msg: Json) -> Json:
        phone = self.phone(msg)
        code = int(msg.get("code", 0))
        for call in phone.selected(msg):
            call.hangup(op(code))
        return {"calls": phone.calls_json()}

    def cmd_dtmf(self, msg: Json) -> Json:
        phone = self.phone(msg)
        digits = str(msg["digits"])
        method = str(msg.get("method", "rfc2833"))
        duration = int(msg.get("duration", 0))
        calls = [c for c in phone.selected(msg) if c.record.state == "CONFIRMED"]
        if not calls:
            raise CommandError(f"phone {phone.name} has no answered call")
        for call in calls:
            if method == "inband":
                send_inband(call, digits, duration or INBAND_ON_MS)
            elif method in DTMF_SEND:
                prm = pj.CallSendDtmfParam()
                prm.digits = digits
                prm.method = DTMF_SEND[method]
                if duration:
                    prm.duration = duration
                call.sendDtmf(prm)
            else:
                raise CommandError(f"method must be rfc2833, info or inband, not {method!r}")
        return {"calls": phone.calls_json()}

    def cmd_play(self, msg: Json) -> Json:
        phone = self.phone(msg)
        wav = str(msg["wav"])
        loop = bool(msg.get("loop", False))
        targets = [(c, c.audio()) for c in phone.selected(msg)]
        targets = [(c, audio) for c, audio in targets if audio is not None]
        if not targets:
            raise CommandError(f"phone {phone.name} has no call with active audio")
        for call, audio in targets:
            call.players.append(Playback.start(wav, audio, loop))
        return {"calls": phone.calls_json()}

    def cmd_calls(self, msg: Json) -> Json:
        return {"calls": self.phone(msg).calls_json()}


def send_inband(call: SoftCall, digits: str, on_ms: int) -> None:
    audio = call.audio()
    if audio is None:
        raise CommandError("the call has no active audio")
    tone = pj.ToneGenerator()
    tone.createToneGenerator()
    tone.startTransmit(audio)
    sequence = pj.ToneDigitVector()
    for char in digits:
        digit = pj.ToneDigit()
        digit.digit = char
        digit.on_msec = on_ms
        digit.off_msec = INBAND_OFF_MS
        digit.volume = 0
        sequence.append(digit)
    tone.playDigits(sequence)
    call.tones.append(tone)


def wav_complete(path: Path) -> bool:
    """Whether pjmedia's WAV writer has closed the file: its RIFF length is filled in."""
    try:
        with path.open("rb") as wav:
            head = wav.read(8)
            size = os.fstat(wav.fileno()).st_size
    except OSError:
        return False
    return len(head) == 8 and head[:4] == b"RIFF" and int.from_bytes(head[4:], "little") == size - 8


def describe(exc: BaseException) -> str:
    if isinstance(exc, pj.Error):
        return f"{exc.title}: {exc.reason} (status {exc.status})"
    if isinstance(exc, KeyError):
        return f"missing field {exc}"
    return str(exc) or type(exc).__name__


def read_commands(stream: TextIO, commands: queue.Queue[Json | None]) -> None:
    """The reader thread: stdin lines to the queue; None at the end of stdin."""
    for raw in stream:
        line = raw.strip()
        if not line:
            continue
        try:
            msg = json.loads(line)
            if not isinstance(msg, dict):
                raise ValueError("not an object")
        except ValueError as exc:
            msg = {"id": None, "cmd": "bad_line", "error": f"bad command line: {exc}"}
        commands.put(msg)
    commands.put(None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.softphone_agent")
    parser.add_argument("--log", help="write pjsip's log to this file")
    parser.add_argument(
        "--log-level", type=int, default=4, help="pjsip's log level in that file (4: with SIP)"
    )
    args = parser.parse_args(argv)

    out = Output(os.fdopen(os.dup(1), "w", encoding="utf-8"))
    os.dup2(2, 1)  # whatever pjsip prints goes to stderr, never into the JSON channel
    sys.stdout = sys.stderr
    gc.disable()  # cycles are collected in the main loop, where pjsua2 may be called

    commands: queue.Queue[Json | None] = queue.Queue()
    reader = threading.Thread(target=read_commands, args=(sys.stdin, commands), daemon=True)
    agent = Agent(out, args.log, args.log_level)
    reader.start()
    agent.run(commands)
    out.stream.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
