"""The engine's HTTP server: uvicorn in the engine's own event loop.

One process serves calls and HTTP, so what the page and the API ask of the engine
(dial a task now, call a citizen back, live state) needs no other channel.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import uvicorn

from ast_pbx.errors import AstPbxError

log = logging.getLogger("astpbx.http")


def split_listen(listen: str) -> tuple[str, int]:
    """`HOST:PORT` of `system.http.listen` (`[::1]:8080` for IPv6)."""
    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit():
        raise AstPbxError(f"system.http.listen {listen!r} is not HOST:PORT")
    return host.strip("[]"), int(port)


class HttpServer:
    def __init__(self, app: Any, listen: str) -> None:
        host, port = split_listen(listen)
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_config=None,  # the engine's logging, not uvicorn's own
            access_log=False,
            lifespan="off",
            server_header=False,
        )
        self.server = uvicorn.Server(config)
        self.listen = listen
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Serve in the background; raises when the address cannot be bound."""
        self._task = asyncio.create_task(self.server.serve(), name="http")
        while not self.server.started:
            if self._task.done():
                # uvicorn logs why and exits (SystemExit) when it cannot bind.
                try:
                    self._task.result()
                except (SystemExit, OSError) as exc:
                    raise AstPbxError(f"HTTP server could not listen on {self.listen}") from exc
                raise AstPbxError(f"HTTP server stopped at start on {self.listen}")
            await asyncio.sleep(0.02)
        log.info("HTTP on http://%s", self.listen)

    async def stopped(self) -> None:
        """Return when the server has ended (stopped, or failed on its own)."""
        if self._task is not None:
            await asyncio.gather(asyncio.shield(self._task), return_exceptions=True)

    async def stop(self) -> None:
        if self._task is None:
            return
        self.server.should_exit = True
        await asyncio.gather(self._task, return_exceptions=True)
