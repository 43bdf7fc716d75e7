"""Soak: SIP calls go on while the engine is killed again and again, and fails over.

SIPp callers through trunk `rt` at --rate calls/s for --minutes, each walking menu 90000
→ key 1 → 91000 → key 2 → 91200 (about 15 s, the engine hangs up). Meanwhile `astpbx run`
is killed with -9 every --kill-every seconds and started again; with --postgres URL a
standby runs beside it and every --failover-every seconds the leader is killed and the
standby takes over (the old leader then comes back as the standby).

Printed: calls placed, completed and dropped (SIPp: a call cut off, or an unexpected
message, counts as failed; target 0 dropped), log rows left open after the soak (target 0)
and rows whose path is not 90000 91000 91200, and kill→adopted (from the kill to the
next engine's "in charge of" line) p50/p99 for restarts and for failovers (target p99 <
3 s). Not a test: it exits 0 unless setup fails.

Setup: bench/calls.py's config (examples/mfc's IVR, espeak, SQLite or --postgres), its
own sandbox (`astpbx sandbox up`; set ASTPBX_SANDBOX_ROOT if the default root runs
another config). Needs root and SIPp.

Run:  .venv/bin/python bench/survival.py [--minutes 20] [--rate 2] [--kill-every 120]
      [--postgres postgresql://postgres@127.0.0.1/test --failover-every 300]
"""

from __future__ import annotations

import os
import sys

sys.path.remove(os.path.dirname(os.path.realpath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.realpath(__file__))))

import argparse
import socket
import tempfile
import threading
import time
from pathlib import Path

from ast_pbx.storage.calls import CallLog
from ast_pbx.storage.db import open_database
from bench.calls import astpbx, free_port, write_config
from tests.engine_process import EngineProcess
from tests.sipp import Caller, CallResult

KEYS = "w2 1 w4 2"
PATH = ["90000", "91000", "91200"]


def _percentile(values: list[float], q: float) -> str:
    if not values:
        return "-"
    ordered = sorted(values)
    return f"{ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]:.2f}"


def _configure(base: Path, port: int, postgres: str | None) -> Path:
    config = write_config(base)
    (config / "trunks.yaml").write_text(
        "trunks:\n  - name: rt\n    inbound: '90000'\n    host: 127.0.0.1\n"
        f"    port: {port}\n    match: '\\+?\\d{{7,}}'\n",
        encoding="utf-8",
    )
    system = config / "system.yaml"
    text = system.read_text(encoding="utf-8")
    if postgres:
        text = "\n".join(
            f'  database: "{postgres}"' if "database:" in line else line
            for line in text.splitlines()
        )
    text += f'\n  http: {{listen: "127.0.0.1:{free_port()}"}}\n'
    system.write_text(text, encoding="utf-8")
    return config


def soak(args: argparse.Namespace, base: Path) -> None:
    port = free_port(socket.SOCK_DGRAM)
    config = _configure(base, port, args.postgres)
    print(astpbx("sandbox", "up", str(config)).splitlines()[0])
    astpbx("apply", str(config))
    database = open_database(args.postgres or f"sqlite:///{base}/calls.db")
    log = CallLog(database)
    engines = [EngineProcess(config, base / "a.log"), EngineProcess(config, base / "b.log")]
    leader, standby = engines[0], engines[1] if args.postgres else None
    leader.start()
    if standby is not None:
        standby.start(leading=False)
    sip = Caller(astpbx_sip(config), port, base / "sipp")
    calls = round(args.minutes * 60 * args.rate)
    results: list[CallResult] = []
    load = threading.Thread(
        target=lambda: results.append(
            sip.call("90000", KEYS, calls=calls, rate=args.rate, timeout=args.minutes * 60 + 120)
        )
    )
    load.start()
    started = time.monotonic()
    restarts: list[float] = []
    failovers: list[float] = []
    next_kill, next_failover = args.kill_every, args.failover_every
    while load.is_alive() and time.monotonic() - started < args.minutes * 60:
        time.sleep(1)
        elapsed = time.monotonic() - started
        if standby is not None and elapsed >= next_failover:
            next_failover += args.failover_every
            leader.kill()
            killed = time.monotonic()
            standby.wait_for("in charge of", 30)
            failovers.append(time.monotonic() - killed)
            leader, standby = standby, leader
            standby.start(leading=False)
        elif elapsed >= next_kill:
            # A crash and its supervisor's restart (systemd): the killed engine starts
            # again at once; with a standby about, whichever takes the lock adopts.
            next_kill += args.kill_every
            leader.kill()
            killed = time.monotonic()
            leader.start(leading=False)
            leader, standby = _new_leader(leader, standby)
            restarts.append(time.monotonic() - killed)
    load.join()
    time.sleep(5)
    _report(log, calls, results, restarts, failovers)
    for engine in engines:
        engine.stop()
    database.dispose()
    astpbx("sandbox", "down", str(config))


def _new_leader(
    restarted: EngineProcess, standby: EngineProcess | None
) -> tuple[EngineProcess, EngineProcess | None]:
    """(leader, standby) once one of them is in charge of the calls."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for engine in (restarted, standby):
            if engine is not None and "in charge of" in engine.lines():
                other = standby if engine is restarted else restarted
                return engine, other
        time.sleep(0.02)
    raise SystemExit("no engine took the calls over in 30 s")


def _report(
    log: CallLog,
    calls: int,
    results: list[CallResult],
    restarts: list[float],
    failovers: list[float],
) -> None:
    before = 0
    rows = log.logged_after(before)
    open_rows = [r for r in rows if r.ended_at is None]
    wrong = [r for r in rows if r.ended_at is not None and list(r.path) != PATH]
    output = results[0].output if results else ""
    ok, failed = _sipp_counts(output)
    print(f"calls placed {calls}, completed {ok}, dropped {failed}  (target 0 dropped)")
    print(
        f"log rows {len(rows)}, open after the soak {len(open_rows)} (target 0),"
        f" another path {len(wrong)}"
    )
    print(
        f"kill -9 → adopted after a restart: {len(restarts)} kills,"
        f" p50 {_percentile(restarts, 0.5)} s, p99 {_percentile(restarts, 0.99)} s"
    )
    print(
        f"kill -9 → adopted by the standby: {len(failovers)} failovers,"
        f" p50 {_percentile(failovers, 0.5)} s, p99 {_percentile(failovers, 0.99)} s"
        "  (target p99 < 3 s)"
    )


def astpbx_sip(config: Path) -> str:
    for line in (config / "system.yaml").read_text(encoding="utf-8").splitlines():
        if "sip:" in line:
            return line.split('sip: "', 1)[1].split('"', 1)[0]
    raise SystemExit("no system.asterisk.sip in the bench config")


def _sipp_counts(output: str) -> tuple[int, int]:
    """Successful and failed calls from SIPp's final statistics screen."""
    ok = failed = 0
    for line in output.splitlines():
        cells = [c.strip() for c in line.split("|")]
        if cells and cells[0] == "Successful call" and len(cells) > 2:
            ok = int(cells[2].split()[0])
        if cells and cells[0] == "Failed call" and len(cells) > 2:
            failed = int(cells[2].split()[0])
    return ok, failed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=20)
    parser.add_argument("--rate", type=int, default=2)
    parser.add_argument("--kill-every", type=float, default=120)
    parser.add_argument("--failover-every", type=float, default=300)
    parser.add_argument("--postgres", help="a PostgreSQL URL: run a standby and fail over")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="astpbx-soak-") as base:
        soak(args, Path(base))


if __name__ == "__main__":
    main()
