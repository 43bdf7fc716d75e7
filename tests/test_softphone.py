"""The pjsua2 softphone agent on its own, without Asterisk: phones that call each other
directly on 127.0.0.1, and a minimal registrar of the test's own for REGISTER."""

from __future__ import annotations

import hashlib
import math
import os
import re
import signal
import socket
import struct
import threading
import time
import wave
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.softphone import Dtmf, SoftphoneError, Softphones

pytestmark = pytest.mark.sip

RATE = 8000
LOUD = 1000  # RMS of a 16-bit window well above silence (the tone is at about 8500)
WINDOW = RATE // 10


@pytest.fixture
def phones(tmp_path: Path) -> Iterator[Softphones]:
    with Softphones(log=tmp_path / "pjsip.log") as agent:
        yield agent
    assert agent.returncode == 0, agent.stderr_text[-3000:]
    assert "Traceback" not in agent.stderr_text, agent.stderr_text[-3000:]


def tone_wav(path: Path, seconds: float, freqs: tuple[float, ...] = (1000.0,)) -> Path:
    """A sine tone (or a sum of tones), 8 kHz 16-bit mono."""
    amplitude = 12000 / len(freqs)
    frames = b"".join(
        struct.pack("<h", int(sum(amplitude * math.sin(2 * math.pi * f * i / RATE) for f in freqs)))
        for i in range(int(seconds * RATE))
    )
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(frames)
    return path


def samples(path: Path) -> tuple[int, list[int]]:
    with wave.open(str(path), "rb") as reader:
        assert reader.getnchannels() == 1 and reader.getsampwidth() == 2
        data = reader.readframes(reader.getnframes())
        return reader.getframerate(), list(struct.unpack(f"<{len(data) // 2}h", data))


def rms(chunk: list[int]) -> float:
    return math.sqrt(sum(x * x for x in chunk) / len(chunk)) if chunk else 0.0


def loud_seconds(path: Path) -> float:
    """How many seconds of the recording are well above silence (in 100 ms windows)."""
    rate, values = samples(path)
    window = rate // 10
    loud = sum(
        1 for i in range(0, len(values) - window + 1, window) if rms(values[i : i + window]) > LOUD
    )
    return loud * window / rate


def goertzel(chunk: list[int], freq: float, rate: int) -> float:
    """The power of one frequency in a chunk, relative to the chunk's total power."""
    coeff = 2 * math.cos(2 * math.pi * freq / rate)
    s1 = s2 = 0.0
    for x in chunk:
        s1, s2 = x + coeff * s1 - s2, s1
    power = s1 * s1 + s2 * s2 - coeff * s1 * s2
    total = sum(x * x for x in chunk) * len(chunk) / 2
    return power / total if total else 0.0


def connect(phones: Softphones, record_dir: Path | None = None) -> tuple[int, int]:
    """Phone a calls phone b (which answers); both calls' numbers once confirmed."""
    b = phones.add("b", answer="auto", record_dir=record_dir)
    phones.add("a")
    a_call = phones.call("a", b.uri)
    b_call = phones.wait_incoming("b")
    phones.wait_state("a", a_call, "CONFIRMED")
    phones.wait_state("b", b_call, "CONFIRMED")
    return a_call, b_call


def test_dtmf_rfc2833_then_info_arrives_once_each_in_order(phones: Softphones) -> None:
    a_call, b_call = connect(phones)
    phones.dtmf("a", "1*#", method="rfc2833")
    first = phones.wait_digits("b", b_call, 3)
    assert first.dtmf == (Dtmf("1", "rfc2833"), Dtmf("*", "rfc2833"), Dtmf("#", "rfc2833"))

    phones.dtmf("a", "1*#", method="info")
    phones.wait_digits("b", b_call, 6)
    time.sleep(0.5)  # a late duplicate (an RTP end packet resent, say) would show by now
    info = phones.call_info("b", b_call)
    assert info.digits == "1*#1*#"
    assert [d.method for d in info.dtmf] == ["rfc2833"] * 3 + ["info"] * 3
    dtmf_events = [e["digit"] for e in phones.events if e["event"] == "dtmf"]
    assert dtmf_events == list("1*#1*#")
    assert phones.call_info("a", a_call).digits == ""


def test_played_wav_is_recorded_by_the_other_phone(phones: Softphones, tmp_path: Path) -> None:
    wav = tone_wav(tmp_path / "tone.wav", 2.0)
    a_call, b_call = connect(phones, record_dir=tmp_path / "rec")
    phones.play("a", wav)
    phones.wait_event(
        lambda e: e["event"] == "play_done" and e["phone"] == "a", 10, what="a's play to end"
    )
    phones.hangup("a")
    phones.wait_state("a", a_call, "DISCONNECTED")
    phones.wait_state("b", b_call, "DISCONNECTED")

    recording = phones.wait_recording("b", b_call)
    assert recording == tmp_path / "rec" / "b-1.wav"
    info = phones.call_info("b", b_call)
    assert (info.recording, info.recording_done) == (recording, True)
    assert info.duration >= 2.0
    loud = loud_seconds(recording)
    assert loud >= 1.0, f"only {loud} s of the recording is above silence"
    rate, values = samples(recording)
    start = next(i for i in range(0, len(values), WINDOW) if rms(values[i : i + WINDOW]) > LOUD)
    chunk = values[start + WINDOW : start + 6 * WINDOW]
    assert goertzel(chunk, 1000, rate) > 0.8  # it is the tone that came through


def test_inband_dtmf_is_heard_as_tones_not_reported(phones: Softphones, tmp_path: Path) -> None:
    _, b_call = connect(phones, record_dir=tmp_path)
    phones.dtmf("a", "1", method="inband", duration=400)
    time.sleep(1.0)
    phones.hangup("a")
    recording = phones.wait_recording("b", b_call)
    assert phones.call_info("b", b_call).digits == ""  # pjsua2 has no inband DTMF detector
    rate, values = samples(recording)
    start = next(i for i in range(0, len(values), WINDOW) if rms(values[i : i + WINDOW]) > LOUD)
    chunk = values[start + WINDOW // 2 : start + 3 * WINDOW]  # inside the 400 ms digit
    low, high = goertzel(chunk, 697, rate), goertzel(chunk, 1209, rate)  # "1" = 697 + 1209 Hz
    assert low > 0.25 and high > 0.25, (low, high)
    assert goertzel(chunk, 941, rate) < 0.05  # not "*" (941 + 1209 Hz)


def test_busy_phone_rejects_with_486(phones: Softphones) -> None:
    b = phones.add("b", answer="busy")
    phones.add("a")
    a_call = phones.call("a", b.uri)
    event = phones.wait_state("a", a_call, "DISCONNECTED")
    assert event["code"] == 486
    info = phones.call_info("a", a_call)
    assert (info.state, info.code, info.duration) == ("DISCONNECTED", 486, 0.0)
    b_call = phones.wait_incoming("b")
    assert phones.wait_state("b", b_call, "DISCONNECTED")["code"] == 486


def test_never_answering_phone_rings_until_the_caller_hangs_up(phones: Softphones) -> None:
    b = phones.add("b", answer="never")
    phones.add("a")
    a_call = phones.call("a", b.uri)
    phones.wait_state("a", a_call, "EARLY")
    b_call = phones.wait_incoming("b")
    time.sleep(1.5)
    assert phones.call_info("a", a_call).state == "EARLY"
    assert phones.call_info("a", a_call).code == 180
    assert phones.call_info("b", b_call).state == "EARLY"
    phones.hangup("a")
    assert phones.wait_state("a", a_call, "DISCONNECTED")["code"] == 487
    phones.wait_state("b", b_call, "DISCONNECTED")
    assert phones.call_info("b", b_call).duration == 0.0


def test_manual_phone_answers_when_told(phones: Softphones) -> None:
    b = phones.add("b", answer="manual")
    phones.add("a")
    a_call = phones.call("a", b.uri)
    b_call = phones.wait_incoming("b")
    phones.wait_state("a", a_call, "EARLY")
    time.sleep(0.3)
    assert phones.call_info("a", a_call).state == "EARLY"
    phones.answer("b")
    phones.wait_state("a", a_call, "CONFIRMED")
    phones.wait_state("b", b_call, "CONFIRMED")
    phones.hangup("b")
    phones.wait_state("a", a_call, "DISCONNECTED")
    with pytest.raises(SoftphoneError, match="no ringing call"):
        phones.answer("b")


def test_answer_after_delays_the_answer(phones: Softphones) -> None:
    b = phones.add("b", answer="auto", answer_after=1.0)
    phones.add("a")
    started = time.monotonic()
    a_call = phones.call("a", b.uri)
    phones.wait_state("a", a_call, "EARLY")
    phones.wait_state("a", a_call, "CONFIRMED")
    assert time.monotonic() - started >= 1.0


def test_second_call_gets_the_next_number(phones: Softphones) -> None:
    b = phones.add("b")
    phones.add("a")
    for n in (1, 2):
        assert phones.call("a", b.uri) == n
        phones.wait_state("a", n, "CONFIRMED")
        phones.hangup("a")
        phones.wait_state("b", n, "DISCONNECTED")
    assert [(c.call, c.state, c.direction) for c in phones.calls("b")] == [
        (1, "DISCONNECTED", "in"),
        (2, "DISCONNECTED", "in"),
    ]


def test_errors_are_raised(phones: Softphones) -> None:
    with pytest.raises(SoftphoneError, match="no phone named 'x'"):
        phones.calls("x")
    phones.add("a")
    with pytest.raises(SoftphoneError, match="exists"):
        phones.add("a")
    with pytest.raises(SoftphoneError, match="no answered call"):
        phones.dtmf("a", "1")
    with pytest.raises(SoftphoneError, match="no registrar"):
        phones.register("a")
    with pytest.raises(SoftphoneError, match="unknown command"):
        phones.command("dance")


def test_a_dead_agent_is_reported_with_its_stderr(tmp_path: Path) -> None:
    phones = Softphones()
    with phones:
        phones.add("a")
        assert phones.pid is not None
        os.kill(phones.pid, signal.SIGKILL)
        with pytest.raises(SoftphoneError, match=r"exited \(code -9\)") as caught:
            phones.calls("a")
        assert "agent stderr" in str(caught.value)  # pjlib's startup lines at least


# REGISTER against a registrar of the test's own ------------------------------------------


class Registrar:
    """A UDP registrar on 127.0.0.1: a digest challenge (MD5, no qop), then 200 OK."""

    REALM = "astpbx-test"
    NONCE = "0123456789abcdef"

    def __init__(self, user: str, password: str) -> None:
        self.user = user
        self.password = password
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.address = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self.bindings: list[tuple[str, int]] = []  # (contact, expires) per accepted REGISTER
        self.challenged = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> Registrar:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, peer = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            text = data.decode("utf-8", "replace")
            if text.startswith("REGISTER "):
                self.sock.sendto(self._answer(text).encode(), peer)

    def _answer(self, request: str) -> str:
        head = request.split("\r\n\r\n", 1)[0]
        lines = head.split("\r\n")
        uri = lines[0].split()[1]
        headers: list[tuple[str, str]] = []
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers.append((name.strip().lower(), value.strip()))
        copied = [
            f"{n.title()}: {v}" for n, v in headers if n in ("via", "from", "call-id", "cseq")
        ]
        to = next(v for n, v in headers if n == "to")
        copied.append(f"To: {to};tag=reg1" if "tag=" not in to else f"To: {to}")
        auth = next((v for n, v in headers if n == "authorization"), None)
        if auth is None or not self._valid(auth, uri):
            self.challenged += 1
            challenge = f'WWW-Authenticate: Digest realm="{self.REALM}", nonce="{self.NONCE}"'
            return "\r\n".join(
                ["SIP/2.0 401 Unauthorized", *copied, challenge, "Content-Length: 0", "", ""]
            )
        contact = next(v for n, v in headers if n in ("contact", "m"))
        expires_header = next((v for n, v in headers if n == "expires"), None)
        match = re.search(r";\s*expires=(\d+)", contact)
        expires = int(match.group(1) if match else expires_header or 3600)
        self.bindings.append((contact, expires))
        reply = [f"Contact: {contact.split(';')[0]};expires={expires}"] if expires else []
        return "\r\n".join(
            ["SIP/2.0 200 OK", *copied, *reply, f"Expires: {expires}", "Content-Length: 0", "", ""]
        )

    def _valid(self, auth: str, uri: str) -> bool:
        fields = dict(re.findall(r'(\w+)="?([^",]*)"?', auth))
        ha1 = md5(f"{self.user}:{self.REALM}:{self.password}")
        ha2 = md5(f"REGISTER:{fields.get('uri', uri)}")
        return fields.get("username") == self.user and fields.get("response") == md5(
            f"{ha1}:{self.NONCE}:{ha2}"
        )


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def test_register_with_digest_then_unregister(phones: Softphones) -> None:
    with Registrar("2001", "secret-password") as registrar:
        phone = phones.add(
            "op", user="2001", password="secret-password", registrar=registrar.address, expires=120
        )
        assert phone.registration == 200
        assert registrar.challenged >= 1
        contact, expires = registrar.bindings[-1]
        assert f"@{phone.contact}" in contact and expires == 120
        reg = phones.wait_event(lambda e: e["event"] == "reg_state" and e["phone"] == "op")
        assert (reg["code"], reg["expires"]) == (200, 120)

        assert phones.register("op", expires=60) == 200
        assert registrar.bindings[-1][1] == 60
        assert phones.unregister("op") == 200
        assert registrar.bindings[-1][1] == 0


def test_wrong_password_is_reported_not_raised(phones: Softphones) -> None:
    with Registrar("2001", "secret-password") as registrar:
        phone = phones.add("op", user="2001", password="wrong", registrar=registrar.address)
        assert phone.registration == 401
        assert registrar.bindings == []
