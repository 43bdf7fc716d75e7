"""What a call's session writes down so that another engine can carry the call on.

The state lives in Asterisk, as the global variable `ASTPBX_STATE_<channel id>`
(compact JSON), where any engine reads it for as long as the call is up; the engine
that sees the call end removes it. Not a channel variable: setting one is queued behind
the channel's playback and waits for the prompt to end. The session writes it when
the call reaches a new place (a menu, a queue, a ringing phone, a conversation, a step
of a transfer), not on every key: a successor starts the place over (a menu's prompt is
played again, digits typed so far are asked again) rather than resuming mid-prompt.

The database keeps what outlives the channel: the call log row (opened at the start,
closed by whichever engine sees the end) and the dialer's attempts.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

STATE_VARIABLE = "ASTPBX_STATE_"  # + channel id
END_VARIABLE = "ASTPBX_END_"  # + channel id: a global the dialplan sets as a channel ends

# Where a call is, as a successor must know it.
MENU, QUEUE, DIALING, TALKING = "menu", "queue", "dialing", "talking"


@dataclass
class Transferring:
    """A `*2` transfer under way; a successor falls back to the conversation."""

    transferor: str
    target: str | None = None
    consulting: str | None = None  # the transferor's bridge with the target
    playbacks: list[str] = field(default_factory=list)  # the held side's, the tone


@dataclass
class Saved:
    place: str  # MENU, QUEUE, DIALING or TALKING
    caller: str | None = None  # defaults: encode leaves them out (an anonymous caller)
    called: str = ""
    node: str | None = None  # the menu's or queue's number
    input: str = ""  # digits the menu was entered with (a case number)
    visits: list[str] = field(default_factory=list)
    ends: str | None = None
    started: float = 0.0  # epoch seconds
    answered: float | None = None
    queued: float | None = None  # when the caller entered the queue
    trunk: str | None = None  # the trunk the call came in on
    placed: bool = False  # the engine placed the call for a phone (a callback)
    peer: str | None = None
    peer_number: str | None = None
    peer_trunk: str | None = None
    dialed_phone: str | None = None
    bridge: str | None = None
    parties: list[str] = field(default_factory=list)
    phones: dict[str, str] = field(default_factory=dict)  # channel → phone
    external: list[str] = field(default_factory=list)
    queue_answered: bool = False
    transfers: list[str] = field(default_factory=list)
    recordings: int = 0  # recording parts started
    playback: str | None = None  # what the caller hears now: a successor stops it
    held: bool = False  # an engine stopping on SIGTERM put it on hold, with a deadline
    transfer: Transferring | None = None

    def encode(self) -> str:
        data = {k: v for k, v in asdict(self).items() if v not in (None, "", [], {}, False, 0)}
        return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def decode(text: str) -> Saved | None:
    """The state written by `Saved.encode`; None for no state or one this version
    cannot read (the call is then treated as one without state)."""
    if not text:
        return None
    try:
        data: Any = json.loads(text)
        transfer = data.pop("transfer", None)
        saved = Saved(**data)
        if transfer is not None:
            saved.transfer = Transferring(**transfer)
    except (ValueError, TypeError):
        return None
    if saved.place not in (MENU, QUEUE, DIALING, TALKING):
        return None
    return saved


def parse_end(value: str) -> tuple[float, int | None] | None:
    """`EPOCH,CAUSE` as the dialplan's astpbx-ended writes it."""
    epoch, _, cause = value.partition(",")
    try:
        return float(epoch), int(cause) if cause.strip() else None
    except ValueError:
        return None
