"""What the engine's features may use of the engine, and of each other.

Each feature (queues, dialer, presence, recordings, monitor, callbacks, the calls) is
given a host typed by one of these Protocols, not the `Engine`: it sees what it needs
and nothing more, and the imports point one way — `engine.py` builds the features,
the features depend on this module. Each feature keeps its own state and says how it is
carried over to another engine (`adopt`, `engine.callstate`).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ast_pbx.ari import AriClient
    from ast_pbx.config.model import Trunk
    from ast_pbx.core.call import Call
    from ast_pbx.core.queueing import MemberState
    from ast_pbx.core.scenarios import Answer
    from ast_pbx.core.steps import Play
    from ast_pbx.engine.dialer import Dialer
    from ast_pbx.engine.events import Bus
    from ast_pbx.engine.metrics import Latencies
    from ast_pbx.engine.monitor import Monitor
    from ast_pbx.engine.presence import Presence
    from ast_pbx.engine.queues import Queues
    from ast_pbx.engine.recordings import Recorder
    from ast_pbx.engine.version import ConfigVersion
    from ast_pbx.storage.callbacks import CallbackStore
    from ast_pbx.storage.calls import CallLog
    from ast_pbx.storage.operators import OperatorRecord

# Events the engine makes itself and puts on a call's queue with the ARI ones.
CONNECTED, SEND_AWAY = "astpbx.connected", "astpbx.send_away"  # from a queue
PEER_UP = "astpbx.peer_up"  # the phone or number a call dialed answered


class Host(Protocol):
    """What every feature may use: ARI, the config in force, the clock, tasks, the
    database writer, live events for the pages, how to dial."""

    @property
    def app(self) -> str: ...
    @property
    def ari(self) -> AriClient: ...
    @property
    def current(self) -> ConfigVersion: ...
    @property
    def events(self) -> Bus: ...
    @property
    def clock(self) -> Callable[[], datetime]: ...
    def spawn(self, coroutine: Coroutine[Any, Any, Any]) -> None: ...
    def record(self, what: str, *args: Any, **kwargs: Any) -> None: ...
    def phone_endpoint(self, version: ConfigVersion, number: str) -> str: ...
    def trunk_endpoint(self, trunk: Trunk, number: str) -> str: ...


class DialerHost(Host, Protocol):
    async def say(self, text: str) -> str: ...
    def trunk_calls(self, trunk: str) -> int: ...
    async def ended_while_away(self, channel: str) -> tuple[datetime, int | None] | None: ...


class PresenceHost(Host, Protocol):
    @property
    def endpoints_app(self) -> str: ...
    async def members_changed(self) -> None:
        """Phones' states or operators' switches changed: queues may ring someone."""


class MemberStates(Protocol):
    """What a queue needs to know of its members (`Presence`)."""

    def state(self, phone: str, *, busy: bool) -> MemberState: ...
    def operator_of(self, phone: str) -> OperatorRecord | None: ...


class QueuesHost(Host, Protocol):
    @property
    def presence(self) -> MemberStates: ...


class Waiting(Protocol):
    """A caller in a queue, as the queue sees it (`CallSession`)."""

    queued_at: datetime | None
    rejoining: bool

    @property
    def id(self) -> str: ...
    @property
    def call(self) -> Call: ...
    @property
    def version(self) -> ConfigVersion: ...
    def put(self, event: dict[str, Any]) -> None: ...


class CallsHost(Host, Protocol):
    """What the calls (sessions, conversations, adoption, monitor, callbacks) use: the
    other features and the registry of calls."""

    @property
    def queues(self) -> Queues: ...
    @property
    def presence(self) -> Presence: ...
    @property
    def recorder(self) -> Recorder: ...
    @property
    def monitor(self) -> Monitor: ...
    @property
    def dialer(self) -> Dialer: ...
    @property
    def sessions(self) -> dict[str, Any]: ...  # channel id → CallSession
    @property
    def peers(self) -> dict[str, Any]: ...  # a call's other channels → its CallSession
    @property
    def key_latency(self) -> Latencies: ...
    @property
    def call_log(self) -> CallLog | None: ...
    @property
    def callbacks(self) -> CallbackStore | None: ...
    async def media(self, version: ConfigVersion, play: Play) -> str: ...
    async def lookup(
        self, version: ConfigVersion, scenario: str, key: str, call: str | None = None
    ) -> Answer: ...
    def watch_peer(self, peer: str, session: Any) -> None: ...
    def forget_peer(self, peer: str) -> None: ...
    def forget(self, session: Any) -> None: ...
    def forget_end(self, channel: str) -> None: ...
    async def ended_while_away(self, channel: str) -> tuple[datetime, int | None] | None: ...
