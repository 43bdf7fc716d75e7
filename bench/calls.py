"""Benchmark the engine on real calls: the example IVR driven through the Asterisk sandbox.

Per call: a Local channel (alaw, like a SIP phone) dials 90000, the engine answers and plays
the prompt; 1 s later the caller presses 1 (barge-in → 91000's prompt), 0.5 s later hangs up.
Loads: (a) --calls at --rate calls/s, (b) --calls within --burst s, then the same flow in
plain dialplan at --rate. Printed: calls done (call log path 90000 → 91000) / failed, p50/p99
key→action latency (the engine's `metrics key_to_action` line), engine and Asterisk CPU ms
per call (utime+stime over the load / calls; the engine runs as a subprocess; Asterisk's
also minus its idle rate), and the targets. Setup: a temp config (examples/mfc's IVR, espeak,
SQLite, free ports), `astpbx sandbox up` (one config per root: set ASTPBX_SANDBOX_ROOT if
the default root runs another), `astpbx apply`, warm-up calls that synthesize the prompts.
Needs root; takes about two minutes.

Run:  .venv/bin/python bench/calls.py [--calls 200] [--rate 20] [--burst 0.5] [--keep]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from base64 import b64encode
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ast_pbx.ari import AriClient, AriError
from ast_pbx.config.configuration import Config
from ast_pbx.lint.linter import load_for_use
from ast_pbx.storage.calls import CallLog
from ast_pbx.storage.db import open_database
from ast_pbx.tts import TtsCache, make_engine

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "mfc"
IVR_FILES = ("menus", "queues", "playlists", "audio", "rules", "trunks", "phones")
APP = "astpbx-bench"
TICK_MS = 1000 / os.sysconf("SC_CLK_TCK")
ANSWER_TIMEOUT, PRESS_AFTER, HANG_UP_AFTER, SETTLE = 10.0, 1.0, 0.5, 1.0
PATH = ("90000", "91000")
PLAIN = "bench-plain"
# Without `formats` an ARI-originated Local channel is slin192 and Asterisk resamples every
# 8 kHz prompt to 192 kHz: +25-30 ms CPU per call, and a 200-call burst took 30 s.
FORMATS = "alaw"
WARM_UP_CALLS = 3


@dataclass(frozen=True)
class Load:
    calls: int
    answered: int  # our half entered our app within ANSWER_TIMEOUT
    seconds: float
    cpu_ms: dict[str, float]  # by process, over the load
    idle_ms_per_s: float  # Asterisk's, just before the load
    completed: int | None = None  # the path 90000 → 91000 in the call log; None: no engine
    latency: dict[str, float] = field(default_factory=dict)  # the engine's key_to_action
    problems: tuple[str, ...] = ()  # errors and exceptions in the engine's log

    def per_call(self, who: str) -> float:
        return self.cpu_ms[who] / self.calls

    @property
    def asterisk_corrected(self) -> float:
        return (self.cpu_ms["asterisk"] - self.idle_ms_per_s * self.seconds) / self.calls


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def write_config(base: Path) -> Path:
    config = base / "config"
    config.mkdir()
    for name in IVR_FILES:
        shutil.copy(EXAMPLE / f"{name}.yaml", config / f"{name}.yaml")
    shutil.copytree(EXAMPLE / "audio", config / "audio")
    (config / "system.yaml").write_text(
        "system:\n  timezone: Europe/Moscow\n"
        f'  ari: {{url: "http://127.0.0.1:{free_port()}", username: bench,'
        f' password: "bench-ari-secret", app: {APP}}}\n'
        f'  asterisk: {{config_dir: "{base}/asterisk",'
        f' sip: "127.0.0.1:{free_port(socket.SOCK_DGRAM)}"}}\n'
        f'  paths: {{data: "{base}/data"}}\n  database: "sqlite:///{base}/calls.db"\n'
        "  tts: {engine: espeak, voice: ru}\n",
        encoding="utf-8",
    )
    return config


def astpbx(*args: str) -> str:
    """Run `astpbx ARGS`; its output, or SystemExit with it on failure."""
    command = [sys.executable, "-m", "ast_pbx", *args]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"astpbx {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    return done.stdout


def cpu_ms(pid: int) -> float:
    """utime + stime of a process (all its threads), in ms."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
        fields = handle.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) * TICK_MS


def asterisk_pid(config: Config) -> int:
    return int(Path(config.system.paths.data, "sandbox", "asterisk.pid").read_text())


def prompt_file(config: Config, number: str) -> Path:
    """The TTS wav of a menu's prompt, as the engine cached it."""
    prompt = getattr(config.targets[number], "prompt", None)
    assert prompt is not None and prompt.kind == "say", f"menu {number} says nothing"
    tts = config.system.tts
    cache = TtsCache(Path(config.system.paths.dir("tts-cache")), make_engine(tts), tts.voice)
    found = cache.path_for(prompt.value)
    if not found.exists():
        raise SystemExit(f"{found} (prompt of {number}) is missing after the warm-up")
    return found


def start_engine(config: Path, log: Path) -> subprocess.Popen[bytes]:
    """`astpbx run CONFIG --log-format json` in a subprocess, once it is connected to ARI."""
    command = [sys.executable, "-m", "ast_pbx", "run", str(config), "--log-format", "json"]
    with open(log, "w", encoding="utf-8") as stderr:
        engine = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr
        )
    deadline = time.monotonic() + 30
    while "ARI connected" not in log.read_text(encoding="utf-8"):
        if engine.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the engine did not connect:\n{log.read_text()[-2000:]}")
        time.sleep(0.1)
    time.sleep(0.5)  # its probe of REST over the WebSocket
    return engine


def stop_engine(engine: subprocess.Popen[bytes], log: Path) -> dict[str, float]:
    """SIGTERM, then the figures of its `metrics key_to_action` line."""
    engine.send_signal(signal.SIGTERM)
    try:
        engine.wait(30)
    except subprocess.TimeoutExpired:
        engine.kill()  # no metrics then
    messages = [str(line["message"]) for line in log_lines(log)]
    found = [m.split(" ", 2)[2] for m in messages if m.startswith("metrics key_to_action ")]
    return dict(json.loads(found[-1])) if found else {}


def log_lines(log: Path) -> list[dict[str, Any]]:
    """The engine's JSON log; a line that is not JSON (a traceback) as an error."""
    lines = []
    for line in log.read_text(encoding="utf-8").splitlines():
        try:
            lines.append(dict(json.loads(line)))
        except ValueError:
            lines.append({"level": "error", "message": line})
    return lines


def log_problems(log: Path) -> tuple[str, ...]:
    """Errors and exceptions: each message and the last line of its exception."""
    bad = [line for line in log_lines(log) if line["level"] == "error" or "exception" in line]
    return tuple(
        f"{b['message']} {str(b.get('exception', '')).rpartition(chr(10))[2]}" for b in bad
    )


class Caller:
    """Our own ARI app: places the calls and presses the keys on its halves."""

    def __init__(self, config: Config) -> None:
        ari = config.system.ari
        self.app = f"{ari.app}-bench"
        self.client = AriClient(ari.url, ari.username, ari.password, self.app, on_event=self.event)
        self.up: dict[str, asyncio.Event] = {}

    def event(self, event: dict[str, Any]) -> None:
        channel = str((event.get("channel") or {}).get("id", ""))
        if event.get("type") == "StasisStart" and channel in self.up:
            self.up[channel].set()

    async def call(self, endpoint: str) -> bool:
        """One call; whether it was answered."""
        channel = f"bench-{uuid.uuid4().hex}"
        up = self.up[channel] = asyncio.Event()
        params = {"endpoint": endpoint, "app": self.app, "channelId": channel, "formats": FORMATS}
        try:
            await self.client.request("POST", "channels", params)
            await asyncio.wait_for(up.wait(), ANSWER_TIMEOUT)
        except (AriError, TimeoutError):
            await self.client.quiet("DELETE", f"channels/{channel}")
            return False
        finally:
            self.up.pop(channel, None)
        await asyncio.sleep(PRESS_AFTER)
        await self.client.quiet("POST", f"channels/{channel}/dtmf", {"dtmf": "1", "duration": 100})
        await asyncio.sleep(HANG_UP_AFTER)
        await self.client.quiet("DELETE", f"channels/{channel}")
        return True


async def run_load(
    config: Config, endpoint: str, calls: int, spacing: float, pids: dict[str, int]
) -> Load:
    """Asterisk's idle rate, then the calls with the CPU of each process around them."""
    caller = Caller(config)
    connection = asyncio.create_task(caller.client.run())
    try:
        await caller.client.wait_connected(10)
        idle_seconds = calls * spacing + PRESS_AFTER + HANG_UP_AFTER + SETTLE
        idle_start = cpu_ms(pids["asterisk"])
        await asyncio.sleep(idle_seconds)
        idle = (cpu_ms(pids["asterisk"]) - idle_start) / idle_seconds
        before = {name: cpu_ms(pid) for name, pid in pids.items()}
        started, tasks = time.perf_counter(), []
        for index in range(calls):  # call `index` starts at `index * spacing`
            await asyncio.sleep(max(0.0, started + index * spacing - time.perf_counter()))
            tasks.append(asyncio.create_task(caller.call(endpoint)))
        answered = sum(await asyncio.gather(*tasks))
        await asyncio.sleep(SETTLE)  # the engine logs the ends, Asterisk tears down
        seconds = time.perf_counter() - started
        used = {name: cpu_ms(pid) - before[name] for name, pid in pids.items()}
    finally:
        await caller.client.close()
        await asyncio.gather(connection, return_exceptions=True)
    return Load(calls, answered, seconds, used, idle)


def engine_load(base: Path, config: Config, calls: int, spacing: float, tag: str) -> Load:
    """One load through a fresh engine: the calls, then its call log, latency and problems."""
    log = base / f"engine-{tag}.log"
    database = open_database(config.system.database_url)
    try:
        database.migrate()
        after = CallLog(database).last_id()
        engine = start_engine(base / "config", log)
        try:
            pids = {"asterisk": asterisk_pid(config), "engine": engine.pid}
            load = asyncio.run(run_load(config, "Local/90000@astpbx-call", calls, spacing, pids))
        finally:
            latency = stop_engine(engine, log)
        completed = sum(c.path == PATH for c in CallLog(database).logged_after(after))
    finally:
        database.dispose()
    return replace(load, completed=completed, latency=latency, problems=log_problems(log))


def plain_load(config: Config, calls: int, spacing: float) -> Load:
    """The same flow in plain dialplan, the prompts from the engine's TTS cache."""
    first, second = (prompt_file(config, number).with_suffix("") for number in PATH)
    local = Path(config.system.asterisk_config_dir, "extensions_local.conf")
    local.write_text(
        f"[{PLAIN}]\nexten => 90000,1,Answer()\n same => n,Background({first})\n"
        f" same => n,WaitExten(15)\nexten => 1,1,Background({second})\n same => n,WaitExten(15)\n",
        encoding="utf-8",
    )
    try:
        reload_dialplan(config)
        pids = {"asterisk": asterisk_pid(config)}
        return asyncio.run(run_load(config, f"Local/90000@{PLAIN}", calls, spacing, pids))
    finally:
        local.unlink(missing_ok=True)
        reload_dialplan(config)


def reload_dialplan(config: Config) -> None:
    """PUT /ari/asterisk/modules/pbx_config.so: Asterisk reads the dialplan again."""
    ari = config.system.ari
    credentials = b64encode(f"{ari.username}:{ari.password}".encode()).decode()
    url = f"{ari.url}/ari/asterisk/modules/pbx_config.so"
    headers = {"Authorization": f"Basic {credentials}"}
    urllib.request.urlopen(urllib.request.Request(url, method="PUT", headers=headers)).close()


ROW = "{:<24}{:>6}{:>9}{:>5}{:>7}{:>8}{:>8}{:>8}{:>18}"
HEADER = ("load", "calls", "answered", "done", "failed", "p50", "p99", "engine", "Asterisk")


def failed(load: Load) -> int:
    return load.calls - (load.answered if load.completed is None else load.completed)


def row(name: str, load: Load) -> str:
    latency = (f"{load.latency[k]:.2f}" if k in load.latency else "-" for k in ("p50_ms", "p99_ms"))
    engine = f"{load.per_call('engine'):.2f}" if "engine" in load.cpu_ms else "-"
    done = "-" if load.completed is None else load.completed
    asterisk = f"{load.per_call('asterisk'):.2f}/{load.asterisk_corrected:.2f}"
    return ROW.format(
        name, load.calls, load.answered, done, failed(load), *latency, engine, asterisk
    )


def targets(steady: Load, burst: Load, plain: Load) -> list[tuple[str, bool]]:
    p99, burst_p99 = steady.latency.get("p99_ms", 1e9), burst.latency.get("p99_ms", 1e9)
    engine, asterisk = steady.per_call("engine"), steady.asterisk_corrected
    limit = 1.5 * plain.asterisk_corrected
    return [
        (f"(a) p99 key→action ≤ 10 ms: {p99:.2f} ms", p99 <= 10),
        (f"(a) engine CPU ≤ 8 ms per call: {engine:.2f} ms", engine <= 8),
        (
            f"(a) Asterisk CPU ≤ 1.5 × plain's = {limit:.2f} ms: {asterisk:.2f} ms",
            asterisk <= limit,
        ),
        (f"(b) every call completed: {burst.completed}/{burst.calls}", failed(burst) == 0),
        (f"(b) p99 key→action < 100 ms: {burst_p99:.2f} ms", burst_p99 < 100),
    ]


def report(loads: dict[str, Load]) -> None:
    print(ROW.format(*HEADER))
    for name, load in loads.items():
        print(row(name, load))
    print(
        "done: the call log has the path 90000 → 91000, failed: the others (plain dialplan:\n"
        "not answered in 10 s); p50/p99: key→action ms; engine, Asterisk: CPU ms per call\n"
        "(Asterisk's raw / minus its idle rate)\n\ntargets:"
    )
    for text, met in targets(*loads.values()):
        print(f"  {'yes' if met else 'no':<4}{text}")
    for name, load in loads.items():
        if load.problems:
            print(f"\nengine log of {name}: {len(load.problems)} errors/exceptions, e.g.")
            for problem in dict.fromkeys(load.problems[:5]):
                print(f"  {problem[:300]}")


def bench(args: argparse.Namespace, base: Path) -> None:
    config_dir = write_config(base)
    config = load_for_use(str(config_dir)).config
    version = re.search(r"Asterisk ([^)\s]+)", astpbx("sandbox", "up", str(config_dir)))
    astpbx("apply", str(config_dir))
    warm_up = engine_load(base, config, WARM_UP_CALLS, 1.0, "warm-up")
    root = os.environ.get("ASTPBX_SANDBOX_ROOT", "the default root")
    print(f"Asterisk {version.group(1) if version else '?'} in {root}; {os.cpu_count()} cores")
    print(
        f"per call: dial 90000, press 1 after {PRESS_AFTER:g} s, hang up {HANG_UP_AFTER:g} s after"
    )
    print(f"TTS cache pre-warmed by {WARM_UP_CALLS} warm-up calls ({warm_up.completed} done)\n")
    steady = engine_load(base, config, args.calls, 1 / args.rate, "steady")
    burst = engine_load(base, config, args.calls, args.burst / args.calls, "burst")
    plain = plain_load(config, args.calls, 1 / args.rate)
    names = (f"(a) {args.calls} at {args.rate:g}/s", f"(b) {args.calls} in {args.burst:g} s")
    report({names[0]: steady, names[1]: burst, f"plain dialplan {args.rate:g}/s": plain})


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=200, help="calls per load (200)")
    parser.add_argument("--rate", type=float, default=20, help="calls/s of load (a) (20)")
    parser.add_argument("--burst", type=float, default=0.5, help="seconds of load (b) (0.5)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    logging.getLogger("astpbx.ari").setLevel(logging.ERROR)  # our client's "closed" notes
    if os.geteuid() != 0:
        raise SystemExit("needs root: the Asterisk sandbox runs under chroot")
    base = Path(tempfile.mkdtemp(prefix="astpbx-bench-"))
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
