"""A standby engine: two `astpbx run` for one Asterisk and one PostgreSQL. One leads
(PostgreSQL's advisory lock), the other waits without touching ARI and, when the leader
is killed with -9, takes over its calls — a SIPp caller in a menu goes on as if nothing
happened."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ast_pbx.storage.calls import CallLog
from ast_pbx.storage.db import open_database
from tests.engine_process import EngineProcess
from tests.live_engine import eventually
from tests.sandbox_fixture import SandboxInfo, free_port
from tests.sip_world import write_config
from tests.sipp import Caller, CallResult
from tests.storage_fixtures import postgres_url_fixture  # noqa: F401

pytestmark = [pytest.mark.asterisk, pytest.mark.sip, pytest.mark.postgres]


@pytest.fixture
def config(sandbox: SandboxInfo, tmp_path: Path, postgres_url: str) -> Iterator[tuple[Path, int]]:
    port = free_port(socket.SOCK_DGRAM)
    config = write_config(sandbox, tmp_path, {"rfc4733": port})
    (config / "rules.yaml").unlink()
    (config / "tests.yaml").unlink()
    system = config / "system.yaml"
    lines = system.read_text(encoding="utf-8").splitlines()
    lines = [f'  database: "{postgres_url}"' if "database:" in ln else ln for ln in lines]
    system.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with sandbox.applied(config):
        yield config, port


def test_the_standby_takes_over_a_killed_leaders_calls(
    sandbox: SandboxInfo, config: tuple[Path, int], tmp_path: Path, postgres_url: str
) -> None:
    path, port = config
    first = EngineProcess(path, tmp_path / "first.log")
    second = EngineProcess(path, tmp_path / "second.log")
    database = open_database(postgres_url)
    log = CallLog(database)
    try:
        first.start()
        second.start(leading=False)
        second.wait_for("standing by")
        results: list[CallResult] = []
        caller = Caller(sandbox.sip, port, tmp_path / "sipp")
        thread = threading.Thread(
            target=lambda: results.append(caller.call("90000", "w3 1 w10 2", timeout=120))
        )
        thread.start()
        time.sleep(5)
        assert "ARI connected" not in second.lines()  # a standby leaves ARI alone
        first.kill()
        killed = time.monotonic()
        taken_over = second.wait_for("in charge of 1 calls", 10)
        took = time.monotonic() - killed
        assert took < 3, f"{took:.2f} s from the kill to the calls adopted ({taken_over})"
        thread.join(120)
        assert results and results[0].ok, results[0].output if results else "no result"

        def closed() -> list[str] | None:
            calls = log.logged_after(0)
            return list(calls[0].path) if len(calls) == 1 and calls[0].ended_at else None

        assert eventually(closed, 20) == ["90000", "91000", "91200"]
        assert "adopted: menu 91000" in second.lines()
    finally:
        first.stop()
        second.stop()
        database.dispose()
