"""The engine in this process, on the sandbox's Asterisk, for integration tests.

`LiveEngine` runs `serve()` in a thread of its own with a clock the tests can move, and
runs coroutines in the engine's loop (the engine's API, `Callers`). `Callers` places
calls as a phone would, through `astpbx-call`, from an ARI application of the test's
own (`<app>-call`), and presses keys and hangs up on them.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from ast_pbx.ari import AriClient
from ast_pbx.engine.engine import Engine
from ast_pbx.engine.main import prepare_version, serve
from tests.sandbox_fixture import SandboxInfo

T = TypeVar("T")


class MovableClock:
    """Real time, shifted so that it reads what a test wants it to read."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def set(self, moment: datetime) -> None:
        self.offset = moment - datetime.now(UTC)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


class LiveEngine:
    def __init__(self, config: Path, clock: Callable[[], datetime] | None = None) -> None:
        self.config = config
        self.clock = clock or MovableClock()
        self.engine: Engine | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.stop_event: asyncio.Event | None = None
        self.ready = threading.Event()
        self._thread = threading.Thread(target=self._main, daemon=True)

    def start(self, timeout: float = 30) -> Engine:
        self._thread.start()
        assert self.ready.wait(timeout), "the engine did not connect to ARI"
        assert self.engine is not None
        return self.engine

    def stop(self) -> None:
        if self.loop is not None and self.stop_event is not None:
            self.loop.call_soon_threadsafe(self.stop_event.set)
        self._thread.join(30)

    @contextlib.contextmanager
    def callers(self, sandbox: SandboxInfo) -> Iterator[Callers]:
        """Callers connected to the sandbox's ARI from the engine's loop, for a test."""
        callers = Callers(sandbox)
        self.run(callers.open())
        try:
            yield callers
        finally:
            self.run(callers.close())

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        """Run `coroutine` in the engine's loop and wait for its result."""
        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def _main(self) -> None:
        async def main() -> None:
            self.loop = asyncio.get_running_loop()
            self.stop_event = asyncio.Event()
            version = await asyncio.to_thread(prepare_version, str(self.config))

            def started(engine: Engine) -> None:
                self.engine = engine

            serving = asyncio.create_task(
                serve(str(self.config), version, self.stop_event, clock=self.clock, started=started)
            )
            while self.engine is None or not self.engine.ari.connected:
                if serving.done():
                    serving.result()  # raises what stopped it
                await asyncio.sleep(0.05)
            self.ready.set()
            await serving

        asyncio.run(main())


class Callers:
    """Callers on Local channels: dial, press keys, hang up, see the engine hang up."""

    def __init__(self, sandbox: SandboxInfo) -> None:
        self.sandbox = sandbox
        self.client = AriClient(
            sandbox.ari_url,
            sandbox.username,
            sandbox.password,
            f"{sandbox.app}-call",
            on_event=self._on_event,
            rest_over_websocket=False,
        )
        self.up: dict[str, asyncio.Event] = {}
        self.gone: dict[str, asyncio.Event] = {}
        self.ours: dict[str, str] = {}  # the engine's call id → our half of the Local pair
        self._connection: asyncio.Task[None] | None = None

    async def open(self) -> None:
        self._connection = asyncio.create_task(self.client.run())
        await self.client.wait_connected(10)

    async def close(self) -> None:
        for channel, gone in self.gone.items():
            if not gone.is_set():
                await self.client.quiet("DELETE", f"channels/{channel}")
        await self.client.close()
        if self._connection is not None:
            self._connection.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._connection

    def _on_event(self, event: dict[str, Any]) -> None:
        channel = str((event.get("channel") or {}).get("id", ""))
        kind = event.get("type")
        if kind == "StasisStart" and channel in self.up:
            self.up[channel].set()
        elif kind in ("StasisEnd", "ChannelDestroyed") and channel in self.gone:
            self.gone[channel].set()

    async def dial(self, number: str, caller: str = "+79001112233") -> str:
        """Call `number`; returns once the engine answered, with the id of the call in
        the engine (the Local channel's other half, which the engine sees)."""
        ours = f"caller-{uuid.uuid4().hex[:12]}"
        engines = f"{ours}-engine"
        self.up[ours], self.gone[ours] = asyncio.Event(), asyncio.Event()
        self.ours[engines] = ours
        await self.client.request(
            "POST",
            "channels",
            {
                "endpoint": f"Local/{number}@astpbx-call",
                "app": f"{self.sandbox.app}-call",
                "callerId": caller,
                "formats": "alaw",
                "timeout": 30,
                "channelId": ours,
                "otherChannelId": engines,
            },
        )
        await asyncio.wait_for(self.up[ours].wait(), 30)
        return engines

    async def press(self, call: str, keys: str) -> None:
        for key in keys:
            await self.client.request(
                "POST", f"channels/{self.ours[call]}/dtmf", {"dtmf": key, "duration": 100}
            )
            await asyncio.sleep(0.25)

    async def hang_up(self, call: str) -> None:
        await self.client.quiet("DELETE", f"channels/{self.ours[call]}")
        await self.ended(call)

    async def ended(self, call: str, timeout: float = 30) -> None:
        await asyncio.wait_for(self.gone[self.ours[call]].wait(), timeout)


def eventually(check: Callable[[], Any], timeout: float = 15, every: float = 0.1) -> Any:
    """Poll `check` (from the test's thread) until it returns something true."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            code = check.__code__  # which check it was, when several wait in one test
            where = f"{code.co_filename}:{code.co_firstlineno}"
            raise AssertionError(f"not true within {timeout} s: {where} (last: {result!r})")
        time.sleep(every)
