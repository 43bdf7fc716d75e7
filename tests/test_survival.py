"""Calls outlive the engine: `astpbx run` killed with -9 or stopped with SIGTERM while
SIPp callers are in a menu, typing digits or waiting in a queue, and started again —
each call goes on where it was, none is dropped, and the log closes every row once.

The engine runs as an administrator runs it (`astpbx run`, a process of its own) on
examples/mfc without its Monday rule (these tests run on any day).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ast_pbx.storage.calls import CallLog, CallRecord
from ast_pbx.storage.db import open_database
from tests.engine_process import EngineProcess
from tests.live_engine import eventually
from tests.sandbox_fixture import SandboxInfo, free_port
from tests.sip_world import write_config
from tests.sipp import Caller, CallResult

pytestmark = [pytest.mark.asterisk, pytest.mark.sip]


@dataclass
class Site:
    sandbox: SandboxInfo
    config: Path
    engine: EngineProcess
    caller: Caller
    log: CallLog

    def calls(self, after: int = 0) -> list[CallRecord]:
        return self.log.logged_after(after)


@pytest.fixture(scope="module")
def site(sandbox: SandboxInfo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    base = tmp_path_factory.mktemp("survival")
    port = free_port(socket.SOCK_DGRAM)
    config = write_config(sandbox, base, {"rfc4733": port})
    (config / "rules.yaml").unlink()  # the Monday rule would send 92000 elsewhere
    (config / "tests.yaml").unlink()
    with sandbox.applied(config):
        engine = EngineProcess(config, base / "engine.log")
        database = open_database(f"sqlite:///{base}/calls.db")
        engine.start()
        try:
            yield Site(
                sandbox, config, engine, Caller(sandbox.sip, port, base / "sipp"), CallLog(database)
            )
        finally:
            engine.stop()
            database.dispose()


@pytest.fixture(autouse=True)
def running(site: Site) -> Iterator[None]:
    """Each test starts and ends with an engine in charge."""
    if site.engine.process is None or site.engine.process.poll() is not None:
        site.engine.start()
    yield
    if site.engine.process is None or site.engine.process.poll() is not None:
        site.engine.start()


def _calling(
    site: Site, keys: str, ends: str = "remote", calls: int = 1
) -> tuple[threading.Thread, list[CallResult]]:
    results: list[CallResult] = []
    thread = threading.Thread(
        target=lambda: results.append(
            site.caller.call("90000", keys, ends=ends, timeout=120, calls=calls)
        )
    )
    thread.start()
    return thread, results


def _restart_after_kill(site: Site) -> float:
    """kill -9 the engine, start another; seconds from the kill to the calls adopted."""
    site.engine.kill()
    killed = time.monotonic()
    site.engine.start()
    return time.monotonic() - killed


def _closed(site: Site, after: int, count: int = 1, timeout: float = 30) -> list[CallRecord]:
    def ended() -> list[CallRecord] | None:
        calls = site.calls(after)
        return calls if len(calls) == count and all(c.ended_at for c in calls) else None

    found: list[CallRecord] = eventually(ended, timeout)
    return found


def test_a_caller_in_a_menu_hears_it_again_and_its_keys_work(site: Site) -> None:
    before = site.log.last_id()
    # Key 1 at 2 s (menu 91000), the engine killed at 3.5 s, key 2 at 9 s (91200).
    thread, results = _calling(site, "w2 1 w7 2")
    time.sleep(3.5)
    adopted = _restart_after_kill(site)
    thread.join(120)
    assert results and results[0].ok, results[0].output if results else "no result"
    (record,) = _closed(site, before)
    assert list(record.path) == ["90000", "91000", "91200"]
    assert record.outcome == "hangup"
    assert "adopted: menu 91000" in site.engine.lines()
    assert adopted < 10, adopted
    # What the caller heard after the restart was the menu's prompt again, not silence.
    assert results[0].heard.loud_seconds() > 3


def test_digits_typed_before_the_kill_are_asked_again(site: Site) -> None:
    before = site.log.last_id()
    # 1, 1: the case-number menu 91100; two digits typed, the engine killed, then the
    # whole number typed again after the prompt that asks for it.
    thread, results = _calling(site, "w2 1 w2 1 w2 1 9 w4 w2 1 9 * 0 3 * 2 0 4 4 #")
    time.sleep(7.5)
    _restart_after_kill(site)
    thread.join(120)
    assert results and results[0].ok, results[0].output if results else "no result"
    (record,) = _closed(site, before)
    assert list(record.path) == ["90000", "91000", "91100", "91110"]
    assert "adopted: menu 91100" in site.engine.lines()


def test_queued_callers_keep_their_places_and_are_not_dropped(site: Site) -> None:
    before = site.log.last_id()
    # No member is online: three callers wait in 92000 (key 2), arriving 1 s apart;
    # the engine is killed twice while they wait; they hang up themselves at the end.
    thread, results = _calling(site, "w2 2 w15", ends="local", calls=3)
    time.sleep(6.5)  # the third caller (at 2 s) pressed 2 at about 4 s
    _restart_after_kill(site)
    first = _adopted_in_order(site.engine.lines())
    assert len(first) == 3, site.engine.lines()
    time.sleep(1)
    _restart_after_kill(site)
    assert _adopted_in_order(site.engine.lines()) == first
    thread.join(120)
    assert results and results[0].ok, results[0].output if results else "no result"
    records = _closed(site, before, 3)
    assert [r.outcome for r in records] == ["queue 92000"] * 3
    assert all(list(r.path) == ["90000", "92000"] for r in records)
    # Each waited its whole time: no one was cut off by a restart.
    assert all(r.duration is not None and r.duration.total_seconds() > 15 for r in records)
    # Adopted in order of arrival, which is the queue's order.
    assert first == [r.channel_id for r in sorted(records, key=lambda r: r.started_at)]


def _adopted_in_order(lines: str) -> list[str]:
    return [
        line.split("call ", 1)[1].split(" ", 1)[0]
        for line in lines.splitlines()
        if "adopted: queue 92000" in line
    ]


def test_a_call_that_ends_while_no_engine_runs_is_closed_with_its_real_end(site: Site) -> None:
    before = site.log.last_id()
    thread, results = _calling(site, "w2 1 w3", ends="local")  # hangs up at ~5 s
    time.sleep(3)
    site.engine.kill()
    thread.join(60)
    hung_up = time.time()
    assert results and results[0].ok, results[0].output
    time.sleep(4)
    (open_row,) = site.calls(before)
    assert open_row.ended_at is None  # no engine saw the end
    site.engine.start()
    (record,) = _closed(site, before)
    assert record.ended_at is not None
    assert abs(record.ended_at.timestamp() - hung_up) < 2.5
    assert record.reason is not None and "no engine ran" in record.reason


def test_sigterm_hands_the_calls_over_to_the_next_engine(site: Site) -> None:
    before = site.log.last_id()
    thread, results = _calling(site, "w2 1 w7 2")
    time.sleep(3.5)
    assert site.engine.terminate() == 0
    assert "left for the next engine" in site.engine.lines()
    site.engine.start()
    thread.join(120)
    assert results and results[0].ok, results[0].output
    (record,) = _closed(site, before)
    assert list(record.path) == ["90000", "91000", "91200"]


def test_a_call_while_no_engine_runs_waits_for_one_then_is_told(site: Site) -> None:
    """The dialplan rings the caller and retries the app every second for engine_wait
    (10 s): an engine that comes within it takes the call."""
    before = site.log.last_id()
    site.engine.kill()
    thread, results = _calling(site, "w4 1 w3 2")
    time.sleep(3)
    site.engine.start()
    thread.join(120)
    assert results and results[0].ok, results[0].output
    (record,) = _closed(site, before)
    assert list(record.path) == ["90000", "91000", "91200"]
