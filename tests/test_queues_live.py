"""Queues on a real Asterisk: operators are Local channels scripted in the dialplan, the
phones' presence comes from real SIP registrations, callers are Local channels too.

Operators (context astpbx-test-phones, dialed by the engine through phone_dial):
  2001 rings and never answers        2002 answers at once, talks 3 s
  2003 answers after 1 s, talks 3 s    2004 answers, plays a 4 s tone, hangs up
  2005 answers, presses *2, keys 2006#, talks 3 s to 2006, hangs up (a transfer)
  2006 answers, talks 6 s              2007 answers at once, talks 3 s
  2009 the manager's phone: answers and records 4 s of what it hears
  2010 rejects at once                 2011 would answer, but never registers (offline)
Every phone but 2011 is registered (online).
"""

from __future__ import annotations

import array
import logging
import shutil
import subprocess
import textwrap
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ast_pbx.engine.engine import Engine
from ast_pbx.engine.monitor import NoSuchCall
from ast_pbx.engine.presence import UnknownUser
from ast_pbx.engine.session import CallSession
from ast_pbx.storage.calls import CallLog, CallRecord
from ast_pbx.storage.db import open_database
from ast_pbx.storage.queues import QueueStats
from tests.live_engine import Callers, LiveEngine, eventually
from tests.sandbox_fixture import SandboxInfo
from tests.sip_phone import SipPhone

pytestmark = pytest.mark.asterisk

PASSWORD = "secret-for-tests"
PHONES = ["2001", "2002", "2003", "2004", "2005", "2006", "2007", "2009", "2010", "2011"]
OFFLINE = {"2011"}
TONE_SECONDS = 4


def _dialplan(data: Path) -> str:
    tone = data / "test-audio" / "tone"
    listened = data / "test-audio" / "listened"
    return textwrap.dedent(f"""\
        [astpbx-test-phones]
        exten => 2001,1,Wait(60)
        exten => 2002,1,Answer()
         same => n,Wait(3)
         same => n,Hangup()
        exten => 2003,1,Wait(1)
         same => n,Answer()
         same => n,Wait(3)
         same => n,Hangup()
        exten => 2004,1,Answer()
         same => n,Playback({tone})
         same => n,Hangup()
        exten => 2005,1,Answer()
         same => n,Wait(1)
         same => n,SendDTMF(*2,250)
         same => n,Wait(1)
         same => n,SendDTMF(2006#,250)
         same => n,Wait(4)
         same => n,Hangup()
        exten => 2006,1,Answer()
         same => n,Wait(6)
         same => n,Hangup()
        exten => 2007,1,Answer()
         same => n,Wait(3)
         same => n,Hangup()
        exten => 2009,1,Answer()
         same => n,Record({listened}.wav,0,4,qxk)
         same => n,Hangup()
        exten => 2010,1,Hangup(21)
        exten => 2011,1,Answer()
         same => n,Wait(3)
         same => n,Hangup()
        """)


def _queue(number: str, members: list[str], **options: Any) -> str:
    lines = [f'  - number: "{number}"', f"    members: {members}"]
    lines += [f"    {key}: {value}" for key, value in options.items()]
    return "\n".join(lines)


QUEUES = "\n".join(
    [
        "queues:",
        _queue("93001", ["2001", "2002"], ring_timeout=2),
        _queue("93002", ["2001", "2003", "2002"], ring_at_once=2, ring_timeout=5),
        _queue("93003", ["2010", "2001"], ring_timeout=2),
        _queue("93004", ["2011", "2002"], ring_timeout=2),
        _queue("93005", ["2002", "2007"], ring_timeout=3),
        _queue("93006", ["2011"], leave_when_empty="true"),
        _queue("93007", ["2002", "2007"], sticky="true", ring_timeout=3),
        _queue(
            "93008",
            ["2011"],
            playlist="position",
            on='[{key: "1", goto: "96100"}]',
        ),
        _queue("93009", ["2004"]),
        _queue("93010", ["2005"]),
        _queue("93011", ["2004"]),
    ]
)

CONFIG = f"""\
phones:
{chr(10).join(f'  - {{number: "{p}", password: "{PASSWORD}"}}' for p in PHONES)}
users:
  - {{login: ivanova, role: operator, name: Иванова}}
  - {{login: petrov, role: operator, name: Петров}}
  - {{login: smirnova, role: operator, name: Смирнова}}
playlists:
  - id: position
    items:
      - scenario: queue_position
      - say: Пожалуйста, ожидайте.
  - id: transfer
    items:
      - say: Соединяю.
transfer:
  playlist: transfer
menus:
  - number: "96100"
    say: Вы вышли из очереди.
{QUEUES}
"""


def _write_config(sandbox: SandboxInfo, base: Path) -> Path:
    config = base / "config"
    config.mkdir()
    dial = 'phone_dial: "Local/{number}@astpbx-test-phones", presence: endpoint'
    (config / "system.yaml").write_text(sandbox.system_yaml(base, dial), encoding="utf-8")
    (config / "pbx.yaml").write_text(CONFIG, encoding="utf-8")
    return config


@pytest.fixture(scope="module")
def live(sandbox: SandboxInfo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveEngine]:
    base = tmp_path_factory.mktemp("queues")
    config = _write_config(sandbox, base)
    audio = sandbox.data_dir / "test-audio"
    audio.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            *(shutil.which("sox") or "sox", "-n", "-r", "8000", "-c", "1", "-b", "16"),
            *(str(audio / "tone.wav"), "synth", str(TONE_SECONDS), "sine", "440", "vol", "0.5"),
        ],
        check=True,
    )
    phones = [SipPhone(p, PASSWORD, sandbox.sip) for p in PHONES if p not in OFFLINE]
    engine = LiveEngine(config)
    with sandbox.applied(config, _dialplan(sandbox.data_dir)):
        for phone in phones:
            phone.register()
        engine.start()
        try:
            # Presence: what the engine knows of the phones after its first sync.
            eventually(lambda: all(engine_of(engine).presence.online.get(p.number) for p in phones))
            yield engine
        finally:
            engine.stop()
            for phone in phones:
                phone.close()
            shutil.rmtree(audio, ignore_errors=True)


def engine_of(live: LiveEngine) -> Engine:
    assert live.engine is not None
    return live.engine


@pytest.fixture
def callers(live: LiveEngine, sandbox: SandboxInfo) -> Iterator[Callers]:
    with live.callers(sandbox) as callers:
        yield callers


@pytest.fixture
def rings(caplog: pytest.LogCaptureFixture) -> Iterator[list[tuple[str, str]]]:
    """(queue, member) for every member rung, in order, from the engine's log."""
    found: list[tuple[str, str]] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.name == "astpbx.queue" and record.msg.startswith("queue %s: ringing"):
                found.append((str(record.args[0]), str(record.args[1])))  # type: ignore[index]

    handler = Collect(logging.DEBUG)
    logger = logging.getLogger("astpbx.queue")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.DEBUG)
    try:
        yield found
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def logged(live: LiveEngine, channel: str) -> CallRecord:
    """The call's log entry once it has ended."""
    with open_database(engine_of(live).current.config.system.database_url) as database:
        log = CallLog(database)
        return eventually(lambda: (r := log.get(channel)) is not None and r.ended_at and r)


def waits(live: LiveEngine, channel: str) -> list[Any]:
    with open_database(engine_of(live).current.config.system.database_url) as database:
        stats = QueueStats(database)
        start = engine_of(live).clock().replace(year=2000)
        return [r for r in stats.rows(start, engine_of(live).clock()) if r.call_id == channel]


def call(live: LiveEngine, callers: Callers, number: str, caller: str = "+79001112233") -> str:
    return live.run(callers.dial(number, caller))


def ended(live: LiveEngine, callers: Callers, channel: str, timeout: float = 30) -> CallRecord:
    live.run(callers.ended(channel, timeout), timeout + 5)
    return logged(live, channel)


def session(live: LiveEngine, channel: str) -> CallSession:
    return eventually(lambda: engine_of(live).sessions.get(channel))


# Ringing


def test_ring_timeout_moves_on_to_the_next_member(
    live: LiveEngine, callers: Callers, rings: list[tuple[str, str]]
) -> None:
    channel = call(live, callers, "93001")
    record = ended(live, callers, channel)
    assert (record.outcome, record.reason) == ("queue 93001", "answered by 2002")
    assert rings[:2] == [("93001", "2001"), ("93001", "2002")]
    [wait] = eventually(lambda: [w for w in waits(live, channel) if w.talk_ended_at])
    assert (wait.member, wait.outcome) == ("2002", "answered")
    assert 2 <= wait.wait.total_seconds() < 4  # 2001 rang its 2 s first
    assert wait.talk is not None and 2.5 < wait.talk.total_seconds() < 5


def test_ring_at_once_rings_two_and_the_first_to_answer_wins(
    live: LiveEngine, callers: Callers, rings: list[tuple[str, str]]
) -> None:
    channel = call(live, callers, "93002")
    record = ended(live, callers, channel)
    assert record.reason == "answered by 2003"
    assert rings[:2] == [("93002", "2001"), ("93002", "2003")]
    assert ("93002", "2002") not in rings  # the third member was never needed
    [wait] = waits(live, channel)
    assert wait.wait.total_seconds() < 3  # 2003 answered after 1 s, not after 2001's 5 s


def test_a_member_who_declined_is_not_rung_again_before_the_others(
    live: LiveEngine, callers: Callers, rings: list[tuple[str, str]]
) -> None:
    channel = call(live, callers, "93003")
    eventually(lambda: len([r for r in rings if r[0] == "93003"]) >= 4, timeout=20)
    live.run(callers.hang_up(channel))
    order = [member for queue, member in rings if queue == "93003"]
    assert order[:4] == ["2010", "2001", "2010", "2001"]  # rounds, never 2010 twice in a row
    eventually(lambda: [w.outcome for w in waits(live, channel)] == ["abandoned"])


def test_an_offline_member_is_skipped(
    live: LiveEngine, callers: Callers, rings: list[tuple[str, str]]
) -> None:
    channel = call(live, callers, "93004")
    assert ended(live, callers, channel).reason == "answered by 2002"
    assert [m for q, m in rings if q == "93004"] == ["2002"]


def test_leave_when_empty_sends_the_caller_away(live: LiveEngine, callers: Callers) -> None:
    channel = call(live, callers, "93006")
    record = ended(live, callers, channel, timeout=10)
    assert (record.outcome, record.reason) == ("queue 93006", "no queue member online")
    eventually(lambda: [w.outcome for w in waits(live, channel)] == ["sent_away"])


def test_a_phone_goes_offline_and_online_with_its_registration(
    live: LiveEngine, sandbox: SandboxInfo
) -> None:
    engine = engine_of(live)
    phone = SipPhone("2011", PASSWORD, sandbox.sip)
    try:
        phone.register()
        eventually(lambda: engine.presence.online.get("2011") is True)
        phone.unregister()
        eventually(lambda: engine.presence.online.get("2011") is False)
    finally:
        phone.close()


# Operators


def test_binding_by_code_and_the_accept_switch(
    live: LiveEngine, callers: Callers, rings: list[tuple[str, str]]
) -> None:
    engine = engine_of(live)
    code = live.run(engine.presence.new_code("ivanova"))
    bind = call(live, callers, f"1*{code}", caller="2002")
    record = ended(live, callers, bind)
    assert record.reason == "phone bound to ivanova"
    assert engine.presence.operator_of("2002") is not None
    again = call(live, callers, f"1*{code}", caller="2007")  # a code works once
    assert ended(live, callers, again).reason == f"bind code {code} unknown"

    live.run(engine.presence.set_accepting("ivanova", False))
    try:
        channel = call(live, callers, "93005")
        assert ended(live, callers, channel).reason == "answered by 2007"
        assert [m for q, m in rings if q == "93005"] == ["2007"]
    finally:
        live.run(engine.presence.set_accepting("ivanova", True))
        live.run(engine.presence.unbind("ivanova"))
    channel = call(live, callers, "93005")
    assert ended(live, callers, channel).reason == "answered by 2002"


def test_sticky_offers_a_repeat_caller_to_their_operator_first(
    live: LiveEngine, callers: Callers
) -> None:
    engine = engine_of(live)
    for login, phone in (("petrov", "2002"), ("smirnova", "2007")):
        code = live.run(engine.presence.new_code(login))
        ended(live, callers, call(live, callers, f"1*{code}", caller=phone))
    try:
        # The repeat caller talked to 2007 (smirnova) earlier today.
        live.run(engine.presence.set_accepting("petrov", False))
        first = call(live, callers, "93007", caller="+79005550001")
        assert ended(live, callers, first).reason == "answered by 2007"
        # Now both operators are away; a new caller waits first, the repeat caller second.
        live.run(engine.presence.set_accepting("smirnova", False))
        newcomer = call(live, callers, "93007", caller="+79005550002")
        eventually(lambda: engine.queues.position(newcomer) == 1)
        repeat = call(live, callers, "93007", caller="+79005550001")
        eventually(lambda: engine.queues.position(repeat) == 2)
        live.run(engine.presence.set_accepting("smirnova", True))
        eventually(lambda: engine.queues.position(repeat) is None)  # taken out of turn
        assert engine.queues.position(newcomer) == 1  # still waiting, first, nothing lost
        live.run(engine.presence.set_accepting("petrov", True))
        assert ended(live, callers, newcomer).reason == "answered by 2002"
        assert ended(live, callers, repeat).reason == "answered by 2007"
    finally:
        for login in ("petrov", "smirnova"):
            live.run(engine.presence.set_accepting(login, True))
            live.run(engine.presence.unbind(login))


# What the waiting callers hear, and leaving


def test_three_callers_hear_their_positions_and_a_key_leaves_the_queue(
    live: LiveEngine, callers: Callers, monkeypatch: pytest.MonkeyPatch
) -> None:
    said: list[tuple[str, str]] = []
    hold_item = CallSession.hold_item

    async def spy(self: CallSession, item: Any) -> Any:
        play = await hold_item(self, item)
        if play is not None:
            said.append((self.id, play.value))
        return play

    monkeypatch.setattr(CallSession, "hold_item", spy)
    channels = []
    for n in range(3):
        channels.append(call(live, callers, "93008", caller=f"+7900555010{n}"))
        eventually(lambda c=channels[-1]: any(s[0] == c for s in said))
    first_words = [next(text for c, text in said if c == channel) for channel in channels]
    assert first_words == [f"Ваш номер в очереди: {n}." for n in (1, 2, 3)]

    live.run(callers.press(channels[0], "1"))  # the first caller leaves for menu 96100
    record = ended(live, callers, channels[0], timeout=20)
    assert list(record.path[-2:]) == ["93008", "96100"]
    eventually(lambda: [w.outcome for w in waits(live, channels[0])] == ["moved"])

    # The third caller is second now, and hears it on the next round.
    count = len([s for s in said if s[0] == channels[2]])
    eventually(
        lambda: (
            [t for c, t in said if c == channels[2] and "очереди" in t][-1:]
            == ["Ваш номер в очереди: 2."]
            and len([s for s in said if s[0] == channels[2]]) > count
        ),
        timeout=30,
    )
    for channel in channels[1:]:
        live.run(callers.hang_up(channel))
    eventually(lambda: [w.outcome for w in waits(live, channels[1])] == ["abandoned"])


# Conversations


def _audio(path: Path) -> tuple[float, float]:
    """Length in seconds and RMS level (0..1) of a 16-bit mono WAV file."""
    with wave.open(str(path)) as wav:
        frames = wav.readframes(wav.getnframes())
        samples = array.array("h", frames)
        seconds = wav.getnframes() / wav.getframerate()
    rms = (sum(s * s for s in samples) / max(1, len(samples))) ** 0.5 / 32768
    return seconds, rms


def test_the_conversation_is_recorded_and_linked_to_the_call(
    live: LiveEngine, callers: Callers
) -> None:
    channel = call(live, callers, "93009")
    ended(live, callers, channel)
    record = eventually(lambda: (r := logged(live, channel)).recording and r)
    path = Path(record.recording)
    assert path.is_file() and path.parent.parent.name == "recordings"
    seconds, rms = _audio(path)
    assert TONE_SECONDS - 0.5 <= seconds <= TONE_SECONDS + 1.5
    assert rms > 0.05  # the operator's tone, not silence


def test_an_operator_transfers_with_star_2(live: LiveEngine, callers: Callers) -> None:
    channel = call(live, callers, "93010")
    state = eventually(
        lambda: any(c.state == "TRANSFER" for c in engine_of(live).monitor.active_calls())
    )
    assert state
    record = ended(live, callers, channel, timeout=40)
    assert record.reason == "answered by 2005; transferred to 2006"
    assert record.ended_at is not None and record.answered_at is not None
    # 1 s + keys + 4 s of consultation, then 6 s with 2006: the caller stayed on.
    assert (record.ended_at - record.answered_at).total_seconds() > 9


def test_a_manager_listens_in(live: LiveEngine, callers: Callers, sandbox: SandboxInfo) -> None:
    listened = sandbox.data_dir / "test-audio" / "listened.wav"
    listened.unlink(missing_ok=True)
    engine = engine_of(live)
    channel = call(live, callers, "93011")
    talk = eventually(
        lambda: next(
            (c for c in engine.monitor.active_calls() if c.id == channel and c.state == "TALK"),
            None,
        )
    )
    assert (talk.called, talk.peer, talk.caller) == ("93011", "2004", "+79001112233")
    live.run(engine.monitor.listen(channel, "2009"))
    ended(live, callers, channel)
    eventually(lambda: listened.is_file() and listened.stat().st_size > 1000)
    eventually(lambda: not engine.monitor.listening)
    seconds, rms = _audio(listened)
    assert seconds > 1
    assert rms > 0.05  # the conversation's audio reached the manager


def test_the_engine_api_refuses_unknown_users_and_calls(live: LiveEngine) -> None:
    engine = engine_of(live)
    with pytest.raises(UnknownUser):
        live.run(engine.presence.new_code("nobody"))
    with pytest.raises(NoSuchCall):
        live.run(engine.monitor.listen("no-such-call", "2009"))
