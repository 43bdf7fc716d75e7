"""Conversations outlive the engine: pjsua2 phones talking, ringing or in the middle of a
`*2` transfer while `astpbx run` is killed with -9 and started again.

The engine is a process of its own (`tests.engine_process`) on examples/mfc; the phones
register to the sandbox like real ones and call each other through it.
"""

from __future__ import annotations

import socket
import time
import wave
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ast_pbx.config.configuration import Config
from ast_pbx.lint.linter import load_for_use
from ast_pbx.storage.calls import CallLog, CallRecord
from ast_pbx.storage.db import open_database
from tests.engine_process import EngineProcess
from tests.live_engine import eventually
from tests.sandbox_fixture import SandboxInfo, free_port
from tests.sip_world import write_config
from tests.softphone import AnswerMode, Phone, Softphones
from tests.test_sip_phones import loud_seconds, tone

pytestmark = [pytest.mark.asterisk, pytest.mark.sip]


@dataclass
class Site:
    sandbox: SandboxInfo
    config: Config
    engine: EngineProcess
    log: CallLog

    def closed(self, after: int, timeout: float = 30) -> CallRecord:
        def found() -> CallRecord | None:
            calls = self.log.logged_after(after)
            return calls[0] if len(calls) == 1 and calls[0].ended_at else None

        record: CallRecord = eventually(found, timeout)
        return record


@pytest.fixture(scope="module")
def site(sandbox: SandboxInfo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    base = tmp_path_factory.mktemp("survival-phones")
    path = write_config(sandbox, base, {"rfc4733": free_port(socket.SOCK_DGRAM)})
    (path / "rules.yaml").unlink()
    (path / "tests.yaml").unlink()
    config = load_for_use(str(path), need_env=False).config
    with sandbox.applied(path):
        engine = EngineProcess(path, base / "engine.log")
        database = open_database(f"sqlite:///{base}/calls.db")
        engine.start()
        try:
            yield Site(sandbox, config, engine, CallLog(database))
        finally:
            engine.stop()
            database.dispose()


@pytest.fixture
def phones(site: Site, tmp_path: Path) -> Iterator[Softphones]:
    if site.engine.process is None or site.engine.process.poll() is not None:
        site.engine.start()
    with Softphones(log=tmp_path / "pjsua.log") as agent:
        yield agent


def add(
    site: Site,
    agent: Softphones,
    number: str,
    *,
    answer: AnswerMode = "auto",
    answer_after: float = 0.0,
    record_dir: Path | None = None,
) -> Phone:
    password = next(p.password for p in site.config.phones if p.number == number)
    phone = agent.add(
        number,
        password=password,
        registrar=site.sandbox.sip,
        answer=answer,
        answer_after=answer_after,
        record_dir=record_dir,
    )
    assert phone.registration == 200, phone

    def online() -> bool:
        status, endpoint = site.sandbox.ari("GET", f"endpoints/PJSIP/{number}")
        return status == 200 and endpoint.get("state") == "online"

    eventually(online, 10)
    return phone


def restart(site: Site) -> None:
    site.engine.kill()
    site.engine.start()


def confirmed(agent: Softphones, name: str, call: int) -> bool:
    return agent.call_info(name, call).state == "CONFIRMED"


def test_a_conversation_goes_on_recorded_and_star_2_works_after_a_kill(
    site: Site, phones: Softphones, tmp_path: Path
) -> None:
    add(site, phones, "1001")
    add(site, phones, "2609", answer_after=1.0, record_dir=tmp_path)
    caller = add(site, phones, "123456")
    before = site.log.last_id()
    started = time.monotonic()
    call = phones.call(caller.name, f"sip:1001@{site.sandbox.sip}")
    phones.wait_state("1001", 1, "CONFIRMED", timeout=15)
    phones.play(caller.name, tone(tmp_path / "caller.wav", 40.0, 500.0))
    time.sleep(2)
    restart(site)
    assert "adopted: talking" in site.engine.lines()
    time.sleep(1)
    assert confirmed(phones, caller.name, call) and confirmed(phones, "1001", 1)
    phones.dtmf("1001", "*2")  # the adopted conversation takes the transfer keys
    time.sleep(1)
    phones.dtmf("1001", "2609#")
    phones.wait_state("2609", 1, "CONFIRMED", timeout=15)
    time.sleep(2)
    phones.hangup("1001")
    time.sleep(3)
    phones.hangup(caller.name, call)
    talked = time.monotonic() - started
    record = site.closed(before)
    assert record.outcome == "phone 1001"
    assert record.reason is not None and "transferred to 2609" in record.reason
    assert loud_seconds(phones.wait_recording("2609", 1)) >= 2.0  # 2609 heard the caller
    # The recording started before the kill runs to the caller's hang-up.
    recorded = eventually(lambda: site.log.logged_after(before)[0].recording, 30)
    with wave.open(recorded) as sound:
        seconds = sound.getnframes() / sound.getframerate()
    assert seconds >= talked - 3, (seconds, talked)


def test_a_transfer_under_way_falls_back_to_the_conversation(
    site: Site, phones: Softphones, tmp_path: Path
) -> None:
    add(site, phones, "1001", record_dir=tmp_path)
    add(site, phones, "2609", answer="never")
    caller = add(site, phones, "123456")
    before = site.log.last_id()
    call = phones.call(caller.name, f"sip:1001@{site.sandbox.sip}")
    phones.wait_state("1001", 1, "CONFIRMED", timeout=15)
    phones.play(caller.name, tone(tmp_path / "caller.wav", 40.0, 500.0))
    time.sleep(1)
    phones.dtmf("1001", "*2")
    time.sleep(1)
    phones.dtmf("1001", "2609#")
    phones.wait_incoming("2609", 10)  # the target rings; the caller hears the playlist
    restart(site)
    assert "falls back to the conversation" in site.engine.lines()
    phones.wait_state("2609", 1, "DISCONNECTED", timeout=10)  # the target is hung up
    time.sleep(5)  # 1001 talks with the caller again
    assert confirmed(phones, caller.name, call) and confirmed(phones, "1001", 1)
    phones.hangup(caller.name, call)
    record = site.closed(before)
    assert record.outcome == "phone 1001"
    assert "transferred" not in (record.reason or "")
    assert loud_seconds(phones.wait_recording("1001", 1, timeout=15)) >= 5.0


def test_a_phone_ringing_through_a_kill_is_answered_into_the_conversation(
    site: Site, phones: Softphones, tmp_path: Path
) -> None:
    add(site, phones, "2609", answer_after=5.0, record_dir=tmp_path)
    caller = add(site, phones, "123456")
    before = site.log.last_id()
    call = phones.call(caller.name, f"sip:2609@{site.sandbox.sip}")
    phones.wait_incoming("2609", 10)
    time.sleep(1)
    restart(site)  # 2609 answers while no engine, or just after the next took over
    phones.wait_state("2609", 1, "CONFIRMED", timeout=15)
    phones.wait_state(caller.name, call, "CONFIRMED", timeout=15)
    phones.play(caller.name, tone(tmp_path / "caller.wav", 10.0, 500.0))
    time.sleep(4)
    phones.hangup(caller.name, call)
    record = site.closed(before)
    assert record.outcome == "phone 2609"
    assert loud_seconds(phones.wait_recording("2609", 1, timeout=15)) >= 2.0


def test_a_member_ringing_through_a_kill_is_rung_again_and_connects(
    site: Site, phones: Softphones, tmp_path: Path
) -> None:
    add(site, phones, "1001", answer="manual", record_dir=tmp_path)
    caller = add(site, phones, "123456")
    before = site.log.last_id()
    call = phones.call(caller.name, f"sip:92000@{site.sandbox.sip}")
    first = phones.wait_incoming("1001", 15)
    time.sleep(0.5)  # the engine has written where the call is (not a test of that race)
    mark = phones.mark()
    restart(site)
    assert "adopted: queue 92000" in site.engine.lines()
    phones.wait_state("1001", first, "DISCONNECTED", timeout=10, since=mark)
    again = phones.wait_incoming("1001", 15, since=mark)  # the queue rings afresh
    phones.answer("1001", again)
    phones.wait_state("1001", again, "CONFIRMED", timeout=10)
    phones.play(caller.name, tone(tmp_path / "caller.wav", 10.0, 500.0))
    time.sleep(4)
    phones.hangup(caller.name, call)
    record = site.closed(before)
    assert record.outcome == "queue 92000"
    assert list(record.path) == ["92000"]
    assert loud_seconds(phones.wait_recording("1001", again, timeout=15)) >= 2.0


def test_listen_in_legs_left_by_a_dead_engine_end_and_the_talk_goes_on(
    site: Site, phones: Softphones, tmp_path: Path
) -> None:
    add(site, phones, "1001", record_dir=tmp_path)
    add(site, phones, "1987")  # the manager's phone, listening in
    caller = add(site, phones, "123456")
    before = site.log.last_id()
    call = phones.call(caller.name, f"sip:1001@{site.sandbox.sip}")
    phones.wait_state("1001", 1, "CONFIRMED", timeout=15)
    phones.play(caller.name, tone(tmp_path / "caller.wav", 30.0, 500.0))
    (channel,) = [r.channel_id for r in site.log.logged_after(before)]
    site.engine.kill()
    # What a listen-in the dead engine had started looks like: a snoop on the caller and
    # the manager's phone answered, both in the app with the monitor's arguments.
    app = site.sandbox.app
    status, _ = site.sandbox.ari(
        "POST",
        f"channels/{channel}/snoop",
        spy="both",
        app=app,
        appArgs="snoop,listen1",
        snoopId="snoop-left1",
    )
    assert status == 200
    status, _ = site.sandbox.ari(
        "POST",
        "channels",
        endpoint="PJSIP/1987",
        app=app,
        appArgs="listener,listen1",
        channelId="listener-left1",
    )
    assert status == 200
    phones.wait_state("1987", 1, "CONFIRMED", timeout=15)
    site.engine.start()
    phones.wait_state("1987", 1, "DISCONNECTED", timeout=10)  # the listener is let go
    time.sleep(3)
    assert confirmed(phones, caller.name, call) and confirmed(phones, "1001", 1)
    phones.hangup(caller.name, call)
    record = site.closed(before)
    assert record.outcome == "phone 1001"
    assert loud_seconds(phones.wait_recording("1001", 1, timeout=15)) >= 3.0
