"""The dialer's calls outlive the engine: a citizen answered by a SIPp far end hears the
message to its end after `astpbx run` was killed with -9 mid-message, is phoned once,
and the attempt counts once."""

from __future__ import annotations

import socket
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ast_pbx.storage.db import open_database
from ast_pbx.storage.dialer import DialerStore
from tests.engine_process import EngineProcess
from tests.live_engine import eventually
from tests.rtp import RtpSink
from tests.sandbox_fixture import SandboxInfo, free_port
from tests.sip_world import write_config
from tests.sipp import FarEnd, uas_scenario

pytestmark = [pytest.mark.asterisk, pytest.mark.sip]

CITIZEN = "79001230001"
DIALER = """\
dialer:
  enabled: true
  lines: 2
  retry_after: 60
  max_unanswered: 3
  max_failed: 5
  ring_timeout: 10
  hours: "00:00-24:00"
"""


def test_a_dialer_call_killed_mid_message_is_finished_and_counted_once(
    sandbox: SandboxInfo, tmp_path: Path
) -> None:
    port = free_port(socket.SOCK_DGRAM)
    config = write_config(sandbox, tmp_path, {"rfc4733": port}, files={"dialer.yaml": DIALER})
    (config / "rules.yaml").unlink()
    (config / "tests.yaml").unlink()
    database = open_database(f"sqlite:///{tmp_path}/calls.db")
    engine = EngineProcess(config, tmp_path / "engine.log")
    far = FarEnd(port, tmp_path / "sipp", "citizen")
    with sandbox.applied(config), RtpSink() as citizen:
        try:
            engine.start()
            store = DialerStore(database)
            far.start(uas_scenario(CITIZEN, 200, citizen.port))
            text = "Ваше дело готово, его можно забрать в любом центре. " * 3
            task, _ = store.add(CITIZEN, text, datetime.now(UTC), repeat=2)
            # Answered at once; the message (twice) takes well over ten seconds.
            eventually(lambda: (a := store.attempts(task.id)) and a[0].answered_at, 20)
            time.sleep(1.5)
            engine.kill()
            engine.start()
            assert "call astpbx-test-dialer-" in engine.lines()  # adopted by the dialer
            assert "had not started" not in engine.lines()  # and by nothing else
            ok, output = far.result(timeout=90)
            assert ok, output  # one INVITE answered, then the engine's BYE
            assert far.received().count("INVITE sip:") == 1
            done = eventually(lambda: (t := store.get(task.id)) and t.done and t, 30)
            attempts = store.attempts(task.id)
            assert [a.outcome for a in attempts] == ["answered"]
            assert done.attempts == 1
            assert citizen.heard.loud_seconds() >= 3  # the message went on after the kill
        finally:
            far.stop()
            engine.stop()
            database.dispose()
