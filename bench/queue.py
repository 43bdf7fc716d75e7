"""Benchmark a queue under load: callers waiting for operators, all on the Asterisk sandbox.

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

Printed: callers, answered, lost, bridged twice, mean/max wait, mean talk, engine CPU ms
per call (this process's CPU minus the main thread's, where the callers run: the engine's
thread and its database writers; over the load / callers), Asterisk's, wall time, the
checks, and the engine's warnings. Exits 1 if a check fails. Setup: a temp config,
SQLite, free ports, `astpbx sandbox up` (one config per root: set ASTPBX_SANDBOX_ROOT if
the default root runs another), `astpbx apply`. Needs root; takes about a minute.

Run:  .venv/bin/python bench/queue.py [--callers 50] [--operators 10] [--seed 1] [--keep]
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
from collections import Counter, defaultdict
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


async def run_load(info: SandboxInfo, plan: list[Caller], limit: float, asterisk: int) -> Load:
    """The callers, in this (the main) thread's loop, with the CPU around them."""
    callers = Callers(info)
    await callers.open()
    try:
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
        channels = await callers.client.request("GET", "channels")
    finally:
        await callers.close()
    left = [f"{c['id']} ({c['state']})" for c in channels]
    return Load(outcomes, seconds, (process - main) * 1000, asterisk_ms, left)


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
            load = asyncio.run(run_load(info, workload(args), args.limit, pid))
            leftovers = live.run(engine_leftovers(engine))
        finally:
            live.stop()
    rows, reasons = read_logs(loaded.system.database_url, load)
    return report(Result(load, watch, rows, reasons, leftovers, problems.found))


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
