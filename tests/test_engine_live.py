"""The engine on a real Asterisk: examples/mfc driven by real calls through the sandbox.

The engine runs in this process (in a thread of its own) with a clock the tests can
move, so a rule "on Mondays" applies when a test says it is Monday. Calls are placed
with `astpbx call`, which dials through Asterisk and reads the engine's call log.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from ast_pbx.core.call import Phase
from ast_pbx.engine.engine import Engine
from tests.conftest import EXAMPLE
from tests.live_engine import LiveEngine, MovableClock, eventually
from tests.sandbox_fixture import SandboxInfo

pytestmark = pytest.mark.asterisk

MSK = ZoneInfo("Europe/Moscow")
TUESDAY = datetime(2026, 3, 3, 10, 0, tzinfo=MSK)
MONDAY = datetime(2026, 3, 2, 10, 0, tzinfo=MSK)

# Phones answered by Local channels: the engine dials Local/N@astpbx-test-phones.
# 1111 (the first member of queue 92000) never answers; the others answer at once.
TEST_PHONES = """\
[astpbx-test-phones]
exten => 1111,1,Wait(30)
 same => n,Hangup()
exten => _X!,1,Answer()
 same => n,Wait(2)
 same => n,Hangup()
"""


@dataclass
class Live:
    config: Path  # what the engine runs (tests edit it)
    caller_config: Path  # a copy `astpbx call` reads: it stays valid while tests break `config`
    runner: LiveEngine

    @property
    def clock(self) -> MovableClock:
        assert isinstance(self.runner.clock, MovableClock)
        return self.runner.clock

    @property
    def engine(self) -> Engine | None:
        return self.runner.engine

    def call(
        self,
        to: str,
        input_text: str = "",
        *,
        hang_up: bool = False,
        timeout: float = 30,
        caller: str = "+79001112233",
    ) -> tuple[list[str], str]:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "ast_pbx",
                "call",
                str(self.caller_config),
                "--to",
                to,
                "--from",
                caller,
                "--input",
                input_text,
                "--timeout",
                str(timeout),
                *(["--hang-up"] if hang_up else []),
            ],
            capture_output=True,
            text=True,
            timeout=timeout + 60,
            check=False,
        )
        lines = dict(line.split(": ", 1) for line in result.stdout.splitlines() if ": " in line)
        assert "visits" in lines, result.stdout + result.stderr
        return lines["visits"].split(), lines["ends"]


def _write_config(sandbox: SandboxInfo, base: Path) -> Path:
    config = base / "config"
    shutil.copytree(
        EXAMPLE, config, ignore=shutil.ignore_patterns("system.yaml", "directory.yaml", "*.md")
    )
    dial = 'phone_dial: "Local/{number}@astpbx-test-phones", presence: always'
    (config / "system.yaml").write_text(sandbox.system_yaml(base, dial), encoding="utf-8")
    # A menu with handlers but no timeout handler: it hangs up after 15 s by default.
    (config / "zz-live.yaml").write_text(
        textwrap.dedent("""\
        menus:
          - number: "96000"
            entry: true
            say: Нажмите единицу.
            on:
              - {key: "1", goto: "93000"}
        """),
        encoding="utf-8",
    )
    return config


@pytest.fixture(scope="module")
def live(sandbox: SandboxInfo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    base = tmp_path_factory.mktemp("live")
    config = _write_config(sandbox, base)
    caller_config = base / "caller"
    shutil.copytree(config, caller_config)
    runner = LiveEngine(config)
    live = Live(config, caller_config, runner)
    live.clock.set(TUESDAY)
    with sandbox.applied(config, TEST_PHONES):
        runner.start()
        try:
            yield live
        finally:
            runner.stop()


def test_key_reaches_the_queue(live: Live) -> None:
    live.clock.set(TUESDAY)
    visits, ends = live.call("90000", "w1 2 w1", hang_up=True)
    assert visits == ["90000", "92000"]
    assert ends == "queue 92000 (caller hung up in the queue)"


def test_the_queue_rings_its_members_in_turn(live: Live) -> None:
    # 1111 rings for ring_timeout (5 s) without answering, then 1001 answers.
    live.clock.set(TUESDAY)
    started = time.monotonic()
    visits, ends = live.call("92000", timeout=30)
    assert visits == ["92000"]
    assert ends == "queue 92000 (answered by 1001)"
    assert time.monotonic() - started > 5


def test_every_menu_by_keys_and_a_digits_entry(live: Live) -> None:
    live.clock.set(TUESDAY)
    assert live.call("90000", "w1 1 w1 1 w1 1 9 * 0 3 #")[0] == ["90000", "91000", "91100", "91110"]
    visits, ends = live.call("90000", "w1 1 w1 2")
    assert visits == ["90000", "91000", "91200"]
    assert ends.startswith("hangup (menu without handlers)")
    visits, ends = live.call("90000", "w1 3")
    assert visits == ["90000", "93000"]


def test_a_timeout_handler(live: Live) -> None:
    # 91000's timeout (15 s after its prompt ends) leads back to the main menu.
    live.clock.set(TUESDAY)
    visits, _ = live.call("91000", "w25", hang_up=True)
    assert visits == ["91000", "90000"]


def test_the_default_15_s_hang_up(live: Live) -> None:
    visits, ends = live.call("96000", timeout=30)
    assert visits == ["96000"]
    assert ends == "hangup (no input)"


def test_a_rule_applies_at_the_engines_clock(live: Live) -> None:
    live.clock.set(MONDAY)
    try:
        visits, _ = live.call("90000", "w1 2 w1", hang_up=True)
    finally:
        live.clock.set(TUESDAY)
    assert visits == ["90000", "92000", "95000"]


def test_a_phone_answered_by_a_local_channel(live: Live) -> None:
    visits, ends = live.call("1001", timeout=20)
    assert visits == ["1001"]
    assert ends.startswith("phone 1001")


def test_a_trunk_matched_number(live: Live) -> None:
    visits, ends = live.call("1234567890", timeout=20)
    assert visits == ["1234567890"]
    assert ends.startswith("trunk rt")


def test_concurrent_test_calls_each_report_their_own(live: Live) -> None:
    """`astpbx call`s at once each get their own events and their own log entry
    (they used to share one ARI application and steal each other's events)."""
    live.clock.set(TUESDAY)
    inputs = ["w1 1 w1 2", "w1 3", "w1 1 w1 1 w1 1 9 * 0 3 #"] * 3
    with ThreadPoolExecutor(len(inputs)) as pool:
        results = list(pool.map(lambda keys: live.call("90000", keys, timeout=40), inputs))
    paths = {
        "w1 1 w1 2": ["90000", "91000", "91200"],
        "w1 3": ["90000", "93000"],
        "w1 1 w1 1 w1 1 9 * 0 3 #": ["90000", "91000", "91100", "91110"],
    }
    assert [visits for visits, _ in results] == [paths[keys] for keys in inputs]


def test_a_test_call_while_the_config_on_disk_is_broken(live: Live) -> None:
    """The engine keeps serving its last good config, so a probe must keep working: only
    the system section has to be valid."""
    broken = live.caller_config / "zz-broken.yaml"
    broken.write_text('menus:\n  - {number: "97900", on: [{key: "1", goto: "55555"}]}\n')
    try:
        result = subprocess.run(
            [sys.executable, "-m", "ast_pbx", "call", str(live.caller_config), "--to", "96000"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        broken.unlink()
    assert result.returncode == 0, result.stderr
    assert "visits: 96000" in result.stdout
    assert "error(s)" in result.stderr and "last good config" in result.stderr


def _wait_for(condition: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def test_a_config_change_applies_to_the_next_call_only(
    live: Live, caplog: pytest.LogCaptureFixture
) -> None:
    engine = live.engine
    assert engine is not None
    menus = live.config / "zz-live.yaml"
    original = menus.read_text(encoding="utf-8")
    first_version = engine.current.version
    before = set(engine.sessions.copy())

    def waiting_in_96000() -> list[str]:
        """New calls in 96000 on the first version, waiting for a key."""
        return [
            session.id
            for session in engine.sessions.copy().values()
            if session.id not in before
            and session.version.version == first_version
            and session.call.node is not None
            and session.call.node.number == "96000"
            and session.call.phase is Phase.WAITING
        ]

    def rejected() -> list[logging.LogRecord]:
        return [
            r
            for r in caplog.records
            if r.name == "astpbx.engine" and "not reloaded" in r.getMessage()
        ]

    in_progress = ThreadPoolExecutor(1).submit(live.call, "96000", "", timeout=30)
    eventually(waiting_in_96000)
    try:
        menus.write_text(original + '      - {timeout: 2, goto: "93000"}\n', encoding="utf-8")
        assert _wait_for(lambda: engine.current.version != first_version, 10)
        visits, _ = live.call("96000", timeout=20)
        assert visits == ["96000", "93000"]  # the new timeout handler
        assert in_progress.result(timeout=60) == (["96000"], "hangup (no input)")

        changed_version = engine.current.version
        assert rejected() == []
        menus.write_text("menus: [\n", encoding="utf-8")  # broken: logged, not loaded
        eventually(rejected)  # the engine read it and refused it
        assert engine.current.version == changed_version
        visits, _ = live.call("96000", timeout=20)
        assert visits == ["96000", "93000"]
    finally:
        menus.write_text(original, encoding="utf-8")
        _wait_for(lambda: engine.current.version == first_version, 10)


def test_the_engine_reconnects_after_asterisk_restarts(live: Live, sandbox: SandboxInfo) -> None:
    engine = live.engine
    assert engine is not None
    stopped = sandbox.astpbx("sandbox", "down", str(sandbox.config_dir))
    assert stopped.returncode == 0, stopped.stderr
    assert _wait_for(lambda: not engine.ari.connected, 10)
    started = sandbox.astpbx("sandbox", "up", str(sandbox.config_dir))
    assert started.returncode == 0, started.stdout + started.stderr
    assert _wait_for(lambda: engine.ari.connected, 20)
    live.clock.set(TUESDAY)
    visits, _ = live.call("90000", "w1 2 w1", hang_up=True)
    assert visits == ["90000", "92000"]
