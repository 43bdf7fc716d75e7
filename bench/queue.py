"""Benchmark a queue under load, callers waiting for operators on the Asterisk sandbox,
against the same load through Asterisk's own app_queue.

One queue (94000) of --operators members, phones 3001…; each is a Local channel scripted in
the dialplan: it rings, answers, talks, hangs up (--silent of them ring and never answer,
so that ring_timeout moves on). --callers callers arrive at random over --spread s (a
seeded RNG: --seed), each waits in the queue until answered, and the call ends when the
operator hangs up. How long a caller's operator lets it ring (0-2 s) and talks (2-8 s) is
drawn by the same RNG and handed to the dialplan in the caller's number, so that a seed
gives the same workload every time. Any caller not done after --limit s is lost.

The engine runs in this process (tests/live_engine.py), its `Queues` wrapped: how often
each call got a member connected, and whether a member was rung or connected while it was
answering another caller or talking. Afterwards the call log and the queue statistics must
say, for every caller, one wait `answered` by a member and "answered by 30NN", no member in
two conversations at once, and the engine and Asterisk must hold no call any more.

The anchor (--no-anchor skips it), after the engine's load, the engine stopped and its
dialplan gone: the same callers (same seed, so the same arrivals and numbers, hence the same
rings and talks of the operators) dial Local/94000@bench-app-queue from the same ARI app
(alaw), whose dialplan does Answer() and Queue(94000,r): ringing while they wait, as the
engine's queue without a playlist. app_queue's 94000 has the same members, the same
Local/30NN@astpbx-bench-phones scripts, strategy `linear` (the engine rings the first free
member not yet tried, in the config's order; `ringall` when ring_at_once covers them all;
app_queue has no "n at once"), timeout = ring_timeout, retry 1 s (the least it takes),
ringinuse no, autofill, wrapuptime 0, nothing announced. That section is written to the
bench's own custom dir (queues_astpbx_bench.conf) and `#tryinclude`d from the root's
queues.conf for the run, written back as it was afterwards; app_queue and pbx_config are
reloaded over ARI (PUT /asterisk/modules/…). Its figures come from its queue_log (whole
seconds): answered (one CONNECT, then COMPLETEAGENT: the operator hung up), rings, waits,
talks, members connected while talking.

Printed, for each: callers, answered, lost, bridged twice, members rung, mean/max wait, mean
talk, engine CPU ms per call (this process's CPU minus the main thread's, where the callers
run: the engine's thread and its database writers; over the load / callers), Asterisk's
(utime+stime of its pid), its idle rate (over --idle s before each load, the callers
connected) and its CPU per call minus that rate, wall time, the checks, and the engine's
warnings; then the target: engine + Asterisk CPU per queued call ≤ 1.5 × app_queue's
Asterisk CPU per queued call (Asterisk's minus idle on both sides), PASS/MISS with the
figures. Exits 1 if a check of the engine's run fails (not for the target, nor for the
anchor's checks). Setup: a temp config, SQLite, free ports, `astpbx sandbox up` (one config
per root: set ASTPBX_SANDBOX_ROOT if the default root runs another), `astpbx apply`. Needs
root; takes about three minutes.

Run:  .venv/bin/python bench/queue.py [--callers 50] [--operators 10] [--seed 1] [--keep]
          [--idle 10] [--no-anchor]
"""

from __future__ import annotations

import os
import sys

# A script's directory leads sys.path, where this file would stand in for the standard
# library's `queue` (asyncio imports it): the project root instead, for `bench` (the helpers
# of bench/calls.py) and `tests` (the in-process engine, the callers).
sys.path.remove(os.path.dirname(os.path.realpath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.realpath(__file__))))

import argparse
import asyncio
import contextlib
import logging
import random
import re
import shutil
import socket
import tempfile
import textwrap
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from statistics import fmean

from ast_pbx import sandbox as box
from ast_pbx.ari import AriError
from ast_pbx.engine.engine import Engine
from ast_pbx.engine.queues import Queues
from ast_pbx.lint.linter import load_for_use
from ast_pbx.storage.calls import CallLog
from ast_pbx.storage.db import open_database
from ast_pbx.storage.queues import ANSWERED, QueueCallRecord, QueueStats
from bench.calls import asterisk_pid, astpbx, cpu_ms, free_port
from tests.live_engine import Callers, LiveEngine
from tests.sandbox_fixture import SandboxInfo

QUEUE = "94000"
APP = "astpbx-bench"
PASSWORD = "bench-phone-secret"
PHONES = "astpbx-bench-phones"  # the operators' dialplan context
RING, TALK = (0.0, 2.0), (2.0, 8.0)  # seconds an operator rings, talks; in tenths
LOG_FORMAT = "%(asctime)s %(threadName)s %(levelname)s %(name)s: %(message)s"
SETTLE = 1.0  # after the last call: the engine writes its ends, Asterisk tears down
# The statistics' end of a talk is stamped once the engine has torn the bridge down, while
# the member is free again as soon as they hang up: their next answer may come first.
SKEW = 0.5  # seconds of overlap in the statistics taken for that, not for two talks at once


@dataclass(frozen=True)
class Caller:
    index: int
    at: float  # seconds after the start of the load
    ring: float  # how long the operator who answers lets it ring
    talk: float  # how long that operator talks

    @property
    def number(self) -> str:
        """+79 IIIRRTTT: index, ring and talk in tenths of a second, for the dialplan."""
        return f"+79{self.index:03d}{round(self.ring * 10):02d}{round(self.talk * 10):03d}"


@dataclass(frozen=True)
class Outcome:
    caller: Caller
    call: str | None  # the engine's call id; None: not placed (see `error`)
    ended: bool  # the operator hung up within the run
    error: str = ""


@dataclass
class Watch:
    """What the engine's queues did, seen in the engine's thread by wrapping `Queues`."""

    connects: Counter[str] = field(default_factory=Counter)  # call → members connected
    rings: int = 0
    double_booked: list[str] = field(default_factory=list)

    def install(self, queues: Queues) -> None:
        connect, ring, answered = queues._connect, queues._ring, queues.answered
        picked_up: set[str] = set()  # members' channels that answered

        def counted_connect(call: str, member: str) -> None:
            waiting = call in queues.calls  # else `_connect` only drops the ringing channel
            busy_on = queues.talking.get(member)
            connect(call, member)
            if waiting:
                self.connects[call] += 1
                if busy_on is not None and busy_on != call:
                    self.double_booked.append(
                        f"{member} connected to {call} while talking on {busy_on}"
                    )

        async def counted_ring(number: str, call: str, member: str) -> None:
            self.rings += 1
            busy_on = queues.talking.get(member)
            answering = [
                c for ch, (c, m) in queues.ringing.items() if m == member and ch in picked_up
            ]
            if busy_on is not None or answering:
                on = f"talking on {busy_on}" if busy_on else f"answering {', '.join(answering)}"
                self.double_booked.append(f"{member} rung for {call} while {on}")
            await ring(number, call, member)

        def noted_answer(channel: str) -> None:
            picked_up.add(channel)
            answered(channel)

        queues._connect = counted_connect  # type: ignore[method-assign]
        queues._ring = counted_ring  # type: ignore[method-assign]
        queues.answered = noted_answer  # type: ignore[method-assign]


@dataclass(frozen=True)
class Load:
    outcomes: list[Outcome]
    seconds: float  # wall time, first call to last end
    engine_ms: float  # CPU over the load
    asterisk_ms: float
    channels_left: list[str]  # in Asterisk after the load
    idle_ms_per_s: float = 0.0  # Asterisk's CPU rate just before the load, callers connected
    window: float = 0.0  # seconds over which the CPU was taken: the load and SETTLE

    @property
    def asterisk_busy_ms(self) -> float:
        """Asterisk's CPU over the load minus what it spends idle in as long."""
        return self.asterisk_ms - self.idle_ms_per_s * self.window


class Problems(logging.Handler):
    """Warnings and errors logged outside the main thread (where the callers run)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.found: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread != threading.main_thread().ident:
            self.format(record)  # fills exc_text
            last = (record.exc_text or "").rpartition("\n")[2]
            self.found.append(f"{record.levelname} {record.name}: {record.getMessage()} {last}")


def sandbox_info(base: Path) -> SandboxInfo:
    return SandboxInfo(
        config_dir=base / "config",
        ari_url=f"http://127.0.0.1:{free_port()}",
        username="bench",
        password="bench-ari-secret",
        app=APP,
        sip=f"127.0.0.1:{free_port(socket.SOCK_DGRAM)}",
        data_dir=base / "data",
        asterisk_config_dir=base / "asterisk",
        root=box.root_path(),
    )


def operators(args: argparse.Namespace) -> list[str]:
    return [str(3001 + index) for index in range(args.operators)]


def write_config(info: SandboxInfo, base: Path, args: argparse.Namespace) -> Path:
    info.config_dir.mkdir()
    dial = f'phone_dial: "Local/{{number}}@{PHONES}", presence: always'
    (info.config_dir / "system.yaml").write_text(info.system_yaml(base, dial), encoding="utf-8")
    phones = "".join(f'  - {{number: "{p}", password: "{PASSWORD}"}}\n' for p in operators(args))
    (info.config_dir / "pbx.yaml").write_text(
        f"phones:\n{phones}queues:\n"
        f'  - number: "{QUEUE}"\n    members: {operators(args)}\n'
        f"    ring_at_once: {args.ring_at_once}\n    ring_timeout: {args.ring_timeout:g}\n",
        encoding="utf-8",
    )
    return info.config_dir


def dialplan(args: argparse.Namespace) -> str:
    """Operators ring and talk as long as the caller's number says; the silent never answer."""
    silent = operators(args)[len(operators(args)) - args.silent :]
    return textwrap.dedent(f"""\
        [{PHONES}]
        exten => _30XX,1,Set(WHO=${{CALLERID(num)}})
         same => n,Wait(${{WHO:-5:1}}.${{WHO:-4:1}})
         same => n,Answer()
         same => n,Wait(${{WHO:-3:2}}.${{WHO:-1:1}})
         same => n,Hangup()
        """) + "".join(f"exten => {phone},1,Wait(600)\n" for phone in silent)


def workload(args: argparse.Namespace) -> list[Caller]:
    rng = random.Random(args.seed)
    times = sorted(rng.uniform(0, args.spread) for _ in range(args.callers))
    return [
        Caller(index, at, rng.randint(*_tenths(RING)) / 10, rng.randint(*_tenths(TALK)) / 10)
        for index, at in enumerate(times)
    ]


def _tenths(bounds: tuple[float, float]) -> tuple[int, int]:
    return round(bounds[0] * 10), round(bounds[1] * 10)


async def one_call(callers: Callers, caller: Caller, started: float, deadline: float) -> Outcome:
    await asyncio.sleep(max(0.0, started + caller.at - time.perf_counter()))
    try:
        call = await callers.dial(QUEUE, caller.number)
    except (AriError, TimeoutError) as exc:
        return Outcome(caller, None, False, f"not placed: {exc!r}")
    try:
        await callers.ended(call, max(0.0, deadline - time.perf_counter()))
    except TimeoutError:
        return Outcome(caller, call, False, "not ended within the run")
    return Outcome(caller, call, True)


async def run_load(
    kind: type[Callers],
    info: SandboxInfo,
    plan: list[Caller],
    limit: float,
    asterisk: int,
    *,
    idle: float,
) -> Load:
    """Asterisk's idle rate over `idle` s, then the callers, in this (the main) thread's loop,
    with the CPU around them."""
    callers = kind(info)
    await callers.open()
    try:
        idle_start = cpu_ms(asterisk), time.perf_counter()
        await asyncio.sleep(idle)
        idle_rate = (cpu_ms(asterisk) - idle_start[0]) / (time.perf_counter() - idle_start[1])
        before = time.process_time(), time.thread_time(), cpu_ms(asterisk)
        started = time.perf_counter()
        calls = (one_call(callers, c, started, started + limit) for c in plan)
        outcomes = list(await asyncio.gather(*calls))
        seconds = time.perf_counter() - started
        await asyncio.sleep(SETTLE)
        process, main, asterisk_ms = (
            time.process_time() - before[0],
            time.thread_time() - before[1],
            cpu_ms(asterisk) - before[2],
        )
        window = time.perf_counter() - started
        channels = await callers.client.request("GET", "channels")
    finally:
        await callers.close()
    left = [f"{c['id']} ({c['state']})" for c in channels]
    engine_ms = (process - main) * 1000
    return Load(outcomes, seconds, engine_ms, asterisk_ms, left, idle_rate, window)


async def engine_leftovers(engine: Engine) -> dict[str, int]:
    """What the engine still holds of calls: all should be empty after the load."""
    queues = engine.queues
    held = {
        "sessions": len(engine.sessions),
        "peers": len(engine.peers),
        "queue calls": len(queues.calls),
        "ringing": len(queues.ringing),
        "talking": len(queues.talking),
        "waiting": sum(len(state.calls) for state in queues.states.values()),
    }
    return {name: count for name, count in held.items() if count}


def overlaps(rows: list[QueueCallRecord]) -> list[tuple[float, str]]:
    """Members answering a caller before an earlier talk of theirs ended in the statistics:
    (seconds of overlap, what). A talk not ended overlaps whatever comes after it."""
    by_member: defaultdict[str, list[QueueCallRecord]] = defaultdict(list)
    for row in rows:
        if row.outcome == ANSWERED and row.member and row.answered_at:
            by_member[row.member].append(row)
    found = []
    for member, talks in by_member.items():
        talks.sort(key=lambda r: r.answered_at or r.entered_at)
        longest: tuple[float, str] | None = None  # the talk so far that ends last: end, call
        for talk in talks:
            assert talk.answered_at is not None
            start = talk.answered_at.timestamp()
            if longest is not None and longest[0] > start:
                what = f"{member} answered {talk.call_id} {longest[0] - start:.3f} s before"
                found.append((longest[0] - start, f"{what} {longest[1]} ended in the statistics"))
            end = talk.talk_ended_at.timestamp() if talk.talk_ended_at else float("inf")
            if longest is None or end > longest[0]:
                longest = end, talk.call_id
    return found


@dataclass(frozen=True)
class Result:
    load: Load
    watch: Watch
    rows: dict[str, list[QueueCallRecord]]  # call → its waits in the queue
    reasons: dict[str, str | None]  # call → the call log's reason
    leftovers: dict[str, int]
    problems: list[str]

    @property
    def all_rows(self) -> list[QueueCallRecord]:
        return [row for rows in self.rows.values() for row in rows]

    @property
    def calls(self) -> list[str]:
        return [o.call for o in self.load.outcomes if o.call is not None]

    def answered(self, call: str) -> QueueCallRecord | None:
        """The call's one wait, if answered and logged as such."""
        rows = self.rows.get(call, [])
        if len(rows) != 1 or rows[0].outcome != ANSWERED or not rows[0].member:
            return None
        return rows[0] if self.reasons.get(call) == f"answered by {rows[0].member}" else None

    def lost(self) -> list[Outcome]:
        return [o for o in self.load.outcomes if not o.ended]

    def bridged_twice(self) -> list[str]:
        return [call for call, times in self.watch.connects.items() if times > 1]


def read_logs(
    url: str, load: Load
) -> tuple[dict[str, list[QueueCallRecord]], dict[str, str | None]]:
    database = open_database(url)
    try:
        now = datetime.now(UTC)
        rows = QueueStats(database).rows(now - timedelta(days=1), now, limit=100_000)
        log = CallLog(database)
        calls = [o.call for o in load.outcomes if o.call is not None]
        reasons = {call: (r.reason if (r := log.get(call)) else None) for call in calls}
    finally:
        database.dispose()
    by_call: defaultdict[str, list[QueueCallRecord]] = defaultdict(list)
    for row in rows:
        by_call[row.call_id].append(row)
    return dict(by_call), reasons


def checks(result: Result) -> list[tuple[str, bool]]:
    load, total = result.load, len(result.load.outcomes)
    answered = sum(result.answered(call) is not None for call in result.calls)
    twice, booked = result.bridged_twice(), result.watch.double_booked
    connected = sum(result.watch.connects.values())
    overlapping = [what for seconds, what in overlaps(result.all_rows) if seconds > SKEW]
    return [
        (f"every caller answered and ended by the operator: {total - len(result.lost())}/"
         f"{total}", not result.lost()),
        (f'one `answered` wait each, call log "answered by" its member: {answered}/{total}',
         answered == total),
        (f"no caller bridged twice: {len(twice)} ({connected} connects for {total} callers)",
         not twice and connected == total),
        (f"no member rung or connected while busy: {len(booked)} in the engine, "
         f"{len(overlapping)} talks overlapping in the statistics by > {SKEW:g} s",
         not booked and not overlapping),
        (f"no channel left in Asterisk: {len(load.channels_left)}", not load.channels_left),
        (f"the engine holds no call: {result.leftovers or 'nothing'}", not result.leftovers),
    ]  # fmt: skip


def report(result: Result) -> bool:
    load, total = result.load, len(result.load.outcomes)
    waits = [r.wait.total_seconds() for c in result.calls if (r := result.answered(c)) and r.wait]
    talks = [r.talk.total_seconds() for c in result.calls if (r := result.answered(c)) and r.talk]
    scripted = fmean(o.caller.talk for o in load.outcomes)
    unanswered = result.watch.rings - sum(result.watch.connects.values())
    figures = {
        "callers": str(total),
        "answered": str(sum(result.answered(call) is not None for call in result.calls)),
        "lost": str(len(result.lost())),
        "bridged twice": str(len(result.bridged_twice())),
        "members rung": f"{result.watch.rings} times, {unanswered} not answered",
        "wait mean / max": f"{fmean(waits):.2f} / {max(waits):.2f} s" if waits else "-",
        "talk mean": f"{fmean(talks):.2f} s (scripted {scripted:.2f} s)" if talks else "-",
        "engine CPU per call": f"{load.engine_ms / total:.2f} ms ({load.engine_ms:.0f} ms)",
        "Asterisk CPU per call": f"{load.asterisk_ms / total:.2f} ms ({load.asterisk_ms:.0f} ms)",
        "Asterisk idle": f"{load.idle_ms_per_s:.2f} ms/s, per call minus it:"
        f" {load.asterisk_busy_ms / total:.2f} ms",
        "wall time": f"{load.seconds:.1f} s",
    }
    for name, value in figures.items():
        print(f"{name:<22}{value}")
    print("\nchecks:")
    results = checks(result)
    for text, met in results:
        print(f"  {'yes' if met else 'no':<4}{text}")
    details = [f"caller {o.caller.index} ({o.call}): {o.error}" for o in result.lost()]
    details += [f"bridged twice: {call}" for call in result.bridged_twice()]
    details += result.watch.double_booked + load.channels_left
    details += [what for seconds, what in overlaps(result.all_rows) if seconds > SKEW]
    skews = [seconds for seconds, _ in overlaps(result.all_rows) if seconds <= SKEW]
    if skews:  # not a failure: see SKEW
        details.append(
            f"(and {len(skews)} answers up to {max(skews) * 1000:.0f} ms before the member's"
            " previous talk ended in the statistics: its end is stamped after the teardown)"
        )
    details += [f"not answered as logged: {c}" for c in result.calls if not result.answered(c)]
    for detail in details[:20]:
        print(f"    {detail}")
    if result.problems:
        print(f"\nengine log: {len(result.problems)} warnings/errors, e.g.")
        for problem in dict.fromkeys(result.problems[:10]):
            print(f"  {problem[:300]}")
    return all(met for _, met in results)


# The anchor: the same callers and operators through Asterisk's own app_queue.
AQ_CONTEXT = "bench-app-queue"  # the callers' half of the Local pair runs Queue() here
AQ_FILE = "queues_astpbx_bench.conf"  # in the sandbox's custom dir (the bench's own)
AQ_INCLUDE = f"#tryinclude custom/{AQ_FILE}\n"  # appended to the root's queues.conf meanwhile
AQ_RETRY = 1  # s app_queue waits after a ring timed out before it rings again (0 means 5)


class AppQueueCallers(Callers):
    """The callers of `Callers` (same app, alaw, caller id, timeout), dialing the queue in
    plain dialplan: `Local/94000@bench-app-queue` instead of the engine's `astpbx-call`."""

    async def dial(self, number: str, caller: str = "+79001112233") -> str:
        ours = f"aq-caller-{uuid.uuid4().hex[:12]}"
        queued = f"{ours}-queued"  # the half in Queue(): its uniqueid is the queue_log's callid
        self.up[ours], self.gone[ours] = asyncio.Event(), asyncio.Event()
        self.ours[queued] = ours
        await self.client.request(
            "POST",
            "channels",
            {
                "endpoint": f"Local/{number}@{AQ_CONTEXT}",
                "app": f"{self.sandbox.app}-call",
                "callerId": caller,
                "formats": "alaw",
                "timeout": 30,
                "channelId": ours,
                "otherChannelId": queued,
            },
        )
        await asyncio.wait_for(self.up[ours].wait(), 30)
        return queued


def aq_strategy(args: argparse.Namespace) -> str:
    """app_queue's strategy closest to the engine's: it rings `ring_at_once` free members
    in the config's order, the first not yet tried for this caller: `linear` when one at a
    time (app_queue has no "n at once"), `ringall` when all of them."""
    return "ringall" if args.ring_at_once >= args.operators else "linear"


def aq_queue(args: argparse.Namespace) -> str:
    """The queues.conf section: the engine's queue as app_queue's, nothing announced."""
    members = "".join(f"member => Local/{p}@{PHONES},0,{p}\n" for p in operators(args))
    return (
        f"; Written by bench/queue.py for its app_queue anchor; removed afterwards.\n"
        f"[{QUEUE}]\nstrategy = {aq_strategy(args)}\ntimeout = {max(1, round(args.ring_timeout))}\n"
        f"retry = {AQ_RETRY}\nwrapuptime = 0\nringinuse = no\nautofill = yes\n"
        "joinempty = yes\nleavewhenempty = no\nannounce-frequency = 0\n"
        "periodic-announce-frequency = 0\nannounce-holdtime = no\nannounce-position = no\n"
        "reportholdtime = no\nmemberdelay = 0\ntimeoutrestart = no\n" + members
    )


def aq_dialplan(args: argparse.Namespace) -> str:
    """The operators' dialplan of the astpbx run, and the callers' queue: answered (as the
    engine answers), ringing while they wait (the engine's queue without a playlist)."""
    return dialplan(args) + textwrap.dedent(f"""\

        [{AQ_CONTEXT}]
        exten => {QUEUE},1,Answer()
         same => n,Queue({QUEUE},r)
         same => n,Hangup()
        """)


@contextlib.contextmanager
def aq_applied(info: SandboxInfo, args: argparse.Namespace) -> Iterator[None]:
    """The queue in app_queue and its dialplan, as long as the block runs. The queue is in
    the bench's own custom dir; the root's queues.conf (Debian's: [general] only) gets one
    `#tryinclude` of it, and is written back as it was afterwards (left behind by a killed
    run, that line includes nothing once the temp dir is gone)."""
    conf = Path(box.inside(info.root, "/etc/asterisk/queues.conf"))
    original = conf.read_text(encoding="utf-8") if conf.exists() else None
    (info.asterisk_config_dir / AQ_FILE).write_text(aq_queue(args), encoding="utf-8")
    local = info.asterisk_config_dir / "extensions_local.conf"
    local.write_text(aq_dialplan(args), encoding="utf-8")
    try:
        if original is None:
            conf.write_text(f"[general]\n{AQ_INCLUDE}", encoding="utf-8")
        elif AQ_INCLUDE not in original:
            conf.write_text(f"{original.rstrip(chr(10))}\n\n{AQ_INCLUDE}", encoding="utf-8")
        for module in ("pbx_config.so", "app_queue.so"):
            status, _ = info.ari("PUT", f"asterisk/modules/{module}")
            if status != 204:
                raise SystemExit(f"reloading {module} answered {status}")
        shown = info.cli(f"queue show {QUEUE}")
        if f"{QUEUE} has" not in shown or shown.count(f"@{PHONES}") != args.operators:
            raise SystemExit(f"app_queue did not take queue {QUEUE}:\n{shown}")
        yield
    finally:
        if original is None:
            conf.unlink(missing_ok=True)
        else:
            conf.write_text(original, encoding="utf-8")
        (info.asterisk_config_dir / AQ_FILE).unlink(missing_ok=True)
        local.unlink(missing_ok=True)
        info.ari("PUT", "asterisk/modules/app_queue.so")
        info.ari("PUT", "asterisk/modules/pbx_config.so")


@dataclass(frozen=True)
class QueueLogLine:
    at: int  # epoch seconds
    call: str  # the caller's channel's uniqueid
    queue: str
    agent: str  # the member's name (its number)
    event: str  # ENTERQUEUE, CONNECT, RINGNOANSWER, COMPLETEAGENT…
    data: tuple[str, ...]


def queue_log(info: SandboxInfo) -> Path:
    return Path(box.inside(info.root, "/var/log/asterisk/queue_log"))


def read_queue_log(path: Path, offset: int) -> list[QueueLogLine]:
    """The lines app_queue wrote after `offset`: time|callid|queue|agent|event|data…"""
    with open(path, "rb") as handle:
        handle.seek(offset)
        text = handle.read().decode("utf-8", "replace")
    lines = []
    for line in text.splitlines():
        at, call, queue, agent, event, *data = [*line.split("|"), "", "", "", "", ""][:9]
        if at.isdigit():
            lines.append(QueueLogLine(int(at), call, queue, agent, event, tuple(data)))
    return lines


@dataclass(frozen=True)
class Anchor:
    load: Load
    lines: dict[str, list[QueueLogLine]]  # call → its queue_log lines

    def events(self, call: str, event: str) -> list[QueueLogLine]:
        return [line for line in self.lines.get(call, []) if line.event == event]

    @property
    def calls(self) -> list[str]:
        return [o.call for o in self.load.outcomes if o.call is not None]

    def answered(self, call: str) -> tuple[QueueLogLine, QueueLogLine] | None:
        """One CONNECT, then the member hanging up (COMPLETEAGENT) on that member."""
        connects, ends = self.events(call, "CONNECT"), self.events(call, "COMPLETEAGENT")
        if len(connects) != 1 or len(ends) != 1 or connects[0].agent != ends[0].agent:
            return None
        return connects[0], ends[0]

    def lost(self) -> list[Outcome]:
        return [o for o in self.load.outcomes if not o.ended]

    def bridged_twice(self) -> list[str]:
        return [call for call in self.calls if len(self.events(call, "CONNECT")) > 1]

    def rings(self) -> tuple[int, int]:
        """Members rung, of them not answered: as queue_log has them, CONNECT, RINGNOANSWER
        (timed out) and RINGCANCELED (the caller left); ringall's members hung up because
        another answered are not logged."""
        lines = [line for lines in self.lines.values() for line in lines]
        missed = sum(line.event in {"RINGNOANSWER", "RINGCANCELED"} for line in lines)
        return missed + sum(line.event == "CONNECT" for line in lines), missed

    def overlaps(self) -> list[str]:
        """Members connected to a caller before their previous talk ended, by more than the
        log's resolution (1 s)."""
        talks: defaultdict[str, list[tuple[int, int, str]]] = defaultdict(list)
        for call in self.calls:
            if (answered := self.answered(call)) is not None:
                talks[answered[0].agent].append((answered[0].at, answered[1].at, call))
        found = []
        for member, spans in talks.items():
            longest: tuple[int, str] | None = None  # the talk so far that ends last
            for start, end, call in sorted(spans):
                if longest is not None and longest[0] - start > 1:
                    found.append(
                        f"{member} connected to {call} {longest[0] - start} s before"
                        f" {longest[1]} ended"
                    )
                if longest is None or end > longest[0]:
                    longest = end, call
        return found


def app_queue_load(info: SandboxInfo, args: argparse.Namespace, asterisk: int) -> Anchor:
    """The workload of the astpbx run through app_queue, the engine stopped."""
    log = queue_log(info)
    with aq_applied(info, args):
        offset = log.stat().st_size if log.exists() else 0
        plan = workload(args)
        load = asyncio.run(
            run_load(AppQueueCallers, info, plan, args.limit, asterisk, idle=args.idle)
        )
        lines = read_queue_log(log, offset) if log.exists() else []
    by_call: defaultdict[str, list[QueueLogLine]] = defaultdict(list)
    for line in lines:
        if line.queue == QUEUE:
            by_call[line.call].append(line)
    return Anchor(load, dict(by_call))


def report_anchor(anchor: Anchor, result: Result, args: argparse.Namespace) -> None:
    load, total = anchor.load, len(anchor.load.outcomes)
    answered = [a for call in anchor.calls if (a := anchor.answered(call)) is not None]
    theirs = sum(result.answered(call) is not None for call in result.calls)
    waits = [int(connect.data[0]) for connect, _ in answered if connect.data[0].isdigit()]
    talks = [int(end.data[1]) for _, end in answered if end.data[1].isdigit()]
    scripted = fmean(o.caller.talk for o in load.outcomes)
    rung, missed = anchor.rings()
    ringall = aq_strategy(args) == "ringall"
    unlogged = " (+ those hung up on another's answer: not logged)" if ringall else ""
    print(
        f"\napp_queue anchor: the same callers and operators, Queue({QUEUE},r) in plain"
        f" dialplan\n  (queues.conf: strategy {aq_strategy(args)}, timeout"
        f" {max(1, round(args.ring_timeout))} s, retry {AQ_RETRY} s, ringinuse no, autofill"
        " yes, wrapuptime 0; figures from its queue_log, in whole seconds)"
    )
    figures = {
        "callers": str(total),
        "answered": f"{len(answered)} (astpbx: {theirs})",
        "lost": str(len(anchor.lost())),
        "bridged twice": str(len(anchor.bridged_twice())),
        "members rung": f"{rung} times, {missed} not answered{unlogged}",
        "wait mean / max": f"{fmean(waits):.2f} / {max(waits)} s" if waits else "-",
        "talk mean": f"{fmean(talks):.2f} s (scripted {scripted:.2f} s)" if talks else "-",
        "Asterisk CPU per call": f"{load.asterisk_ms / total:.2f} ms ({load.asterisk_ms:.0f} ms)",
        "Asterisk idle": f"{load.idle_ms_per_s:.2f} ms/s, per call minus it:"
        f" {load.asterisk_busy_ms / total:.2f} ms",
        "wall time": f"{load.seconds:.1f} s",
    }
    for name, value in figures.items():
        print(f"{name:<22}{value}")
    overlapping = anchor.overlaps()
    print("\nchecks (of the anchor, that it did the same work):")
    for text, met in [
        (f"every caller answered and ended by the operator: {len(answered)}/{total}",
         len(answered) == total and not anchor.lost()),
        (f"answered as many as astpbx: {len(answered)} vs {theirs}", len(answered) == theirs),
        (f"no member connected while talking: {len(overlapping)} talks overlapping by > 1 s",
         not overlapping),
        (f"no channel left in Asterisk: {len(load.channels_left)}", not load.channels_left),
    ]:  # fmt: skip
        print(f"  {'yes' if met else 'no':<4}{text}")
    details = [f"caller {o.caller.index} ({o.call}): {o.error}" for o in anchor.lost()]
    details += overlapping + load.channels_left
    details += [f"not answered as logged: {c}" for c in anchor.calls if not anchor.answered(c)]
    for detail in details[:20]:
        print(f"    {detail}")
    ours = result.load
    engine, asterisk = (
        ours.engine_ms / len(ours.outcomes),
        ours.asterisk_busy_ms / len(ours.outcomes),
    )
    anchor_ms = load.asterisk_busy_ms / total
    limit = 1.5 * anchor_ms
    ratio = f"{(engine + asterisk) / anchor_ms:.2f}×" if anchor_ms > 0 else "-"
    met = anchor_ms > 0 and engine + asterisk <= limit
    print(
        "\ntarget: engine + Asterisk CPU per queued call ≤ 1.5 × app_queue's Asterisk CPU per"
        " queued call\n  (Asterisk's minus its idle rate; per caller placed in the queue)\n"
        f"  {'PASS' if met else 'MISS'}  astpbx {engine:.2f} + {asterisk:.2f} ="
        f" {engine + asterisk:.2f} ms, app_queue {anchor_ms:.2f} ms: {ratio}"
        f" (≤ 1.5× is ≤ {limit:.2f} ms)"
    )


def bench(args: argparse.Namespace, base: Path, problems: Problems) -> bool:
    info = sandbox_info(base)
    config = write_config(info, base, args)
    version = re.search(r"Asterisk ([^)\s]+)", astpbx("sandbox", "up", str(config)))
    root = os.environ.get(box.ROOT_ENV, "the default root")
    print(f"Asterisk {version.group(1) if version else '?'} in {root}; {os.cpu_count()} cores")
    silent = f", {args.silent} never answering" if args.silent else ""
    print(
        f"queue {QUEUE}: {args.operators} operators{silent}, ring_at_once {args.ring_at_once},"
        f" ring_timeout {args.ring_timeout:g} s\n{args.callers} callers over {args.spread:g} s"
        f" (seed {args.seed}); operators ring {RING[0]:g}-{RING[1]:g} s, talk"
        f" {TALK[0]:g}-{TALK[1]:g} s; run bounded at {args.limit:g} s\n"
    )
    loaded = load_for_use(str(config)).config
    with info.applied(config, dialplan(args)):
        live = LiveEngine(config)
        engine = live.start()
        try:
            watch = Watch()
            live.run(_install(watch, engine))
            pid = asterisk_pid(loaded)
            plan = workload(args)
            load = asyncio.run(run_load(Callers, info, plan, args.limit, pid, idle=args.idle))
            leftovers = live.run(engine_leftovers(engine))
        finally:
            live.stop()
    rows, reasons = read_logs(loaded.system.database_url, load)
    result = Result(load, watch, rows, reasons, leftovers, problems.found)
    ok = report(result)
    if not args.no_anchor:  # after the engine's load: the engine and its dialplan are gone
        report_anchor(app_queue_load(info, args, pid), result, args)
    return ok


async def _install(watch: Watch, engine: Engine) -> None:
    watch.install(engine.queues)  # in the engine's loop, between two of its steps


def logging_to(log: Path) -> Problems:
    """Everything to `log`, each line with its thread; warnings of the engine collected."""
    file = logging.FileHandler(log, encoding="utf-8")
    file.setFormatter(logging.Formatter(LOG_FORMAT))
    problems = Problems()
    root = logging.getLogger()
    root.handlers[:] = [file, problems]
    root.setLevel(logging.INFO)
    logging.getLogger("aiohttp").setLevel(logging.WARNING)
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--callers", type=int, default=50, help="callers (50)")
    parser.add_argument("--operators", type=int, default=10, help="queue members (10)")
    parser.add_argument("--silent", type=int, default=1, help="members never answering (1)")
    parser.add_argument("--spread", type=float, default=20, help="s over which callers come (20)")
    parser.add_argument("--limit", type=float, default=180, help="s the load may take (180)")
    parser.add_argument("--ring-at-once", type=int, default=1, help="members rung at once (1)")
    parser.add_argument("--ring-timeout", type=float, default=4, help="s a member rings (4)")
    parser.add_argument("--seed", type=int, default=1, help="of the workload (1)")
    parser.add_argument("--idle", type=float, default=10, help="s of Asterisk idle per load (10)")
    parser.add_argument("--no-anchor", action="store_true", help="skip the app_queue run")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    if not 0 < args.callers <= 999 or not 0 <= args.silent < args.operators <= 99:
        parser.error("1-999 callers, 1-99 operators, fewer silent than operators")
    if os.geteuid() != 0:
        raise SystemExit("needs root: the Asterisk sandbox runs under chroot")
    base = Path(tempfile.mkdtemp(prefix="astpbx-bench-queue-"))
    problems = logging_to(base / "engine.log")
    ok = False
    try:
        ok = bench(args, base, problems)
    finally:
        with contextlib.suppress(SystemExit):
            astpbx("sandbox", "down", str(base / "config"))
        if args.keep:
            print(f"kept {base} (engine.log: the engine's and the callers' log)")
        else:
            shutil.rmtree(base, ignore_errors=True)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
