"""Callers through SIP trunks, played by SIPp: the IVR of examples/mfc as a citizen
meets it, in each DTMF mode (RFC 4733 events, SIP INFO, inband tones).

Every path a SIPp caller takes must be the one `astpbx simulate` gives for the same
input, every ARI event must reach the engine once (a PJSIP channel's events used to
arrive twice), and what the caller hears must be the prompt, not silence.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import pytest

from tests.live_engine import eventually
from tests.sandbox_fixture import SandboxInfo
from tests.sip_world import DTMF_MODES, TRUNK_OF_MODE, SipWorld, start_world

pytestmark = [pytest.mark.asterisk, pytest.mark.sip]

CASE = "w2 1 w2 1 w2 1 9 * 0 3 * 2 0 4 4 #"  # case 19.03-2044 of the demo directory


@pytest.fixture(scope="module")
def world(sandbox: SandboxInfo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SipWorld]:
    world, stop = start_world(sandbox, tmp_path_factory.mktemp("sip-ivr"))
    try:
        yield world
    finally:
        stop()


@pytest.fixture(autouse=True)
def once_each(world: SipWorld) -> Iterator[None]:
    """After every test: no ARI event reached the engine twice, no call is left."""
    yield
    duplicates = world.events.duplicates()
    assert not duplicates, "\n".join(duplicates)
    eventually(lambda: not world.engine.sessions, 10)


def _call(world: SipWorld, mode: str, number: str, keys: str, ends: str) -> list[str]:
    before = world.last_call()
    result = world.callers[mode].call(number, keys, dtmf=mode, ends=ends)
    assert result.ok, result.output
    record = world.logged(before, number)
    assert record.trunk == TRUNK_OF_MODE[mode]
    return list(record.path)


@pytest.mark.parametrize("mode", DTMF_MODES)
def test_a_case_number_with_star_and_pound(world: SipWorld, mode: str) -> None:
    spoken = len(world.spoken)
    visits = _call(world, mode, "90000", CASE, ends="remote")
    assert visits == ["90000", "91000", "91100", "91110"]
    assert visits == world.simulated("90000", CASE, TRUNK_OF_MODE[mode])
    # The status the demo directory holds for 19.03-2044, read to the caller.
    assert any("Открыто" in text for text in world.spoken[spoken:]), world.spoken[spoken:]


@pytest.mark.parametrize("mode", DTMF_MODES)
def test_key_0_repeats_the_menu_once(world: SipWorld, mode: str) -> None:
    keys = "w2 0 w2 3"
    visits = _call(world, mode, "90000", keys, ends="remote")
    assert visits == ["90000", "90000", "93000"]
    assert visits == world.simulated("90000", keys, TRUNK_OF_MODE[mode])


@pytest.mark.parametrize("mode", DTMF_MODES)
@pytest.mark.parametrize(
    ("keys", "path"),
    [
        ("w2 1 w2 2", ["90000", "91000", "91200"]),
        ("w2 3", ["90000", "93000"]),
        ("w2 2 w3", ["90000", "92000"]),
    ],
)
def test_every_menu_by_key(world: SipWorld, mode: str, keys: str, path: list[str]) -> None:
    ends = "local" if path[-1] == "92000" else "remote"  # nobody answers in the queue
    visits = _call(world, mode, "90000", keys, ends=ends)
    assert visits == path
    assert visits == world.simulated("90000", keys, TRUNK_OF_MODE[mode])


def test_the_timeout_counts_from_the_end_of_the_prompt(world: SipWorld) -> None:
    # 90000 says its prompt (~12 s), then waits 15 s for a key before the queue.
    started, asked = len(world.events.seen), len(world.events.requests)
    visits = _call(world, "rfc4733", "90000", "w30", ends="local")
    assert visits == ["90000", "92000"] == world.simulated("90000", "w30")
    finished = next(e for e in world.events.seen[started:] if e["type"] == "PlaybackFinished")
    plays = [at for at, method, path in world.events.requests[asked:] if path.endswith("/play")]
    waited = plays[1] - finished["_received"]  # the prompt's end → the queue's first item
    assert 14.5 <= waited <= 16.0, waited


@pytest.mark.parametrize("mode", DTMF_MODES)
def test_a_key_interrupts_the_prompt(world: SipWorld, mode: str) -> None:
    started = len(world.events.seen)
    visits = _call(world, mode, "90000", "w2 1 w3", ends="local")
    assert visits == ["90000", "91000"]
    events = world.events.seen[started:]
    key = next(e for e in events if e["type"] == "ChannelDtmfReceived")
    stopped = next(e for e in events if e["type"] == "PlaybackFinished")
    # The main menu's prompt lasts ~12 s; it stopped at the key, not at its end.
    assert 0 <= _at(stopped) - _at(key) < 0.5
    assert [e["digit"] for e in events if e["type"] == "ChannelDtmfReceived"] == ["1"]


@pytest.mark.parametrize("mode", DTMF_MODES)
def test_hanging_up_during_the_prompt(world: SipWorld, mode: str) -> None:
    before = world.last_call()
    result = world.callers[mode].call("90000", "w2", ends="local")
    assert result.ok, result.output
    record = world.logged(before, "90000")
    assert (list(record.path), record.outcome, record.reason) == (
        ["90000"],
        "hangup",
        "caller hung up",
    )
    status, channels = world.sandbox.ari("GET", "channels")
    assert status == 200
    assert channels == []


def test_the_caller_hears_the_prompt(world: SipWorld) -> None:
    result = world.callers["rfc4733"].call("90000", "w6", ends="local")
    assert result.ok, result.output
    heard = result.heard
    # Six seconds of the call's audio came back, most of it speech, not silence.
    assert 5.0 <= heard.seconds <= 7.5, heard.seconds
    assert heard.loud_seconds() >= 3.0, heard.loud_seconds()


def _at(event: dict[str, object]) -> float:
    return datetime.fromisoformat(str(event["timestamp"]).replace("+0000", "+00:00")).timestamp()
