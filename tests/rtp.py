"""RTP for SIP tests: pcap files of DTMF keys for SIPp to send, and a sink that keeps
what Asterisk sends a caller.

SIPp's `play_pcap_audio` replays the UDP payloads of a pcap file with their timing.
Debian's sip-tester ships RFC 2833 pcaps for some keys only and no inband tones, so
these files are made here: `dtmf_pcap(key, "rfc4733")` writes telephone-event packets
(RFC 4733 2.5: a marked first packet, the duration growing every 20 ms, three end
packets), `dtmf_pcap(key, "inband")` writes the key's two tones as G.711 A-law audio
(ITU-T Q.23/Q.24) between stretches of silence.
"""

from __future__ import annotations

import contextlib
import math
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

EVENT_PT = 101  # telephone-event, as the test scenarios' SDP offers it
PCMA_PT = 8
RATE = 8000
FRAME = 160  # samples in 20 ms
KEYS = "0123456789*#ABCD"
# DTMF frequencies (Hz): row tone, column tone.
_ROWS = {"123A": 697, "456B": 770, "789C": 852, "*0#D": 941}
_COLS = {"147*": 1209, "2580": 1336, "369#": 1477, "ABCD": 1633}


def _tones(key: str) -> tuple[int, int]:
    row = next(f for keys, f in _ROWS.items() if key in keys)
    col = next(f for keys, f in _COLS.items() if key in keys)
    return row, col


# --- G.711 A-law -------------------------------------------------------------------


def alaw_encode(sample: int) -> int:
    """One 16-bit linear sample to A-law (ITU-T G.711)."""
    shifted = sample >> 3  # 13 bits; negatives as in the G.711 reference code: ~x
    sign, magnitude = (0x80, shifted) if shifted >= 0 else (0, ~shifted)
    magnitude = min(magnitude, 0xFFF)
    if magnitude < 32:
        code = magnitude >> 1
    else:
        exponent = magnitude.bit_length() - 5
        code = (exponent << 4) | ((magnitude >> exponent) & 0x0F)
    return (code | sign) ^ 0x55


def alaw_decode(byte: int) -> int:
    byte ^= 0x55
    exponent, mantissa = (byte >> 4) & 0x07, byte & 0x0F
    magnitude = (
        (mantissa << 4) + 8 if exponent == 0 else ((mantissa << 4) + 0x108) << (exponent - 1)
    )
    return magnitude if byte & 0x80 else -magnitude


_DECODE = [alaw_decode(b) for b in range(256)]


# --- pcap files --------------------------------------------------------------------


def _rtp(pt: int, seq: int, timestamp: int, payload: bytes, marker: bool = False) -> bytes:
    return struct.pack("!BBHII", 0x80, pt | (0x80 if marker else 0), seq, timestamp, 0x5EED) + (
        payload
    )


def _udp_frame(payload: bytes) -> bytes:
    """Ethernet + IPv4 + UDP around `payload` (SIPp rewrites addresses and ports)."""
    udp = struct.pack("!HHHH", 4000, 4000, 8 + len(payload), 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0, bytes(4), bytes(4))
    return bytes(12) + b"\x08\x00" + ip + udp


def write_pcap(path: Path, packets: list[tuple[float, bytes]]) -> Path:
    """A libpcap file (Ethernet link type) of RTP packets at their times in seconds."""
    with path.open("wb") as out:
        out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for at, rtp in packets:
            frame = _udp_frame(rtp)
            seconds, micros = int(at), round((at - int(at)) * 1e6)
            out.write(struct.pack("<IIII", seconds, micros, len(frame), len(frame)) + frame)
    return path


def _event_packets(key: str, duration_ms: int, seq: int, ts: int) -> list[tuple[float, bytes]]:
    event, packets = KEYS.index(key), []
    steps = max(1, duration_ms // 20)
    for step in range(1, steps + 1):
        body = struct.pack("!BBH", event, 10, step * FRAME)  # volume -10 dBm0
        rtp = _rtp(EVENT_PT, seq + step, ts, body, marker=step == 1)
        packets.append(((step - 1) * 0.02, rtp))
    end = struct.pack("!BBH", event, 0x80 | 10, steps * FRAME)
    for n in range(3):  # RFC 4733 2.5.1.4: the end packet is sent three times
        rtp = _rtp(EVENT_PT, seq + steps + 1 + n, ts, end)
        packets.append(((steps - 1 + n) * 0.02 + 0.001, rtp))
    return packets


def _tone_frames(key: str | None, frames: int, start: int) -> list[bytes]:
    out = []
    low, high = _tones(key) if key else (0, 0)
    for frame in range(frames):
        samples = bytearray()
        for n in range(FRAME):
            t = (start + frame * FRAME + n) / RATE
            value = (
                0
                if key is None
                else 7000 * (math.sin(2 * math.pi * low * t) + math.sin(2 * math.pi * high * t))
            )
            samples.append(alaw_encode(int(value)))
        out.append(bytes(samples))
    return out


def _inband_packets(key: str, duration_ms: int, seq: int, ts: int) -> list[tuple[float, bytes]]:
    quiet, tone = 5, max(1, duration_ms // 20)  # 100 ms silence around the tone
    frames = (
        _tone_frames(None, quiet, 0)
        + _tone_frames(key, tone, quiet * FRAME)
        + _tone_frames(None, quiet, (quiet + tone) * FRAME)
    )
    return [
        (n * 0.02, _rtp(PCMA_PT, seq + n + 1, ts + n * FRAME, body, marker=n == 0))
        for n, body in enumerate(frames)
    ]


def dtmf_pcap(directory: Path, key: str, mode: str, press: int, duration_ms: int = 160) -> Path:
    """A pcap of one key (`rfc4733` events or `inband` tones), cached in `directory`.

    SIPp sends a pcap's RTP headers as they are, so the `press`-th key of a call gets
    sequence numbers and a timestamp after the previous key's: a receiver takes an
    event with the timestamp of the last one for a repeat of it, and drops it."""
    name = {"*": "star", "#": "pound"}.get(key, key)
    path = directory / f"dtmf-{mode}-{name}-{press}.pcap"
    if not path.exists():
        build = _event_packets if mode == "rfc4733" else _inband_packets
        write_pcap(path, build(key, duration_ms, press * 64, press * 16000))
    return path


# --- what the caller hears ---------------------------------------------------------


@dataclass
class Heard:
    """Audio a sink received: linear samples at 8 kHz, in arrival order."""

    samples: list[int] = field(default_factory=list)
    packets: int = 0

    @property
    def seconds(self) -> float:
        return len(self.samples) / RATE

    def loud_seconds(self, threshold: float = 300.0) -> float:
        """Seconds of 20 ms frames whose RMS level is above `threshold` (silence in
        A-law decodes to ±8; speech is in the thousands)."""
        loud = 0
        for start in range(0, len(self.samples) - FRAME + 1, FRAME):
            frame = self.samples[start : start + FRAME]
            if math.sqrt(sum(s * s for s in frame) / FRAME) > threshold:
                loud += 1
        return loud * FRAME / RATE


class RtpSink:
    """A UDP port on 127.0.0.1 that keeps the A-law RTP sent to it (a caller's ear)."""

    def __init__(self) -> None:
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.socket.bind(("127.0.0.1", 0))
        self.socket.settimeout(0.2)
        self.port: int = self.socket.getsockname()[1]
        self.heard = Heard()
        self.first_at: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)

    def __enter__(self) -> RtpSink:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(2)
        self.socket.close()

    def _read(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                data = self.socket.recv(2048)
                if len(data) > 12 and data[1] & 0x7F == PCMA_PT:
                    if self.first_at is None:
                        self.first_at = time.monotonic()
                    self.heard.packets += 1
                    self.heard.samples.extend(_DECODE[b] for b in data[12:])
