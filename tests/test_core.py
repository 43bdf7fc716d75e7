"""The call-flow core: routing, rules, the IVR state machine and the simulator."""

from __future__ import annotations

import textwrap
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from ast_pbx.config.configuration import Config
from ast_pbx.config.loader import load
from ast_pbx.core.call import Call, Phase
from ast_pbx.core.routing import resolve
from ast_pbx.core.scenarios import FixtureDirectory
from ast_pbx.core.simulator import Outcome, parse_input, simulate
from ast_pbx.core.steps import (
    DialTrunk,
    EnterQueue,
    Hangup,
    KeyIgnored,
    Play,
    StartTimer,
    StopPlayback,
    TimedOut,
)

MSK = ZoneInfo("Europe/Moscow")
TUESDAY = datetime(2026, 3, 3, 10, 0, tzinfo=MSK)

MENUS = """\
phones:
  - {number: "1001", password: long-enough-secret}
  - {number: "1002", password: long-enough-secret}
trunks:
  - {name: city, match: '\\+?\\d{7,}', inbound: "100", endpoint: PJSIP/city}
menus:
  - number: "100"
    say: Main menu
    on:
      - {key: "1", goto: "1001"}
      - {key: "2", goto: "200"}
      - {key: "9"}
      - {timeout: 5, goto: "1002"}
  - number: "200"
    say: Enter your code and press hash
    on:
      - {digits: '[0-9]{3}#', goto: "210"}
      - {digits: '\\*[0-9]+#', goto: "220"}
  - {number: "210", scenario: echo_digits}
  - {number: "220", scenario: dial_entered}
  - {number: "230", say: Goodbye}
  - {number: "240", scenario: case_status}
  - {number: "250", scenario: callback_request}
queues:
  - number: "300"
    members: ["1001"]
    on:
      - {key: "0", goto: "230"}
      - {timeout: 60, goto: "1002"}
"""


def make_config(tmp_path: Path, text: str = MENUS, extra: str = "") -> Config:
    directory = tmp_path / "config"
    directory.mkdir()
    (directory / "a.yaml").write_text(textwrap.dedent(text))
    (directory / "b.yaml").write_text(textwrap.dedent(extra))
    loaded = load(str(directory), {})
    assert [p for p in loaded.problems if p.level.value == "error"] == []
    return loaded.config


def run(
    config: Config,
    to: str,
    input_text: str = "",
    *,
    at: datetime = TUESDAY,
    caller: str | None = "+79001112233",
    directory: FixtureDirectory | None = None,
) -> Outcome:
    return simulate(
        config,
        to=to,
        caller=caller,
        at=at,
        tz=at.tzinfo,  # type: ignore[arg-type]
        input_text=input_text,
        directory=directory or FixtureDirectory(),
    )


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return make_config(tmp_path)


def test_key_handler(config: Config) -> None:
    outcome = run(config, "100", "1")
    assert (outcome.visits, outcome.ends) == (("100", "1001"), "phone 1001")


def test_key_without_goto_hangs_up(config: Config) -> None:
    outcome = run(config, "100", "9")
    assert outcome.ends == "hangup"
    assert outcome.steps[-1][1].describe() == "ends: hangup (handler without goto)"


def test_timeout_counts_from_the_end_of_the_prompt(config: Config) -> None:
    early = run(config, "100", "w4.9 1")
    assert early.ends == "phone 1001"
    late = run(config, "100", "w5 1")
    assert (late.visits, late.ends) == (("100", "1002"), "phone 1002")
    assert [t for t, step in late.steps if isinstance(step, TimedOut)] == [5.0]


def test_menu_with_handlers_but_no_timeout_hangs_up_after_15_s(config: Config) -> None:
    outcome = run(config, "200", "w14 1")
    assert outcome.ends == "hangup"
    [(when, step)] = [(t, s) for t, s in outcome.steps if isinstance(s, TimedOut)]
    assert (when, step.default, step.seconds) == (29.0, True, 15.0)  # the key restarted it


def test_menu_without_handlers_hangs_up_after_its_prompt(config: Config) -> None:
    outcome = run(config, "230")
    assert outcome.ends == "hangup"
    assert outcome.steps[-1][1].describe() == "ends: hangup (menu without handlers)"


def test_digits_fully_match_what_was_collected_and_become_input(config: Config) -> None:
    outcome = run(config, "100", "2 1 2 3 #")
    assert outcome.visits == ("100", "200", "210")
    assert outcome.heard()[-1] == "Вы ввели: 1 2 3 решётка."
    assert run(config, "100", "2 1234#").ends == "hangup"  # four digits match neither regex


def test_dial_entered_routes_to_the_number_entered(config: Config) -> None:
    outcome = run(config, "100", "2 *1002#")
    assert (outcome.visits, outcome.ends) == (("100", "200", "220", "*1002"), "hangup")
    dialed = run(config, "220")
    assert dialed.ends == "hangup"


def test_barge_in_stops_the_prompt_only_for_handled_keys(config: Config) -> None:
    call = Call(config, called="100", caller=None, tz=MSK)
    assert call.start(TUESDAY) == [Play("say", "Main menu")]
    assert call.dtmf("7", TUESDAY) == []  # no handler takes 7: the prompt goes on
    assert isinstance(call.steps[-1], KeyIgnored)
    assert call.phase is Phase.PROMPT
    actions = call.dtmf("1", TUESDAY)
    assert actions[0] == StopPlayback()
    assert call.ends == "phone 1001"


def test_collected_key_interrupts_and_starts_the_timeout(config: Config) -> None:
    call = Call(config, called="200", caller=None, tz=MSK)
    call.start(TUESDAY)
    assert call.dtmf("1", TUESDAY) == [StopPlayback(), StartTimer(15.0, 1)]
    assert call.prompt_done(TUESDAY) == []  # the stopped prompt's end changes nothing


def test_a_stale_timer_is_ignored(config: Config) -> None:
    call = Call(config, called="200", caller=None, tz=MSK)
    call.start(TUESDAY)
    call.prompt_done(TUESDAY)
    call.dtmf("1", TUESDAY)  # restarts the timer with token 2
    assert call.timer(1, TUESDAY) == []
    assert call.timer(2, TUESDAY)[-1] == Hangup("no input")


def test_queue_handlers_and_end_of_input(config: Config) -> None:
    assert run(config, "300").ends == "queue 300"
    assert run(config, "300", "w30 0").visits == ("300", "230")
    waited = run(config, "300", "w61")
    assert (waited.visits, waited.ends) == (("300", "1002"), "phone 1002")
    call = Call(config, called="300", caller=None, tz=MSK)
    assert call.start(TUESDAY) == [EnterQueue("300"), StartTimer(60.0, 1)]


def test_trunk_inbound_and_match(config: Config) -> None:
    call = Call(
        config, called="ignored", caller="+79001112233", tz=MSK, trunk=config.trunk_by_name["city"]
    )
    call.start(TUESDAY)
    assert call.visits == ["100"]
    outcome = run(config, "+79005556677")
    assert outcome.ends == "trunk city"
    out = Call(config, called="+79005556677", caller=None, tz=MSK)
    assert out.start(TUESDAY) == [DialTrunk("city", "+79005556677")]


def test_unknown_number_hangs_up(config: Config) -> None:
    result = resolve(config, "555", None, TUESDAY)
    assert result.hangup == "unknown-number"


def test_scenarios_ask_the_directory(tmp_path: Path) -> None:
    config = make_config(
        tmp_path,
        extra="""\
        menus:
          - number: "400"
            say: Enter the case number
            on: [{digits: '[0-9*]+#', goto: "240"}]
        """,
    )
    directory = FixtureDirectory(cases={"19*03": "Готово"})
    found = run(config, "400", "1 9 * 0 3 #", directory=directory)
    assert found.heard()[-1] == "Статус дела 1 9 звёздочка 0 3: Готово."
    missing = run(config, "400", "7 #", directory=directory)
    assert missing.heard()[-1] == "Дело 7 не найдено."
    callback = FixtureDirectory()
    outcome = run(config, "250", caller="+79001112233", directory=callback)
    assert callback.callbacks == ["+79001112233"]
    assert outcome.heard() == ["Заявка на обратный звонок принята. Оператор перезвонит вам."]


RULES = """\
rules:
  - {number: "100", callers: ["+79990000000"], goto: "1001"}
  - {number: "100", caller_patterns: ['\\+7918\\d+'], goto: "1002"}
  - {number: "100", days: [sat, sun], goto: "230"}
  - {number: "100", hours: ["22:00-06:00"], goto: "300"}
  - {number: "230", days: [sun], goto: "240"}
  - {number: "240", hours: ["12:00-13:00"]}
  - {number: "1234567", goto: "7654321"}
  - {number: "7654321", goto: "1234567"}
"""


@pytest.fixture
def ruled(tmp_path: Path) -> Config:
    return make_config(tmp_path, extra=RULES)


def routed(config: Config, number: str, caller: str | None, local: datetime) -> tuple[str, ...]:
    return resolve(config, number, caller, local).visits


def test_first_applicable_rule_wins_in_order(ruled: Config) -> None:
    saturday = datetime(2026, 3, 7, 10, 0, tzinfo=MSK)
    assert routed(ruled, "100", "+79990000000", saturday) == ("100", "1001")
    assert routed(ruled, "100", "+79181234567", saturday) == ("100", "1002")
    assert routed(ruled, "100", "+79001112233", saturday) == ("100", "230")
    assert routed(ruled, "100", "+79001112233", TUESDAY) == ("100",)
    assert routed(ruled, "100", None, TUESDAY) == ("100",)  # no caller: caller rules skip


def test_rule_target_is_routed_again(ruled: Config) -> None:
    sunday_noon = datetime(2026, 3, 8, 12, 30, tzinfo=MSK)
    result = resolve(ruled, "100", None, sunday_noon)
    assert result.visits == ("100", "230", "240")
    assert result.hangup == "rule"  # the rule for 240 has no goto
    assert [s.describe() for s in result.steps][-1] == "rule for 240 applies: the call hangs up"


def test_rule_loop_hangs_up(ruled: Config) -> None:
    result = resolve(ruled, "1234567", None, TUESDAY)
    assert result.hangup == "rule-loop"
    assert result.visits == ("1234567", "7654321")


@pytest.mark.parametrize(
    ("hour", "minute", "applies"),
    [
        (21, 59, False),
        (22, 0, True),
        (23, 30, True),
        (0, 0, True),
        (5, 59, True),
        (6, 0, False),
    ],
)
def test_hours_spanning_midnight(ruled: Config, hour: int, minute: int, applies: bool) -> None:
    local = datetime(2026, 3, 4, hour, minute, tzinfo=MSK)
    assert (routed(ruled, "100", None, local) == ("100", "300")) is applies


def test_rules_use_the_system_timezone(ruled: Config) -> None:
    instant = datetime(2026, 3, 4, 20, 0, tzinfo=ZoneInfo("UTC"))  # 23:00 in Moscow
    assert routed(ruled, "100", None, instant.astimezone(MSK)) == ("100", "300")
    assert routed(ruled, "100", None, instant.astimezone(ZoneInfo("Europe/London"))) == ("100",)


def test_time_crosses_a_dst_change_during_the_call(tmp_path: Path) -> None:
    berlin = ZoneInfo("Europe/Berlin")
    config = make_config(
        tmp_path,
        extra="""\
        rules:
          - {number: "1002", hours: ["03:00-04:00"], goto: "230"}
        """,
    )
    # 2026-03-29: clocks jump from 02:00 to 03:00; 5 s of timeout after 01:59:57 is 03:00:02.
    before = datetime(2026, 3, 29, 1, 59, 57, tzinfo=berlin)
    outcome = run(config, "100", at=before)
    assert outcome.visits == ("100", "1002", "230")
    an_hour_earlier = before - timedelta(hours=1)
    assert run(config, "100", at=an_hour_earlier).ends == "phone 1002"


def test_a_local_time_in_the_dst_gap_is_read_forward(tmp_path: Path) -> None:
    berlin = ZoneInfo("Europe/Berlin")
    config = make_config(
        tmp_path,
        extra="""\
        rules:
          - {number: "100", hours: ["03:00-04:00"], goto: "1001"}
        """,
    )
    gap = datetime(2026, 3, 29, 2, 30, tzinfo=berlin)  # does not exist: 03:30 CEST
    assert run(config, "100", at=gap).visits == ("100", "1001")


def test_input_tokens() -> None:
    assert [type(e).__name__ for e in parse_input("1 *2# w2.5")] == [
        "Press",
        "Press",
        "Press",
        "Press",
        "Wait",
    ]
    with pytest.raises(ValueError, match="'x1'"):
        parse_input("1 x1")


def test_a_silent_caller_looping_through_menus_is_stopped(tmp_path: Path) -> None:
    config = make_config(
        tmp_path,
        text="""\
        menus:
          - {number: "1", say: a, on: [{timeout: 10, goto: "2"}]}
          - {number: "2", say: b, on: [{timeout: 10, goto: "1"}]}
        """,
    )
    outcome = run(config, "1")
    assert outcome.ends == "hangup"
    assert 300 < len(outcome.visits) < 400  # an hour of silence, then the simulation stops
