"""The `*2` transfer's decisions (ast_pbx.core.transfer), without Asterisk."""

from __future__ import annotations

from ast_pbx.core.transfer import (
    DIGIT_TIMEOUT,
    Abandon,
    Complete,
    Consult,
    DialTarget,
    DropTarget,
    Hold,
    KeyTimer,
    Resume,
    Stage,
    Transfer,
    TransferAction,
)

CALLER, OPERATOR = "caller", "operator"


def keyed(transfer: Transfer, side: str, keys: str) -> list[TransferAction]:
    actions: list[TransferAction] = []
    for key in keys:
        actions += transfer.dtmf(side, key)
    return actions


def dialing(number: str = "1002") -> Transfer:
    transfer = Transfer((CALLER, OPERATOR))
    keyed(transfer, OPERATOR, f"*2{number}#")
    return transfer


def test_star_2_holds_the_other_side_and_keys_end_with_hash() -> None:
    transfer = Transfer((CALLER, OPERATOR))
    assert transfer.dtmf(OPERATOR, "*") == []
    assert transfer.dtmf(OPERATOR, "2") == [Hold(OPERATOR), KeyTimer(DIGIT_TIMEOUT, 1)]
    assert transfer.active and transfer.transferor == OPERATOR
    assert keyed(transfer, OPERATOR, "10") == [
        KeyTimer(DIGIT_TIMEOUT, 2),
        KeyTimer(DIGIT_TIMEOUT, 3),
    ]
    assert transfer.dtmf(OPERATOR, "#") == [DialTarget("10")]
    assert transfer.stage is Stage.RINGING


def test_the_number_ends_when_keys_stop_and_old_timers_are_ignored() -> None:
    transfer = Transfer((CALLER, OPERATOR))
    keyed(transfer, OPERATOR, "*21002")
    assert transfer.key_timeout(2) == []  # a key came after that timer started
    assert transfer.key_timeout(transfer.token) == [DialTarget("1002")]


def test_keys_that_are_not_star_2_are_just_keys() -> None:
    transfer = Transfer((CALLER, OPERATOR))
    assert keyed(transfer, OPERATOR, "*3") == []
    assert keyed(transfer, OPERATOR, "2") == []
    assert not transfer.active
    assert keyed(transfer, OPERATOR, "*") == [] and keyed(transfer, CALLER, "2") == []
    assert not transfer.active  # `*` and `2` from different sides


def test_an_external_side_cannot_start_a_transfer() -> None:
    transfer = Transfer((CALLER, OPERATOR), external=frozenset({CALLER}))
    assert keyed(transfer, CALLER, "*2") == []
    assert not transfer.active
    assert keyed(transfer, OPERATOR, "*2")[0] == Hold(OPERATOR)


def test_the_held_side_cannot_steer_the_transfer() -> None:
    transfer = Transfer((CALLER, OPERATOR))
    keyed(transfer, OPERATOR, "*2")
    assert keyed(transfer, CALLER, "55#*") == []
    assert transfer.digits == ""


def test_attended_transfer_completes_when_the_transferor_hangs_up() -> None:
    transfer = dialing()
    assert transfer.target_answered() == [Consult()]
    assert transfer.stage is Stage.CONSULTING
    assert transfer.transferor_gone() == [Complete()]
    assert not transfer.active


def test_hanging_up_while_the_target_rings_hands_the_call_over() -> None:
    transfer = dialing()
    assert transfer.transferor_gone() == []
    assert transfer.stage is Stage.HANDED_OVER
    assert transfer.target_answered() == [Complete()]


def test_a_target_that_never_answers_after_hand_over_ends_the_call() -> None:
    transfer = dialing()
    transfer.transferor_gone()
    assert transfer.target_gone() == [Abandon()]


def test_star_cancels_at_every_stage() -> None:
    keying = Transfer((CALLER, OPERATOR))
    keyed(keying, OPERATOR, "*210")
    assert keying.dtmf(OPERATOR, "*") == [Resume()]
    ringing = dialing()
    assert ringing.dtmf(OPERATOR, "*") == [DropTarget(), Resume()]
    consulting = dialing()
    consulting.target_answered()
    assert consulting.dtmf(OPERATOR, "*") == [DropTarget(), Resume()]
    assert not consulting.active


def test_a_failing_or_departing_target_brings_the_transferor_back() -> None:
    ringing = dialing()
    assert ringing.target_gone() == [Resume()]
    consulting = dialing()
    consulting.target_answered()
    assert consulting.target_gone() == [Resume()]


def test_an_empty_number_resumes_the_conversation() -> None:
    transfer = Transfer((CALLER, OPERATOR))
    keyed(transfer, OPERATOR, "*2")
    assert transfer.dtmf(OPERATOR, "#") == [Resume()]


def test_the_transferor_leaving_while_keying_ends_the_call() -> None:
    transfer = Transfer((CALLER, OPERATOR))
    keyed(transfer, OPERATOR, "*21")
    assert transfer.transferor_gone() == [Abandon()]


def test_a_second_transfer_after_the_first_was_cancelled() -> None:
    transfer = dialing()
    transfer.target_gone()
    assert keyed(transfer, CALLER, "*2")[0] == Hold(CALLER)
