"""Benchmark the engine on SIP calls from SIPp through a trunk, against plain dialplan.

Per call (SIPp, one scenario for both flows): INVITE with SDP offering PCMA and
telephone-event, 200, ACK; 1 s of the main menu's prompt; the key 1 as RFC 2833 events
(Debian's dtmf_2833_1.pcap, 140 ms); 1 s of the next prompt; BYE. Flows:

- astpbx: trunk `rt` (identified by the first SIPp's port), the generated context hands the
  call to the engine (`astpbx run` in a subprocess, restarted for every step): menu 90000's
  prompt, key 1 barges in, menu 91000's prompt.
- plain: the same prompts (the engine's cached TTS files) in plain dialplan: Answer,
  Background, WaitExten; key 1: Log, Playback, Hangup. Wiring: a second trunk `plain` in the
  config (its port: the second SIPp's), so that `astpbx apply` generates its PJSIP endpoint
  and host:port identify as for `rt`; its calls arrive in the generated context
  astpbx-trunk-plain, which matches only numbers starting with a digit, `*`, `#` or `+`.
  The plain SIPp dials `bench` (letters), which extensions_local.conf (in the sandbox's
  custom dir, included after extensions_astpbx.conf; Asterisk merges a context declared
  twice) adds to astpbx-trunk-plain as a Goto to its own context bench-plain. Nothing that
  apply writes is edited, and the engine never sees these calls.

Steps: for each rate of --rates, --calls calls at that rate (SIPp -r, at most --limit at a
time), first astpbx, then plain. Printed per (flow, rate):
- placed: the rate SIPp really placed the calls at (first to last INVITE on the wire);
- calls ok / failed (ok: SIPp completed the scenario and the call took its path: the
  engine's call log has 90000 → 91000, or Asterisk logged plain's key 1; the smaller count);
- CPU ms per call (utime+stime over the step / calls) of the engine and of Asterisk, each
  minus its idle rate measured just before the step, their sum, and SIPp's;
- p50/p99 INVITE→200: first INVITE to first 200 per Call-ID, captured on the loopback by
  dumpcap (kernel timestamps; SIPp's own -trace_rtt figures, whole ms in 4 ms ticks, only
  without dumpcap);
- p50/p99 key→next prompt: the engine's `metrics key_to_action` line (a key's arrival →
  its next ARI request, the play of the next prompt), none for plain dialplan.
Then, per flow, the highest rate up to which every step kept up (0 failures, placed at
≥ 90 % of the rate), and the targets with PASS/MISS: astpbx sustains ≥ 80 % of plain's
highest rate; engine+Asterisk CPU per call ≤ 1.3 × plain's Asterisk CPU at 40 calls/s (or
the highest common rate); p99 key→next prompt ≤ 20 ms and INVITE→200 p99 ≤ 3 × plain's at
every rate up to astpbx's highest (all rates if none). Asterisk's warnings and errors in
each step are counted by kind; "Playback failed" from res_stasis_playback is expected once
per astpbx call: the caller's BYE cuts the second prompt short. A bench, not a test: it
exits 0 unless setup fails.

Setup: a temp config (bench/calls.py: examples/mfc's IVR, espeak, SQLite, free ports),
`astpbx sandbox up` (one config per root: set ASTPBX_SANDBOX_ROOT if the default root runs
another), `astpbx apply`, warm-up calls on both trunks (they synthesize the prompts). Needs
root, SIPp (Debian's sip-tester) and dumpcap (Wireshark's, optional).

Run:  .venv/bin/python bench/sip.py [--rates 10,20,40,80] [--calls 200] [--limit 300] [--keep]
"""

from __future__ import annotations

import os
import sys

# The project root instead of bench/ (the script's directory) on sys.path, for `bench.calls`.
sys.path.remove(os.path.dirname(os.path.realpath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.realpath(__file__))))

import argparse
import contextlib
import csv
import re
import resource
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import tempfile
import textwrap
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ast_pbx.config.configuration import Config
from ast_pbx.lint.linter import load_for_use
from ast_pbx.sandbox.settings import DEFAULT_ROOT, MESSAGES_LOG, ROOT_ENV
from ast_pbx.storage.calls import CallLog
from ast_pbx.storage.db import open_database
from bench.calls import (
    PATH,
    asterisk_pid,
    astpbx,
    cpu_ms,
    free_port,
    log_problems,
    prompt_file,
    reload_dialplan,
    start_engine,
    stop_engine,
    write_config,
)

SIPP = shutil.which("sipp") or "/usr/bin/sipp"
DUMPCAP = shutil.which("dumpcap")  # Wireshark's; without it, SIPp's response times
KEY_PCAP = Path("/usr/share/sip-tester/dtmf_2833_1.pcap")  # key 1, 140 ms
HEAR_MS = 1000  # of each prompt
KEY_MS = 140
PLAIN_NUMBER = "bench"  # letters: the generated trunk context does not match it
PLAIN_CONTEXT = "bench-plain"
PLAIN_MARK = "bench-plain key 1"  # Asterisk's NOTICE when plain dialplan takes the key
FLOWS = ("astpbx", "plain")
IDLE_SECONDS = 5.0  # Asterisk's idle rate, before every step
SETTLE = 1.0  # after SIPp: Asterisk tears down, the engine writes its call log
RECV_TIMEOUT_MS = 10_000  # SIPp: a response or request not received by then fails the call
WARM_UP_CALLS = 3
# "[Dec  3 09:57:26] WARNING[8945][C-00000007] res_stasis_playback.c: 1796291844.6: ..."
WARNING = re.compile(r"^\[[^]]*\] (WARNING|ERROR)\[\d+\](?:\[[^]]*\])? (.*)$")
CHANNEL = re.compile(r"\b\d{9,}\.\d+\b(: )?|PJSIP/\S+?-[0-9a-f]{8}\b")  # channel ids and names
KEPT_UP = 0.9  # of the rate SIPp must have placed the calls at, for a step to count
CPU_RATE, CPU_LIMIT, INVITE_LIMIT, KEY_LIMIT_MS, SUSTAIN = 40.0, 1.3, 3.0, 20.0, 0.8


# --- SIPp ---------------------------------------------------------------------------


def _headers(cseq: int, method: str) -> str:
    return textwrap.dedent(f"""\
        Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
        From: "bench" <sip:+7901[call_number]@[local_ip]:[local_port]>;tag=[pid]b[call_number]
        To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
        Call-ID: [call_id]
        CSeq: {cseq} {method}
        Contact: <sip:bench@[local_ip]:[local_port]>
        Max-Forwards: 70
        User-Agent: SIPp (astpbx bench)""")


def _send(method: str, cseq: int, body: str = "") -> str:
    kind = "Content-Type: application/sdp\n" if body else ""
    text = (
        f"{method} sip:[service]@[remote_ip]:[remote_port] SIP/2.0\n"
        f"{_headers(cseq, method)}\n{kind}Content-Length: [len]\n\n{body}"
    )
    retrans = ' retrans="500"' if method != "ACK" else ""
    return f"<send{retrans}><![CDATA[\n{text}\n]]></send>"


SDP = """\
v=0
o=sipp 1 1 IN IP4 [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 8 101
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=sendrecv
"""


def scenario() -> str:
    """One call: INVITE → 200 (its response time), ACK, a prompt, key 1, a prompt, BYE."""
    steps = [
        _send("INVITE", 1, SDP),
        '<recv response="100" optional="true"/>',
        '<recv response="180" optional="true"/>',
        '<recv response="183" optional="true"/>',
        '<recv response="200" rtd="true"/>',
        _send("ACK", 1),
        f'<pause milliseconds="{HEAR_MS}"/>',
        f'<nop><action><exec play_pcap_audio="{KEY_PCAP}"/></action></nop>',
        f'<pause milliseconds="{KEY_MS + HEAR_MS}"/>',
        _send("BYE", 2),
        '<recv response="200"/>',
    ]
    body = "\n".join(steps)
    return f'<?xml version="1.0"?>\n<scenario name="bench">\n{body}\n</scenario>\n'


@dataclass(frozen=True)
class SippRun:
    successful: int
    failed: int
    invite_ms: tuple[float, ...]  # INVITE → 200 of each call that got its 200
    errors: tuple[str, ...]  # SIPp's error log, its lines
    cpu_ms: float  # SIPp's own


def run_sipp(
    workdir: Path, target: str, port: int, *, number: str, calls: int, rate: float, limit: int
) -> SippRun:
    """`calls` calls to `number` at `rate` calls/s from 127.0.0.1:`port`; SIPp's figures."""
    path = workdir / "bench.xml"
    path.write_text(scenario(), encoding="utf-8")
    command = [
        SIPP, target, "-sf", str(path), "-s", number, "-i", "127.0.0.1",
        "-p", str(port), "-mp", str(free_port(socket.SOCK_DGRAM)),
        "-cp", str(free_port(socket.SOCK_DGRAM)),
        "-m", str(calls), "-r", f"{rate:g}", "-l", str(limit),
        "-recv_timeout", str(RECV_TIMEOUT_MS), "-timeout", f"{round(calls / rate + 120)}s",
        "-trace_stat", "-fd", "1", "-trace_rtt", "-rtt_freq", "1", "-trace_err",
        "-error_file", str(workdir / "errors.log"), "-nostdin",
    ]  # fmt: skip
    before = _children_cpu_ms()
    with open(workdir / "screen.txt", "w", encoding="utf-8") as screen:
        subprocess.run(
            command, cwd=workdir, stdout=screen, stderr=subprocess.STDOUT, check=False,
            timeout=calls / rate + 180,
        )  # fmt: skip
    used = _children_cpu_ms() - before
    successful, failed = _sipp_counts(workdir)
    errors = workdir / "errors.log"
    lines = errors.read_text(errors="replace").splitlines() if errors.exists() else []
    return SippRun(successful, failed, _rtt(workdir), tuple(lines), used)


def _children_cpu_ms() -> float:
    """utime + stime of the children waited for (here: each SIPp, once it exits)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (usage.ru_utime + usage.ru_stime) * 1000


def _sipp_counts(workdir: Path) -> tuple[int, int]:
    """SuccessfulCall(C) and FailedCall(C) of the statistics file's last line."""
    found = [p for p in workdir.glob("bench_*_.csv")]
    if not found:
        raise SystemExit(f"SIPp wrote no statistics:\n{(workdir / 'screen.txt').read_text()}")
    with found[0].open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter=";"))
    last = rows[-1]
    return int(last["SuccessfulCall(C)"]), int(last["FailedCall(C)"])


def _rtt(workdir: Path) -> tuple[float, ...]:
    """Response times (ms) of the rtt file: lines `date_ms;response_time_ms;rtd_no`."""
    times = []
    for path in workdir.glob("bench_*_rtt.csv"):
        for line in path.read_text(encoding="utf-8").splitlines()[1:]:
            parts = line.split(";")
            if len(parts) >= 2:
                times.append(float(parts[1]))
    return tuple(times)


# --- INVITE → 200 on the wire -------------------------------------------------------


class Capture:
    """dumpcap on the loopback, SIP to and from Asterisk's port only, as a libpcap file:
    kernel timestamps in µs (SIPp's own response times are whole ms of its 4 ms ticks)."""

    def __init__(self, path: Path, sip_port: int) -> None:
        self.path = path
        self.log = path.with_suffix(".log")
        self.process: subprocess.Popen[bytes] | None = None
        if DUMPCAP is None:
            return
        command = [DUMPCAP, "-i", "lo", "-f", f"udp port {sip_port}", "-P", "-q", "-w", str(path)]
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log
            )
        deadline = time.monotonic() + 10
        while not (path.exists() and path.stat().st_size >= 24):  # the file header: capturing
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise SystemExit(f"dumpcap did not start: {self.log.read_text(errors='replace')}")
            time.sleep(0.05)

    def stop(self) -> Wire | None:
        """What it saw (None: no dumpcap)."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return invite_times(self.path) if self.path.exists() else Wire((), ())


def pcap_payloads(path: Path) -> list[tuple[float, bytes]]:
    """(time, UDP payload) of each packet of a libpcap file of Ethernet frames (`lo`)."""
    data, packets, offset = path.read_bytes(), [], 24
    while offset + 16 <= len(data):
        seconds, micros, length, _ = struct.unpack_from("<IIII", data, offset)
        frame = data[offset + 16 : offset + 16 + length]
        offset += 16 + length
        if len(frame) > 34 and frame[12:14] == b"\x08\x00" and frame[23] == 17:  # IPv4 UDP
            udp = 14 + (frame[14] & 0x0F) * 4
            packets.append((seconds + micros / 1e6, frame[udp + 8 :]))
    return packets


@dataclass(frozen=True)
class Wire:
    """What the capture saw of a step's calls."""

    invite_ms: tuple[float, ...]  # first INVITE → first 200 to it, of each call answered
    sent: tuple[float, ...]  # when each call's first INVITE went out, in order

    @property
    def rate(self) -> float | None:
        """Calls/s as SIPp really placed them (SIPp falls behind when starved of CPU, and
        holds new calls back at -l)."""
        if len(self.sent) < 2 or self.sent[-1] == self.sent[0]:
            return None
        return (len(self.sent) - 1) / (self.sent[-1] - self.sent[0])


def invite_times(path: Path) -> Wire:
    """Each call's first INVITE and the ms to its first 200 to that INVITE, by Call-ID."""
    invites: dict[str, float] = {}
    answers: dict[str, float] = {}
    for at, payload in pcap_payloads(path):
        text = payload.decode("utf-8", errors="replace")
        call = re.search(r"^(?:Call-ID|i):\s*(\S+)", text, re.MULTILINE | re.IGNORECASE)
        if call is None:
            continue
        if text.startswith("INVITE "):
            invites.setdefault(call.group(1), at)
        elif text.startswith("SIP/2.0 200") and re.search(r"^CSeq:\s*1 INVITE", text, re.M):
            answers.setdefault(call.group(1), at)
    return Wire(
        tuple((answers[call] - sent) * 1000 for call, sent in invites.items() if call in answers),
        tuple(sorted(invites.values())),
    )


# --- steps --------------------------------------------------------------------------


@dataclass(frozen=True)
class Measured:
    """One SIPp run and the processes around it."""

    sipp: SippRun
    wire: Wire | None  # what the capture saw; None: no dumpcap
    seconds: float  # SIPp's run and SETTLE
    cpu_ms: dict[str, float]  # by process, over those seconds
    idle_ms_per_s: dict[str, float]  # by process, just before
    asterisk_log: tuple[str, ...]  # the lines Asterisk's messages log gained


@dataclass(frozen=True)
class Step:
    flow: str
    rate: float
    calls: int
    measured: Measured
    took_path: int  # astpbx: call log 90000 → 91000; plain: Asterisk logged the key
    latency: dict[str, float] = field(default_factory=dict)  # the engine's key_to_action
    problems: tuple[str, ...] = ()  # errors and exceptions in the engine's log

    @property
    def sipp(self) -> SippRun:
        return self.measured.sipp

    @property
    def ok(self) -> int:
        return min(self.sipp.successful, self.took_path)

    @property
    def failed(self) -> int:
        return self.calls - self.ok

    def cpu(self, who: str) -> float | None:
        """CPU ms per call of a process, minus its idle rate."""
        m = self.measured
        if who not in m.cpu_ms:
            return None
        return (m.cpu_ms[who] - m.idle_ms_per_s.get(who, 0.0) * m.seconds) / self.calls

    @property
    def total(self) -> float:
        return sum(self.cpu(who) or 0.0 for who in ("asterisk", "engine"))

    def invite(self, quantile: float) -> float | None:
        wire = self.measured.wire
        return percentile(self.sipp.invite_ms if wire is None else wire.invite_ms, quantile)

    @property
    def placed(self) -> float | None:
        """The rate SIPp achieved, calls/s (None: not captured)."""
        return None if self.measured.wire is None else self.measured.wire.rate

    @property
    def kept_up(self) -> bool:
        """No call failed and SIPp placed them at ≥ KEPT_UP of the rate (if captured)."""
        placed = self.placed
        return self.failed == 0 and (placed is None or placed >= KEPT_UP * self.rate)

    @property
    def warnings(self) -> tuple[str, ...]:
        """Asterisk's WARNING and ERROR lines, without time, thread and channel."""
        found = (WARNING.match(line) for line in self.measured.asterisk_log)
        return tuple(f"{m[1]} {CHANNEL.sub('', m[2])}" for m in found if m)


def percentile(values: Sequence[float], quantile: float) -> float | None:
    """As the engine's metrics: the value at round(q·(n-1)) of the sorted values."""
    if not values:
        return None
    ordered = sorted(values)
    if quantile == 0.5:
        return float(statistics.median(ordered))
    return ordered[min(len(ordered) - 1, round(quantile * (len(ordered) - 1)))]


@dataclass(frozen=True)
class Bench:
    """What every step needs: the config, the temp dir, the SIP target and trunk ports."""

    base: Path
    config: Config
    target: str  # HOST:PORT of Asterisk's PJSIP transport
    ports: dict[str, int]  # SIPp's local port by flow: the trunk's identify
    limit: int

    @property
    def messages(self) -> Path:
        return Path(os.environ.get(ROOT_ENV, DEFAULT_ROOT) + MESSAGES_LOG)


class AsteriskLog:
    """The lines Asterisk's messages log gained since this was made."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.start = path.stat().st_size if path.exists() else 0

    def lines(self) -> list[str]:
        with self.path.open("rb") as handle:
            handle.seek(self.start)
            return handle.read().decode(errors="replace").splitlines()


def measure(
    bench: Bench, flow: str, rate: float, calls: int, *, pids: dict[str, int], tag: str
) -> Measured:
    """Each process's idle rate, then SIPp's calls with the CPU around them."""
    idle_start = {name: cpu_ms(pid) for name, pid in pids.items()}
    time.sleep(IDLE_SECONDS)
    idle = {name: (cpu_ms(pid) - idle_start[name]) / IDLE_SECONDS for name, pid in pids.items()}
    workdir = bench.base / f"sipp-{flow}-{tag}"
    workdir.mkdir()
    capture = Capture(workdir / "sip.pcap", int(bench.target.rpartition(":")[2]))
    log = AsteriskLog(bench.messages)
    before = {name: cpu_ms(pid) for name, pid in pids.items()}
    started = time.perf_counter()
    try:
        sipp = run_sipp(
            workdir, bench.target, bench.ports[flow],
            number=PATH[0] if flow == "astpbx" else PLAIN_NUMBER,
            calls=calls, rate=rate, limit=bench.limit,
        )  # fmt: skip
        time.sleep(SETTLE)
        seconds = time.perf_counter() - started
        used = {name: cpu_ms(pid) - before[name] for name, pid in pids.items()}
    finally:
        wire = capture.stop()
    used["sipp"] = sipp.cpu_ms
    return Measured(sipp, wire, seconds, used, idle, tuple(log.lines()))


def astpbx_step(bench: Bench, rate: float, calls: int, tag: str) -> Step:
    """One step through a fresh engine: SIPp's calls, then the call log, latency, problems."""
    log = bench.base / f"engine-{tag}.log"
    database = open_database(bench.config.system.database_url)
    try:
        database.migrate()
        after = CallLog(database).last_id()
        engine = start_engine(bench.base / "config", log)
        try:
            pids = {"asterisk": asterisk_pid(bench.config), "engine": engine.pid}
            measured = measure(bench, "astpbx", rate, calls, pids=pids, tag=tag)
        finally:
            latency = stop_engine(engine, log)
        took = sum(c.path == PATH for c in CallLog(database).logged_after(after))
    finally:
        database.dispose()
    return Step("astpbx", rate, calls, measured, took, latency, log_problems(log))


def plain_step(bench: Bench, rate: float, calls: int, tag: str) -> Step:
    pids = {"asterisk": asterisk_pid(bench.config)}
    measured = measure(bench, "plain", rate, calls, pids=pids, tag=tag)
    took = sum(PLAIN_MARK in line for line in measured.asterisk_log)
    return Step("plain", rate, calls, measured, took)


def write_plain_dialplan(config: Config) -> None:
    """extensions_local.conf: `bench` on the plain trunk → the prompts in plain dialplan."""
    first, second = (prompt_file(config, number).with_suffix("") for number in PATH)
    local = Path(config.system.asterisk_config_dir, "extensions_local.conf")
    local.write_text(
        "; bench/sip.py: the plain-dialplan anchor (the trunk `plain` dials `bench`)\n"
        f"[astpbx-trunk-plain]\nexten => {PLAIN_NUMBER},1,Goto({PLAIN_CONTEXT},90000,1)\n\n"
        f"[{PLAIN_CONTEXT}]\nexten => 90000,1,Answer()\n same => n,Background({first})\n"
        " same => n,WaitExten(15)\n same => n,Hangup()\n"
        f"exten => 1,1,Log(NOTICE,{PLAIN_MARK})\n same => n,Playback({second})\n"
        " same => n,Hangup()\n",
        encoding="utf-8",
    )
    reload_dialplan(config)


def write_trunks(config_dir: Path, ports: dict[str, int]) -> None:
    """trunks.yaml: `rt` (to the engine) and `plain` (the anchor), each on SIPp's port."""
    (config_dir / "trunks.yaml").write_text(
        "trunks:\n"
        f"  - {{name: rt, match: '\\+?\\d{{7,}}', inbound: \"90000\", external: true,"
        f" host: 127.0.0.1, port: {ports['astpbx']}, dtmf: rfc4733}}\n"
        f"  - {{name: plain, external: true, host: 127.0.0.1, port: {ports['plain']},"
        " dtmf: rfc4733}\n",
        encoding="utf-8",
    )


# --- the report ---------------------------------------------------------------------

ROW = "{:<7}{:>5}{:>7}{:>5}{:>7}{:>8}{:>9}{:>7}{:>6}{:>8}{:>8}{:>8}{:>8}"
HEADER = (
    "flow", "rate", "placed", "ok", "failed", "engine", "Asterisk", "sum", "SIPp",
    "inv p50", "inv p99", "key p50", "key p99",
)  # fmt: skip


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def row(step: Step) -> str:
    return ROW.format(
        step.flow, f"{step.rate:g}", "-" if step.placed is None else f"{step.placed:.1f}",
        step.ok, step.failed, _ms(step.cpu("engine")), _ms(step.cpu("asterisk")),
        _ms(step.total), f"{step.cpu('sipp'):.1f}", _ms(step.invite(0.5)),
        _ms(step.invite(0.99)), _ms(step.latency.get("p50_ms")), _ms(step.latency.get("p99_ms")),
    )  # fmt: skip


def sustained(steps: list[Step]) -> float:
    """The highest rate up to which every step kept up (no failure, SIPp placed the calls at
    the rate); 0 if the first did not."""
    best = 0.0
    for step in sorted(steps, key=lambda s: s.rate):
        if not step.kept_up:
            break
        best = step.rate
    return best


Target = tuple[bool, str]


def rate_target(steps: dict[str, list[Step]]) -> Target:
    mine, plain = sustained(steps["astpbx"]), sustained(steps["plain"])
    return (
        mine > 0 and mine >= SUSTAIN * plain,
        f"astpbx sustains ≥ {SUSTAIN:.0%} of plain's highest rate: {mine:g}/s vs {plain:g}/s",
    )


def cpu_target(mine: dict[float, Step], plain: dict[float, Step]) -> Target:
    common = [rate for rate in mine if rate in plain]
    at = CPU_RATE if CPU_RATE in common else max(common)
    total, anchor = mine[at].total, plain[at].cpu("asterisk") or 0.0
    limit = CPU_LIMIT * anchor
    return (
        total <= limit,
        f"engine+Asterisk CPU per call ≤ {CPU_LIMIT:g} × plain's Asterisk at {at:g}/s: "
        f"{total:.2f} ms vs {CPU_LIMIT:g} × {anchor:.2f} = {limit:.2f} ms",
    )


def key_target(upto: list[Step]) -> Target:
    worst = max((s.latency.get("p99_ms", 1e9) for s in upto), default=1e9)
    return (
        worst <= KEY_LIMIT_MS,
        f"p99 key→next prompt ≤ {KEY_LIMIT_MS:g} ms at every rate up to {upto[-1].rate:g}/s:"
        f" worst {worst:.2f} ms",
    )


def invite_target(upto: list[Step], plain: dict[float, Step]) -> Target:
    pairs = [(s.rate, s.invite(0.99), plain[s.rate].invite(0.99)) for s in upto if s.rate in plain]
    met = bool(pairs) and all(
        a is not None and p is not None and a <= INVITE_LIMIT * p for _, a, p in pairs
    )
    text = ", ".join(f"{rate:g}/s {_ms(a)} vs {_ms(p)}" for rate, a, p in pairs)
    return met, f"INVITE→200 p99 ≤ {INVITE_LIMIT:g} × plain's, ms astpbx vs plain: {text}"


def targets(steps: dict[str, list[Step]]) -> list[Target]:
    """Up to astpbx's highest sustained rate (all rates when it sustained none)."""
    mine = {s.rate: s for s in steps["astpbx"]}
    plain = {s.rate: s for s in steps["plain"]}
    highest = sustained(steps["astpbx"]) or max(mine)
    upto = [mine[rate] for rate in sorted(mine) if rate <= highest]
    return [
        rate_target(steps),
        cpu_target(mine, plain),
        key_target(upto),
        invite_target(upto, plain),
    ]


def report(steps: dict[str, list[Step]]) -> None:
    """Below the table (its rows are printed as the steps end): notes, rates, targets."""
    wire = "captured by dumpcap" if DUMPCAP else "SIPp's, whole ms"
    print(
        "rate: calls/s asked of SIPp, placed: as it placed them (first to last INVITE);\n"
        "ok/failed: calls; engine, Asterisk, sum, SIPp: CPU ms per call (engine and Asterisk\n"
        f"minus their idle rates); inv: INVITE→200 ms ({wire}); key: the engine's\n"
        "key→next ARI request ms (`metrics key_to_action`)"
    )
    for step in steps["astpbx"][:1] + steps["plain"][:1]:
        idle = step.measured.idle_ms_per_s
        print(f"idle CPU before {step.flow} at {step.rate:g}/s, ms/s: " + ", ".join(
            f"{who} {value:.2f}" for who, value in idle.items()
        ))  # fmt: skip
    for flow, found in steps.items():
        print(
            f"highest rate with 0 failures, placed at ≥ {KEPT_UP:.0%} of it (and so every rate"
            f" below), {flow}: {sustained(found):g}/s"
        )
    print("\ntargets:")
    for met, text in targets(steps):
        print(f"  {'PASS' if met else 'MISS'}  {text}")
    for found in steps.values():
        for step in found:
            problems(step)


def problems(step: Step) -> None:
    """Why calls failed, the engine's errors, Asterisk's warnings (counted by kind)."""
    name = f"{step.flow} at {step.rate:g}/s"
    if step.failed:
        print(
            f"\n{name}: {step.failed} failed (SIPp: {step.sipp.successful} ok,"
            f" {step.sipp.failed} failed; {step.took_path} took the path)"
        )
        for line in list(dict.fromkeys(step.sipp.errors))[:6]:
            print(f"  SIPp: {line[:200]}")
    for title, lines in (("engine log", step.problems), ("Asterisk log", step.warnings)):
        if lines:
            print(f"{name}, {title}: {len(lines)} errors/warnings:")
            for line, count in Counter(lines).most_common(4):
                print(f"  {count} × {line[:240]}")


# --- main ---------------------------------------------------------------------------


def warm_up(bench: Bench) -> None:
    """A few calls on each trunk: the engine synthesizes the prompts, plain needs them."""
    first = astpbx_step(bench, 1.0, WARM_UP_CALLS, "warm-up")
    if first.ok == 0:
        raise SystemExit(f"no warm-up call took the engine's path: {first}")
    write_plain_dialplan(bench.config)
    second = plain_step(bench, 1.0, WARM_UP_CALLS, "warm-up")
    if second.ok == 0:
        raise SystemExit(f"no warm-up call took the plain dialplan's path: {second}")
    print(f"warm-up: {first.ok}/{WARM_UP_CALLS} astpbx, {second.ok}/{WARM_UP_CALLS} plain\n")


def bench(args: argparse.Namespace, base: Path) -> None:
    config_dir = write_config(base)
    ports = {flow: free_port(socket.SOCK_DGRAM) for flow in FLOWS}
    write_trunks(config_dir, ports)
    with (config_dir / "system.yaml").open("a", encoding="utf-8") as system:
        system.write(f'  http: {{listen: "127.0.0.1:{free_port()}"}}\n')  # not the default 8080
    config = load_for_use(str(config_dir)).config
    out = astpbx("sandbox", "up", str(config_dir))
    astpbx("apply", str(config_dir))
    state = Bench(base, config, config.system.asterisk_sip, ports, args.limit)
    version = re.search(r"Asterisk ([^)\s]+)", out)
    root = os.environ.get(ROOT_ENV, DEFAULT_ROOT)
    print(f"Asterisk {version.group(1) if version else '?'} in {root}; {os.cpu_count()} cores")
    print(
        f"per call: INVITE, {HEAR_MS} ms of the prompt, key 1 (RFC 2833), {HEAR_MS} ms of the"
        f" next prompt, BYE; {args.calls} calls per step, at most {args.limit} at a time"
    )
    warm_up(state)
    steps: dict[str, list[Step]] = {flow: [] for flow in FLOWS}
    print(ROW.format(*HEADER))
    for rate in args.rates:
        tag = f"{rate:g}"
        steps["astpbx"].append(astpbx_step(state, rate, args.calls, tag))
        steps["plain"].append(plain_step(state, rate, args.calls, tag))
        print(row(steps["astpbx"][-1]), row(steps["plain"][-1]), sep="\n", flush=True)
    report(steps)


def rates(text: str) -> list[float]:
    return [float(part) for part in text.split(",") if part.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rates", type=rates, default=[10.0, 20.0, 40.0, 80.0])
    parser.add_argument("--calls", type=int, default=200, help="calls per step (200)")
    parser.add_argument("--limit", type=int, default=300, help="SIPp's -l: calls at once")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("needs root: the Asterisk sandbox runs under chroot")
    if not KEY_PCAP.exists() or not os.path.exists(SIPP):
        raise SystemExit(f"needs SIPp and {KEY_PCAP} (Debian's sip-tester)")
    base = Path(tempfile.mkdtemp(prefix="astpbx-bench-sip-"))
    try:
        bench(args, base)
    finally:
        with contextlib.suppress(SystemExit):
            astpbx("sandbox", "down", str(base / "config"))
        if args.keep:
            print(f"kept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
