"""`astpbx call`: a real test call into the running system, through Asterisk.

The call is a Local channel pair: one half dials the number in the `astpbx-call`
context (which hands it to the engine like a phone's call), the other half joins
an application of this call's own (`<app>-call-<id>`: concurrent calls never see each
other's events) from which this module presses the keys of the input over ARI and
waits. Then the engine's call log tells the path taken.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ast_pbx.ari import AriClient
from ast_pbx.config.configuration import Config
from ast_pbx.core.simulator import Press, Wait, parse_input

CONTEXT = "astpbx-call"


@dataclass(frozen=True)
class Placed:
    channel: str  # our half of the Local pair
    engine_channel: str  # the half the engine answers: the call's id in its log
    started: datetime
    answered: bool
    ended: bool


class _Caller:
    def __init__(self, channel: str) -> None:
        # Named before the originate: its StasisStart may arrive before the answer to it.
        self.channel = channel
        self.up = asyncio.Event()
        self.gone = asyncio.Event()

    def on_event(self, event: dict[str, Any]) -> None:
        channel = str((event.get("channel") or {}).get("id", ""))
        if channel != self.channel:
            return
        if event.get("type") == "StasisStart":
            self.up.set()
        elif event.get("type") in ("StasisEnd", "ChannelDestroyed", "ChannelHangupRequest"):
            self.gone.set()


async def place_call(
    config: Config,
    number: str,
    caller: str | None,
    input_text: str,
    timeout: float,
    *,
    hang_up: bool = False,
) -> Placed:
    """Call `number`, play the input, then hang up (`hang_up`) or wait until the engine
    ends the call (at most `timeout` seconds)."""
    events = parse_input(input_text)
    ari_config = config.system.ari
    tag = uuid.uuid4().hex[:12]
    app = f"{ari_config.app}-call-{tag}"
    caller_side = _Caller(f"astpbx-call-{tag}")
    client = AriClient(
        ari_config.url,
        ari_config.username,
        ari_config.password,
        app,
        on_event=caller_side.on_event,
        rest_over_websocket=False,
    )
    connection = asyncio.create_task(client.run())
    started = datetime.now(UTC)
    try:
        await client.wait_connected(10)
        await client.request(
            "POST",
            "channels",
            {
                "endpoint": f"Local/{number}@{CONTEXT}",
                "app": app,
                "channelId": caller_side.channel,
                "otherChannelId": f"{caller_side.channel}-engine",  # see Placed
                "callerId": caller or "",
                # As a SIP phone would: without it Asterisk gives a Local channel slin192
                # and resamples every 8 kHz prompt to it.
                "formats": "alaw",
                "timeout": 30,
            },
        )
        answered = await _wait(caller_side.up, 30)
        if answered:
            await _play(client, caller_side, events)
            if hang_up:
                await client.quiet("DELETE", f"channels/{caller_side.channel}")
        ended = await _wait(caller_side.gone, timeout)
        if not ended:
            await client.quiet("DELETE", f"channels/{caller_side.channel}")
        engine_channel = f"{caller_side.channel}-engine"
        return Placed(caller_side.channel, engine_channel, started, answered, ended)
    finally:
        await client.close()
        connection.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await connection


async def _wait(event: asyncio.Event, seconds: float) -> bool:
    try:
        await asyncio.wait_for(event.wait(), seconds)
    except TimeoutError:
        return False
    return True


async def _play(client: AriClient, caller: _Caller, events: list[Press | Wait]) -> None:
    for event in events:
        if caller.gone.is_set():
            return
        if isinstance(event, Wait):
            await _wait(caller.gone, event.seconds)
        else:
            await client.quiet(
                "POST", f"channels/{caller.channel}/dtmf", {"dtmf": event.key, "duration": 100}
            )
            await asyncio.sleep(0.25)  # let the engine see one key before the next
