"""Operator phones that are real softphones (pjsua2, PJSIP's own user agent) registered
with the sandbox's Asterisk from 127.0.0.1 — the host the trunks are on too.

examples/mfc's phones, plus queues of this module's own:
  97001  members 1001, 1111, 2609, ring_at_once 3 (one answers, one is busy, one never)
  97002  members 1001, 1111, sticky
A phone's answer mode is set per test; 1987 is the manager's (listen-in) phone,
123456 calls in as a colleague would.
"""

from __future__ import annotations

import math
import os
import signal
import time
import wave
from collections.abc import Iterator
from pathlib import Path

import pytest

from ast_pbx.core.scenarios import FixtureDirectory
from ast_pbx.core.simulator import simulate
from ast_pbx.engine.session import CallSession
from tests.live_engine import eventually
from tests.sandbox_fixture import SandboxInfo
from tests.sip_world import MSK, TUESDAY, SipWorld, start_world
from tests.softphone import AnswerMode, DtmfMethod, Phone, Softphones

pytestmark = [pytest.mark.asterisk, pytest.mark.sip]

QUEUES = """\
queues:
  - {number: "97001", members: ["1001", "1111", "2609"], ring_at_once: 3, ring_timeout: 10}
  - {number: "97002", members: ["1001", "1111"], sticky: true, ring_timeout: 4}
"""


@pytest.fixture(scope="module")
def world(sandbox: SandboxInfo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SipWorld]:
    world, stop = start_world(
        sandbox, tmp_path_factory.mktemp("sip-phones"), files={"zz-queues.yaml": QUEUES}
    )
    try:
        yield world
    finally:
        stop()


@pytest.fixture
def phones(world: SipWorld, tmp_path: Path) -> Iterator[Softphones]:
    with Softphones(log=tmp_path / "pjsua.log") as agent:
        yield agent
    # Every phone unregistered when the agent quit: the engine saw them go offline.
    numbers = [p.number for p in world.engine.current.config.phones]
    online = world.engine.presence.online
    eventually(lambda: not any(online.get(n) for n in numbers), 10)
    duplicates = world.events.duplicates()
    assert not duplicates, "\n".join(duplicates)


def tone(path: Path, seconds: float = 8.0, hz: float = 700.0) -> Path:
    """A loud sine tone, 8 kHz 16-bit mono: what an operator "says" in a test."""
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        samples = (
            int(12000 * math.sin(2 * math.pi * hz * n / 8000)) for n in range(int(8000 * seconds))
        )
        out.writeframes(b"".join(s.to_bytes(2, "little", signed=True) for s in samples))
    return path


def loud_seconds(path: Path, threshold: float = 1000.0) -> float:
    with wave.open(str(path)) as sound:
        rate, width = sound.getframerate(), sound.getsampwidth()
        data = sound.readframes(sound.getnframes())
    frame = rate // 50
    values = [
        int.from_bytes(data[i : i + width], "little", signed=True)
        for i in range(0, len(data), width)
    ]
    loud = sum(
        1
        for start in range(0, len(values) - frame + 1, frame)
        if math.sqrt(sum(v * v for v in values[start : start + frame]) / frame) > threshold
    )
    return loud / 50


def add_phone(
    world: SipWorld,
    agent: Softphones,
    number: str,
    *,
    answer: AnswerMode = "auto",
    record_dir: Path | None = None,
    answer_after: float = 0.0,
) -> Phone:
    password = next(p.password for p in world.engine.current.config.phones if p.number == number)
    phone = agent.add(
        number,
        password=password,
        registrar=world.sandbox.sip,
        answer=answer,
        answer_after=answer_after,
        record_dir=record_dir,
    )
    assert phone.registration == 200, phone
    eventually(lambda: world.engine.presence.online.get(number), 10)
    return phone


def session_of(world: SipWorld, caller: str) -> CallSession:
    def found() -> CallSession | None:
        return next((s for s in world.engine.sessions.values() if s.call.caller == caller), None)

    session: CallSession = eventually(found, 10)
    return session


def test_registration_unregistration_and_expiry(world: SipWorld, phones: Softphones) -> None:
    online = world.engine.presence.online
    add_phone(world, phones, "2609")
    assert online["2609"] is True
    assert phones.unregister("2609") == 200
    eventually(lambda: online.get("2609") is False, 10)
    assert phones.register("2609") == 200
    eventually(lambda: online.get("2609"), 10)
    # A phone that dies without unregistering: Asterisk's qualify (every 30 s) finds
    # it gone and the engine follows.
    with Softphones() as dying:
        add_phone(world, dying, "1111")
        assert dying.pid is not None
        os.kill(dying.pid, signal.SIGKILL)
        eventually(lambda: online.get("1111") is False, 75, every=0.5)


def test_a_phone_added_to_the_config_is_followed(world: SipWorld, phones: Softphones) -> None:
    """A phone added while the engine runs (edit, the engine reloads, `astpbx apply`)
    registers, and the engine sees it online and offline."""
    extra = world.config / "zz-new-phone.yaml"
    extra.write_text('phones:\n  - {number: "2700", password: "Sip-2700-Xk3mVq8L"}\n', "utf-8")
    try:
        eventually(lambda: any(p.number == "2700" for p in world.engine.current.config.phones))
        applied = world.sandbox.astpbx("apply", str(world.config))
        assert applied.returncode == 0, applied.stdout + applied.stderr
        add_phone(world, phones, "2700")  # waits for the engine to see it online
        phones.unregister("2700")
        eventually(lambda: world.engine.presence.online.get("2700") is False, 10)
    finally:
        extra.unlink()
        world.sandbox.astpbx("apply", str(world.config))
        eventually(lambda: all(p.number != "2700" for p in world.engine.current.config.phones))


@pytest.mark.parametrize("method", ["rfc2833", "info"])
def test_a_softphone_walks_the_ivr(
    world: SipWorld, phones: Softphones, tmp_path: Path, method: DtmfMethod
) -> None:
    """A colleague's softphone (an internal caller) dials the main menu and keys a case
    number; its path is simulate's, and it heard the prompts."""
    caller = add_phone(world, phones, "1987", record_dir=tmp_path)
    before = world.last_call()
    call = phones.call(caller.name, f"sip:90000@{world.sandbox.sip}")
    phones.wait_state(caller.name, call, "CONFIRMED")
    for keys in ("1", "1", "19*03*2044#"):
        time.sleep(2)
        phones.dtmf(caller.name, keys, method)
    phones.wait_state(caller.name, call, "DISCONNECTED", timeout=30)  # the engine hangs up
    record = world.logged(before, "90000")
    assert list(record.path) == ["90000", "91000", "91100", "91110"]
    config = world.engine.current.config
    simulated = simulate(
        config,
        to="90000",
        caller="1987",
        at=TUESDAY,
        tz=MSK,
        input_text="w2 1 w2 1 w2 1 9 * 0 3 * 2 0 4 4 #",
        directory=FixtureDirectory(),
    )
    assert list(record.path) == list(simulated.visits)
    assert loud_seconds(phones.wait_recording(caller.name, call)) >= 3.0


def test_ring_at_once_over_three_phones(
    world: SipWorld, phones: Softphones, tmp_path: Path
) -> None:
    add_phone(world, phones, "1001", answer="busy")
    add_phone(world, phones, "1111", answer="never")
    add_phone(world, phones, "2609", answer="auto", answer_after=1.0)
    caller = add_phone(world, phones, "123456", record_dir=tmp_path)
    before = world.last_call()
    call = phones.call(caller.name, f"sip:97001@{world.sandbox.sip}")
    phones.wait_state(caller.name, call, "CONFIRMED")
    # All three rang at once: 1001 said busy, 2609 answered, 1111's ringing stopped.
    answered = phones.wait_state("2609", 1, "CONFIRMED", timeout=15)
    assert answered["event"] == "call_state"
    assert phones.call_info("1001", 1).code == 486
    eventually(lambda: phones.call_info("1111", 1).state == "DISCONNECTED", 10)
    phones.play("2609", tone(tmp_path / "tone.wav", 3.0))
    time.sleep(3.5)
    phones.hangup(caller.name)
    record = world.logged(before, "97001")
    assert (record.outcome, record.reason) == ("queue 97001", "answered by 2609")
    recording = phones.wait_recording(caller.name, call)
    assert loud_seconds(recording) >= 2.0  # the caller heard the operator


def test_sticky_offers_a_repeat_caller_to_the_same_operator(
    world: SipWorld, phones: Softphones
) -> None:
    add_phone(world, phones, "1001", answer="auto")
    add_phone(world, phones, "1111", answer="auto")
    caller = add_phone(world, phones, "123456")
    first = _talk_in_queue(world, phones, caller, "97002")
    # 97002 rings 1001 first; the second call of the day goes to whoever took the first.
    again = _talk_in_queue(world, phones, caller, "97002")
    assert first == again


def _talk_in_queue(world: SipWorld, phones: Softphones, caller: Phone, queue: str) -> str:
    before = world.last_call()
    call = phones.call(caller.name, f"sip:{queue}@{world.sandbox.sip}")
    phones.wait_state(caller.name, call, "CONFIRMED")
    record = None
    session = session_of(world, caller.name)
    eventually(lambda: session.peer is not None, 15)
    time.sleep(1)
    phones.hangup(caller.name, call)
    record = world.logged(before, queue)
    assert record.reason is not None and record.reason.startswith("answered by ")
    return record.reason.removeprefix("answered by ")


def test_star_2_transfer_keyed_on_a_sip_phone_is_recorded_whole(
    world: SipWorld, phones: Softphones, tmp_path: Path
) -> None:
    add_phone(world, phones, "1001", answer="auto")
    add_phone(world, phones, "2609", answer="auto", answer_after=1.0, record_dir=tmp_path)
    caller = add_phone(world, phones, "123456", record_dir=tmp_path)
    before = world.last_call()
    started = time.monotonic()
    call = phones.call(caller.name, f"sip:1001@{world.sandbox.sip}")
    phones.wait_state("1001", 1, "CONFIRMED", timeout=15)
    phones.play(caller.name, tone(tmp_path / "caller.wav", 30.0, 500.0))
    time.sleep(2)
    phones.dtmf("1001", "*2")
    time.sleep(1)
    phones.dtmf("1001", "2609#")
    phones.wait_state("2609", 1, "CONFIRMED", timeout=15)
    time.sleep(2)  # 1001 consults 2609, then hangs up: the caller is 2609's now
    phones.hangup("1001")
    session = session_of(world, caller.name)
    eventually(lambda: session.peer_number == "2609", 10)
    time.sleep(3)
    phones.hangup(caller.name, call)
    talked = time.monotonic() - started
    record = world.logged(before, "1001", timeout=30)
    assert record.reason is not None
    # 2609 heard the caller after the transfer.
    assert loud_seconds(phones.wait_recording("2609", 1)) >= 2.0
    # The recording covers the whole conversation, before and after the transfer.
    recorded = eventually(lambda: world.log.logged_after(before, called="1001")[-1].recording, 30)
    with wave.open(recorded) as sound:
        seconds = sound.getnframes() / sound.getframerate()
    assert seconds >= talked - 3, (seconds, talked)


def test_listen_in_rings_the_managers_sip_phone(
    world: SipWorld, phones: Softphones, tmp_path: Path
) -> None:
    add_phone(world, phones, "1001", answer="auto")
    add_phone(world, phones, "1987", answer="auto", record_dir=tmp_path)
    caller = add_phone(world, phones, "123456")
    call = phones.call(caller.name, f"sip:1001@{world.sandbox.sip}")
    phones.wait_state("1001", 1, "CONFIRMED", timeout=15)
    phones.play("1001", tone(tmp_path / "operator.wav", 12.0))
    session = session_of(world, caller.name)
    world.runner.run(world.engine.monitor.listen(session.id, "1987"))
    phones.wait_state("1987", 1, "CONFIRMED", timeout=15)
    time.sleep(4)
    phones.hangup(caller.name, call)
    heard = phones.wait_recording("1987", 1, timeout=15)
    assert loud_seconds(heard) >= 2.0  # the manager heard the operator's side


def test_a_callback_rings_the_operator_then_the_citizen(
    world: SipWorld, phones: Softphones, tmp_path: Path
) -> None:
    store = world.engine.callbacks
    assert store is not None
    request = store.add("+79005554433", world.engine.clock()).id
    operator = add_phone(world, phones, "1001", answer="auto", answer_after=0.5)
    # The citizen is reached through trunk rt, at the trunk's address and port.
    citizen = phones.add(
        "citizen", user="+79005554433", port=world.callers["rfc4733"].port, answer="auto"
    )
    login = world.engine.current.config.users[0].login
    mark = phones.mark()
    channel = world.runner.run(world.engine.callback_calls.call(request, login, operator.name))
    phones.wait_state("1001", 1, "CONFIRMED", timeout=15, since=mark)
    # Only once the operator has picked up does the citizen's phone ring.
    assert not [
        e for e in phones.events[mark:] if e["event"] == "incoming" and e["phone"] == citizen.name
    ]
    incoming = phones.wait_incoming(citizen.name, timeout=15, since=mark)
    phones.wait_state(citizen.name, incoming, "CONFIRMED", timeout=15)
    info = phones.call_info(citizen.name, incoming)
    assert info.state == "CONFIRMED"
    time.sleep(1)
    phones.hangup(citizen.name)
    done = eventually(lambda: store.get(request).callback_call_id, 10)
    assert done == channel
    assert store.get(request).operator == login
