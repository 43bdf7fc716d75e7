"""What a call writes down for the next engine, and how the core carries it on (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ast_pbx.core.call import Call, Phase
from ast_pbx.core.queueing import MemberState, QueueState, Ring
from ast_pbx.core.steps import EnterQueue, Play, StartTimer
from ast_pbx.engine.callstate import MENU, QUEUE, TALKING, Saved, Transferring, decode, parse_end
from ast_pbx.engine.legs import AppArgs, Leg, app_args, parse
from tests.test_core import MSK, TUESDAY, make_config
from tests.test_queueing import T0, at, queue


def test_a_state_reads_back_as_written() -> None:
    saved = Saved(
        TALKING,
        "+79001112233",
        "90000",
        visits=["90000", "92000"],
        bridge="b1",
        parties=["c1", "c1-qab"],
        phones={"c1-qab": "1001"},
        recordings=1,
        transfer=Transferring("c1-qab", target="t1", playbacks=["c1-t3"]),
    )
    assert decode(saved.encode()) == saved
    assert len(saved.encode()) < 300  # written at every place: kept small


def test_a_state_this_version_cannot_read_is_none() -> None:
    assert decode("") is None
    assert decode("{not json") is None
    assert decode('{"place": "somewhere", "caller": null, "called": "1"}') is None
    assert decode('{"place": "menu", "called": "1", "unknown_key": 1}') is None
    assert decode('{"place": "menu", "caller": null, "called": "1"}') == Saved(MENU, None, "1")


def test_the_dialplans_note_of_an_end() -> None:
    assert parse_end("1796301837,16") == (1796301837.0, 16)
    assert parse_end("1796301837,") == (1796301837.0, None)
    assert parse_end("") is None
    assert parse_end("soon,16") is None


def test_a_resumed_menu_plays_its_prompt_again_and_takes_keys(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    call = Call(config, called="100", caller="+7900", tz=MSK)
    call.visits = ["100", "200"]
    actions = call.resume("200", "", TUESDAY)
    assert actions == [Play("say", "Enter your code and press hash")]
    assert call.phase is Phase.PROMPT
    call.prompt_done(TUESDAY)
    for key in "123":
        call.dtmf(key, TUESDAY)
    call.dtmf("#", TUESDAY)
    assert call.visits == ["100", "200", "210"]


def test_a_resumed_queue_counts_its_timeout_from_the_first_arrival(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    call = Call(config, called="300", caller="+7900", tz=MSK)
    actions = call.resume("300", "", TUESDAY, waited=45)
    assert actions == [EnterQueue("300"), StartTimer(15, call.token)]
    assert call.phase is Phase.QUEUED and call.ends == "queue 300"
    assert call.resume("300", "", TUESDAY, waited=90)[1] == StartTimer(0, call.token)


def test_a_node_gone_from_the_config_is_routed_anew(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    call = Call(config, called="100", caller="+7900", tz=MSK)
    call.resume("1001", "", TUESDAY)  # a phone now: dialed
    assert call.ends == "phone 1001"


def test_an_earlier_arrival_adopted_later_keeps_its_place() -> None:
    state = QueueState(queue())
    state.enter("b", "+7002", at(2))
    state.enter("a", "+7001", T0)  # adopted after b, but it came first
    state.enter("c", "+7003", at(3))
    assert [state.position(c) for c in "abc"] == [1, 2, 3]
    free = {"1": MemberState()}
    assert state.dispatch(at(4), free) == [Ring("a", ("1",))]


def test_a_reloaded_queue_rings_its_new_members() -> None:
    state = QueueState(queue(members=("1",)))
    state.enter("a", "+7001", T0)
    state.reconfigure(queue(members=("2",), ring_timeout=9.0))
    assert state.dispatch(at(1), {"1": MemberState(), "2": MemberState()}) == [Ring("a", ("2",))]
    assert state.ring_for == timedelta(seconds=9)


def test_state_times_are_epoch_seconds() -> None:
    saved = Saved(QUEUE, None, "92000", node="92000", queued=T0.timestamp())
    again = decode(saved.encode())
    assert again is not None and again.queued is not None
    assert datetime.fromtimestamp(again.queued, UTC) == T0


def test_app_args_are_written_and_read_in_one_place() -> None:
    assert app_args(Leg.QUEUED, "1796.1", "1001") == "queued,1796.1,1001"
    assert parse(["queued", "1796.1", "1001"]) == AppArgs(Leg.QUEUED, ("1796.1", "1001"))
    assert parse(["trunk", "rt"]).value() == "rt"
    assert parse(["dialed"]).value() == ""
    assert parse([]).leg is None and parse(["somebody-elses"]).leg is None
    with pytest.raises(ValueError, match="comma"):
        app_args(Leg.DIALED, "a,b")
