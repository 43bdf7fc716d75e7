"""Queue decisions: ring order, ring_at_once, timeouts, skipping, no re-ring, sticky."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ast_pbx.config.model import Queue
from ast_pbx.core.queueing import Connect, MemberState, QueueState, Ring, SendAway, StopRinging

T0 = datetime(2026, 3, 3, 7, 0, tzinfo=UTC)
ALL_FREE = {m: MemberState() for m in ("1", "2", "3")}


def queue(**settings: object) -> Queue:
    values: dict[str, object] = {"number": "92000", "members": ("1", "2", "3"), "ring_timeout": 5.0}
    values.update(settings)
    return Queue(**values)  # type: ignore[arg-type]


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_callers_are_served_in_order_one_member_at_a_time() -> None:
    state = QueueState(queue())
    state.enter("a", "+7001", T0)
    state.enter("b", "+7002", at(1))
    assert state.position("b") == 2
    assert state.dispatch(at(1), ALL_FREE) == [Ring("a", ("1",)), Ring("b", ("2",))]
    assert state.answered("a", "1") == [Connect("a", "1")]
    assert state.position("b") == 1


def test_ring_at_once_and_the_others_stop_when_one_answers() -> None:
    state = QueueState(queue(ring_at_once=2))
    state.enter("a", None, T0)
    assert state.dispatch(T0, ALL_FREE) == [Ring("a", ("1", "2"))]
    assert state.answered("a", "2") == [Connect("a", "2"), StopRinging("a", ("1",))]
    assert state.answered("a", "1") == []  # too late: nothing rings for "a" any more


def test_ring_timeout_moves_on_and_does_not_ring_the_same_member_again_first() -> None:
    state = QueueState(queue())
    state.enter("a", None, T0)
    assert state.dispatch(T0, ALL_FREE) == [Ring("a", ("1",))]
    assert state.next_deadline() == at(5)
    assert state.dispatch(at(4.9), ALL_FREE) == []
    assert state.dispatch(at(5), ALL_FREE) == [StopRinging("a", ("1",)), Ring("a", ("2",))]
    assert state.dispatch(at(10), ALL_FREE) == [StopRinging("a", ("2",)), Ring("a", ("3",))]
    # Everyone had a turn: a new round starts with the first member again.
    assert state.dispatch(at(15), ALL_FREE) == [StopRinging("a", ("3",)), Ring("a", ("1",))]


def test_a_member_who_declined_is_tried_after_the_others() -> None:
    state = QueueState(queue())
    state.enter("a", None, T0)
    state.dispatch(T0, ALL_FREE)
    state.declined("a", "1")
    assert state.dispatch(at(1), ALL_FREE) == [Ring("a", ("2",))]


def test_offline_busy_and_not_accepting_members_are_skipped() -> None:
    state = QueueState(queue(ring_at_once=3))
    state.enter("a", None, T0)
    members = {
        "1": MemberState(online=False),
        "2": MemberState(busy=True),
        "3": MemberState(accepting=False),
    }
    assert state.dispatch(T0, members) == []
    members["2"] = MemberState()
    assert state.dispatch(at(1), members) == [Ring("a", ("2",))]


def test_a_member_rings_for_one_caller_at_a_time() -> None:
    state = QueueState(queue(members=("1",)))
    state.enter("a", None, T0)
    state.enter("b", None, T0)
    assert state.dispatch(T0, ALL_FREE) == [Ring("a", ("1",))]
    assert state.dispatch(at(1), ALL_FREE) == []


def test_leave_when_empty_sends_callers_away_while_nobody_is_online() -> None:
    offline = {m: MemberState(online=False) for m in ("1", "2", "3")}
    keeps = QueueState(queue())
    keeps.enter("a", None, T0)
    assert keeps.dispatch(T0, offline) == []
    leaves = QueueState(queue(leave_when_empty=True))
    leaves.enter("a", None, T0)
    assert leaves.dispatch(T0, offline) == [SendAway("a", "no queue member online")]
    assert leaves.calls == ()
    busy_but_online = {m: MemberState(busy=True) for m in ("1", "2", "3")}
    leaves.enter("b", None, T0)
    assert leaves.dispatch(T0, busy_but_online) == []  # online but busy: the caller waits


def test_sticky_offers_a_repeat_caller_to_their_operator_whatever_their_place() -> None:
    today = {"+7repeat": "2"}
    state = QueueState(queue(sticky=True), operator_of_today=today.get)
    state.enter("first", "+7new", T0)
    state.enter("repeat", "+7repeat", at(1))
    only_2_free = {"1": MemberState(busy=True), "2": MemberState(), "3": MemberState(busy=True)}
    assert state.dispatch(at(1), only_2_free) == [Ring("repeat", ("2",))]


def test_sticky_is_a_priority_never_a_penalty() -> None:
    today = {"+7repeat": "2"}
    state = QueueState(queue(sticky=True), operator_of_today=today.get)
    state.enter("repeat", "+7repeat", T0)
    state.enter("second", "+7new", at(1))
    only_1_free = {"1": MemberState(), "2": MemberState(busy=True), "3": MemberState(busy=True)}
    # Their operator is busy and they are first: another operator serves them.
    assert state.dispatch(at(1), only_1_free) == [Ring("repeat", ("1",))]


def test_without_sticky_the_order_of_arrival_rules() -> None:
    today = {"+7repeat": "2"}
    state = QueueState(queue(), operator_of_today=today.get)
    state.enter("first", "+7new", T0)
    state.enter("repeat", "+7repeat", at(1))
    only_2_free = {"1": MemberState(busy=True), "2": MemberState(), "3": MemberState(busy=True)}
    assert state.dispatch(at(1), only_2_free) == [Ring("first", ("2",))]


def test_a_caller_leaving_stops_what_rings_for_them() -> None:
    state = QueueState(queue(ring_at_once=2))
    state.enter("a", None, T0)
    state.dispatch(T0, ALL_FREE)
    assert state.leave("a") == [StopRinging("a", ("1", "2"))]
    assert state.leave("a") == []
    assert state.next_deadline() is None
