"""Where a call is, as its session would write it down for another engine
(`engine.callstate`): what `CallSession.save` writes and `CallSession.adopt` reads."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ast_pbx.core.call import Phase
from ast_pbx.engine.callstate import DIALING, MENU, QUEUE, TALKING, Saved

if TYPE_CHECKING:
    from ast_pbx.engine.session import CallSession


def snapshot(session: CallSession) -> Saved | None:
    """Where the call is, for another engine; None where there is nothing to carry
    on (the call is ending)."""
    place = place_of(session)
    if place is None:
        return None
    node = session.call.node
    conversation = session.conversation
    return Saved(
        place,
        session.call.caller,
        session.call.called,
        node=node.number if node is not None and place in (MENU, QUEUE) else None,
        input=session.call.input if place == MENU else "",
        visits=list(session.call.visits),
        ends=session.call.ends,
        started=session.started_at.timestamp(),
        answered=session.answered_at.timestamp() if session.answered_at else None,
        queued=session.queued_at.timestamp() if session.queued_at and place == QUEUE else None,
        trunk=session.trunk.name if session.trunk else None,
        placed=session.placed,
        peer=session.peer,
        peer_number=session.peer_number,
        peer_trunk=session.peer_trunk,
        dialed_phone=session.dialed_phone,
        bridge=conversation.bridge if conversation else None,
        parties=list(conversation.parties) if conversation else [],
        phones=dict(conversation.phones) if conversation else {},
        external=sorted(session.external),
        queue_answered=session.queue_answered,
        transfers=list(session.transfers),
        recordings=session.recordings,
        playback=session.playback,
        held=session.held,
        transfer=conversation.transferring() if conversation else None,
    )


def place_of(session: CallSession) -> str | None:
    """MENU, QUEUE, DIALING or TALKING; None for a call that is ending."""
    if session.conversation is not None:
        return None if session.conversation.ended else TALKING
    if session.peer is not None:
        return DIALING
    if session.call.phase is Phase.QUEUED:
        return QUEUE
    if session.call.phase in (Phase.PROMPT, Phase.WAITING, Phase.LOOKUP):
        return MENU if session.call.node is not None else None
    return None
