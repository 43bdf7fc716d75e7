"""Who can take queue calls: phones online, operators bound to phones, their switch.

- A phone is online while its PJSIP endpoint is (Asterisk's state over ARI: registered
  and answering qualify requests), or always when `system.asterisk.presence: always`
  (phones that never register: Local channels of a test bench, another PBX).
- An operator binds themself to the phone in front of them by dialing the one-time code
  `1*NNNNN` that `new_code()` made for them (the web page shows it); the binding and the
  "accept queue calls" switch live in the database, so a restart keeps them.
- A member phone rings for queue calls unless the operator bound to it switched off.

The engine's API for the operator page is the coroutines of `Presence`.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import TYPE_CHECKING, Any

from ast_pbx.ari import AriError
from ast_pbx.core.queueing import MemberState
from ast_pbx.errors import AstPbxError

if TYPE_CHECKING:
    from ast_pbx.engine.ports import PresenceHost
    from ast_pbx.storage.operators import OperatorRecord, OperatorStore

log = logging.getLogger("astpbx.presence")

BIND_CODE = re.compile(r"1\*([0-9]{5})")


class UnknownUser(AstPbxError):
    """A login that the config's `users:` does not list."""


def bind_code(called: str) -> str | None:
    """The code of a number dialed to bind a phone (`1*12345` → `12345`), or None."""
    match = BIND_CODE.fullmatch(called)
    return match.group(1) if match else None


def phone_of_channel(channel: dict[str, Any]) -> str | None:
    """The phone a call comes from: the PJSIP endpoint of its channel (which a phone
    cannot fake), else the caller number (Local channels of tests)."""
    name = str(channel.get("name") or "")
    if name.startswith("PJSIP/"):
        return name.removeprefix("PJSIP/").rpartition("-")[0] or None
    return (channel.get("caller") or {}).get("number") or None


class Presence:
    def __init__(self, engine: PresenceHost, store: OperatorStore | None) -> None:
        self.engine = engine
        self.store = store
        self.online: dict[str, bool] = {}  # phone → its endpoint is online
        self.operators: dict[str, OperatorRecord] = {}  # login → binding and switch

    @property
    def by_endpoint(self) -> bool:
        return self.engine.current.config.system.presence == "endpoint"

    def state(self, phone: str, *, busy: bool) -> MemberState:
        operator = self.operator_of(phone)
        return MemberState(
            online=self.online.get(phone, False) if self.by_endpoint else True,
            busy=busy,
            accepting=operator.accepting if operator is not None else True,
        )

    def operator_of(self, phone: str) -> OperatorRecord | None:
        return next((o for o in self.operators.values() if o.phone == phone), None)

    # Endpoint states

    async def resync(self) -> None:
        """After a (re)connection: learn every endpoint's state, follow its changes, and
        reread the operators (another process may have changed them)."""
        ari = self.engine.ari
        try:
            await self._follow_endpoints()
            endpoints = await ari.request("GET", "endpoints/PJSIP")
        except AriError as exc:
            log.warning("cannot follow the phones' states: %s", exc)
            endpoints = []
        self.online = {
            str(e.get("resource")): e.get("state") == "online"
            for e in endpoints or []
            if isinstance(e, dict)
        }
        await self.reload_operators()

    async def _follow_endpoints(self) -> None:
        """Endpoint states come to an application of their own (`<app>-endpoints`) that
        Asterisk filters down to EndpointStateChange. Subscribing the call application
        itself to `endpoint:PJSIP` would make Asterisk send it every event of a SIP
        channel twice: once from the channel, once forwarded by the channel's endpoint
        (a key pressed once would be handled twice)."""
        ari, app = self.engine.ari, self.engine.endpoints_app
        # An engine before this one subscribed the call application: undo it.
        await ari.quiet(
            "DELETE",
            f"applications/{self.engine.app}/subscription",
            {"eventSource": "endpoint:PJSIP"},
        )
        await ari.request(
            "POST", f"applications/{app}/subscription", {"eventSource": "endpoint:PJSIP"}
        )
        await ari.request(
            "PUT",
            f"applications/{app}/eventFilter",
            body={"allowed": [{"type": "EndpointStateChange"}], "disallowed": []},
        )

    def endpoint_changed(self, event: dict[str, Any]) -> str | None:
        """An EndpointStateChange: the phone whose state changed, if it did."""
        endpoint = event.get("endpoint") or {}
        if endpoint.get("technology") != "PJSIP":
            return None
        phone = str(endpoint.get("resource", ""))
        online = endpoint.get("state") == "online"
        if self.online.get(phone) == online:
            return None
        self.online[phone] = online
        log.info("phone %s is %s", phone, "online" if online else "offline")
        return phone

    # Operators: the engine's API

    async def reload_operators(self) -> None:
        if self.store is None:
            return
        records = await asyncio.to_thread(self.store.all)
        self.operators = {r.login: r for r in records}

    async def new_code(self, login: str) -> str:
        """A one-time code: the operator dials `1*CODE` on the phone to bind it."""
        store = self._need_store(login)
        code = await asyncio.to_thread(store.new_code, login, self.engine.clock())
        await self._changed()
        return code

    async def bind(self, code: str, phone: str) -> str | None:
        """Bind `phone` to the operator whose live code this is; their login, or None."""
        if self.store is None:
            return None
        login = await asyncio.to_thread(self.store.bind, code, phone, self.engine.clock())
        if login is not None:
            log.info("phone %s bound to %s", phone, login)
            await self._changed()
        return login

    async def unbind(self, login: str) -> None:
        store = self._need_store(login)
        await asyncio.to_thread(store.unbind, login)
        await self._changed()

    async def set_accepting(self, login: str, accepting: bool) -> None:
        """The "accept queue calls" switch."""
        store = self._need_store(login)
        await asyncio.to_thread(store.set_accepting, login, accepting)
        await self._changed()

    def _need_store(self, login: str) -> OperatorStore:
        if not any(u.login == login for u in self.engine.current.config.users):
            raise UnknownUser(f"no user {login!r} in the config's users")
        if self.store is None:
            raise AstPbxError("the engine keeps no database")
        return self.store

    async def _changed(self) -> None:
        await self.reload_operators()
        self.engine.events.publish("presence")
        await self.engine.members_changed()
