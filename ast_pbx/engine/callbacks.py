"""Calling a citizen back: the operator's phone rings first, then the citizen's.

`call()` rings the operator's phone (the one bound to them, or one given); when the
operator answers, their channel becomes a call of its own to the citizen's number —
routed like any call a phone makes (rules, phones, trunks), recorded, transferable —
and the request notes who called back and when.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import TYPE_CHECKING, Any

from ast_pbx.engine.legs import Leg, app_args
from ast_pbx.engine.session import CallSession
from ast_pbx.errors import AstPbxError

if TYPE_CHECKING:
    from ast_pbx.engine.ports import CallsHost
    from ast_pbx.storage.callbacks import CallbackRecord

log = logging.getLogger("astpbx.callback")

OPERATOR_RING = 30  # seconds the operator's phone rings


class CallbackError(AstPbxError):
    """The callback cannot be placed: unknown operator, no phone to ring."""


class NoSuchCallback(CallbackError):
    """No callback request has that id."""


class Callbacks:
    def __init__(self, engine: CallsHost) -> None:
        self.engine = engine
        self.ringing: dict[
            str, tuple[CallbackRecord, str, str]
        ] = {}  # channel → request, login, phone

    async def call(self, callback_id: int, operator: str, phone: str | None = None) -> str:
        """Ring `operator`'s phone for request `callback_id`; the channel id of the call."""
        store = self.engine.callbacks
        if store is None:
            raise CallbackError("the engine keeps no database")
        if not any(u.login == operator for u in self.engine.current.config.users):
            raise CallbackError(f"no user {operator!r} in the config's users")
        record = await asyncio.to_thread(store.get, callback_id)
        if record is None:
            raise NoSuchCallback(f"no callback request {callback_id}")
        bound = self.engine.presence.operators.get(operator)
        phone = phone or (bound.phone if bound is not None else None)
        if not phone:
            raise CallbackError(f"{operator} has no phone bound: bind one or name it")
        channel = f"callback-{uuid.uuid4().hex[:12]}"
        self.ringing[channel] = (record, operator, phone)
        version = self.engine.current
        try:
            await self.engine.ari.request(
                "POST",
                "channels",
                {
                    "endpoint": self.engine.phone_endpoint(version, phone),
                    "app": self.engine.app,
                    "appArgs": app_args(Leg.CALLBACK, callback_id),
                    "timeout": OPERATOR_RING,
                    "callerId": record.caller,  # the operator sees whom they will call
                    "channelId": channel,
                },
            )
        except Exception:
            self.ringing.pop(channel, None)
            raise
        log.info("callback %s: ringing %s (%s) for %s", callback_id, phone, operator, record.caller)
        return channel

    def handles(self, channel: str) -> bool:
        return channel in self.ringing

    def gone(self, channel: str) -> None:
        """The operator did not answer."""
        if self.ringing.pop(channel, None) is not None:
            log.info("callback: %s was not answered", channel)

    def answered(self, channel: dict[str, Any]) -> None:
        """The operator picked up: their channel calls the citizen now."""
        channel_id = str(channel.get("id", ""))
        found = self.ringing.pop(channel_id, None)
        if found is None:
            self.engine.spawn(self.engine.ari.quiet("DELETE", f"channels/{channel_id}"))
            return
        record, operator, phone = found
        session = CallSession(
            self.engine, self.engine.current, channel, ["callback"], calls=(phone, record.caller)
        )
        self.engine.sessions[channel_id] = session
        session.start()
        store = self.engine.callbacks
        if store is not None:
            now = self.engine.clock()
            self.engine.spawn(asyncio.to_thread(store.called, record.id, operator, now, channel_id))
