"""The one module that talks ARI: events and REST over a single WebSocket.

A thin client of our own on aiohttp rather than aioari: aioari (last released in
2020) is untyped, builds its API from Swagger at start-up and sends every request
over HTTP. Asterisk 22 accepts REST requests on the events WebSocket itself
("ARI REST over WebSocket"), which costs it a fraction of an HTTP request; this
client uses that when the server answers it and falls back to HTTP otherwise.

The client reconnects with backoff, pings the socket, survives events it cannot
parse, and tells its owner when a connection comes up so that the owner can
resynchronise with the channels still in the application.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

import aiohttp

from ast_pbx.errors import AstPbxError

log = logging.getLogger("astpbx.ari")

# Called in the order events arrive, and must not block: the owner queues each event
# to the call it belongs to (ordered within a call, independent across calls).
EventHandler = Callable[[dict[str, Any]], None]
ConnectedHandler = Callable[[], Awaitable[None]]

REQUEST_TIMEOUT = 10.0
DOWNLOAD_TIMEOUT = 300.0  # a long conversation is a large file
PROBE_TIMEOUT = 2.0
BACKOFF_START, BACKOFF_MAX = 0.2, 5.0


class AriError(AstPbxError):
    """A REST request failed: Asterisk's status and reason, or no connection."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


class AriClient:
    def __init__(
        self,
        url: str,
        username: str,
        password: str,
        app: str,
        *,
        on_event: EventHandler,
        on_connected: ConnectedHandler | None = None,
        rest_over_websocket: bool = True,
        also: tuple[str, ...] = (),
    ) -> None:
        self.base = url.rstrip("/") + "/ari/"
        self.app = app
        # More applications registered on the same socket (each event names its own in
        # `application`): the engine follows endpoint states in one of its own.
        self.apps = (app, *also)
        self._headers = {"Authorization": aiohttp.encode_basic_auth(username, password)}
        self._on_event = on_event
        self._on_connected = on_connected
        self._want_ws_rest = rest_over_websocket
        self._ws_rest = False
        self._session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._ids = itertools.count(1)
        self._connected = asyncio.Event()
        self._stopped = False
        self._closing = False

    # Connection

    async def run(self) -> None:
        """Connect and read events until `close()`, reconnecting with backoff."""
        self._session = aiohttp.ClientSession(headers=self._headers)
        delay = BACKOFF_START
        try:
            while not self._closing:
                try:
                    await self._serve_connection()
                    delay = BACKOFF_START
                except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                    log.warning("ARI connection failed: %s; retrying in %.1f s", exc, delay)
                if self._closing:
                    break
                await asyncio.sleep(delay)
                delay = min(delay * 2, BACKOFF_MAX)
        finally:
            await self._session.close()

    async def wait_connected(self, timeout: float | None = None) -> None:
        await asyncio.wait_for(self._connected.wait(), timeout)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def stop_requests(self) -> None:
        """From now on every request fails at once: this engine no longer leads (another
        acts on the calls) and must not send one more."""
        self._stopped = True

    async def close(self) -> None:
        self._closing = True
        if self._ws is not None:
            await self._ws.close()

    def _events_url(self) -> str:
        scheme, netloc, path, _, _ = urlsplit(self.base + "events")
        scheme = "wss" if scheme == "https" else "ws"
        query = urlencode({"app": ",".join(self.apps), "subscribeAll": "false"})
        return urlunsplit((scheme, netloc, path, query, ""))

    async def _serve_connection(self) -> None:
        assert self._session is not None
        async with self._session.ws_connect(
            self._events_url(), heartbeat=15.0, max_msg_size=0
        ) as ws:
            self._ws = ws
            if self._closing:  # close() came while the socket was being opened
                return
            log.info("ARI connected to %s (app %s)", self.base, ",".join(self.apps))
            reader = asyncio.create_task(self._read(ws))
            try:
                self._ws_rest = self._want_ws_rest and await self._probe_ws_rest()
                self._connected.set()
                if self._on_connected is not None:
                    try:
                        await self._on_connected()
                    except Exception:  # the owner's resync failing must not drop every call
                        log.exception("ARI: handling the new connection failed")
                await reader
            finally:
                reader.cancel()
                self._connected.clear()
                self._ws, self._ws_rest = None, False
                self._fail_pending()
        if not self._closing:
            log.warning("ARI connection closed")

    async def _probe_ws_rest(self) -> bool:
        """Whether this Asterisk answers REST requests on the events socket (22.3+)."""
        try:
            await self._ws_request("GET", "asterisk/info", timeout=PROBE_TIMEOUT)
        except (TimeoutError, AriError):
            log.info("ARI REST over WebSocket unavailable; using HTTP")
            return False
        return True

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        try:
            await self._read_messages(ws)
        finally:
            # Requests waiting for an answer on this socket get none: fail them now, not
            # after their timeout (on_connected may be waiting on one of them).
            self._fail_pending()

    async def _read_messages(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for message in ws:
            if message.type != aiohttp.WSMsgType.TEXT:
                continue
            try:
                data = json.loads(message.data)
            except ValueError:
                log.warning("ARI sent a message that is not JSON: %.200s", message.data)
                continue
            if not isinstance(data, dict):
                continue
            if data.get("type") == "RESTResponse":
                future = self._pending.pop(str(data.get("request_id")), None)
                if future is not None and not future.done():
                    future.set_result(data)
                continue
            self._dispatch(data)

    def _dispatch(self, event: dict[str, Any]) -> None:
        try:
            self._on_event(event)
        except Exception:  # a bad event must not end the connection that carries all calls
            log.exception("handling ARI event %s failed", event.get("type"))

    def _fail_pending(self) -> None:
        for future in self._pending.values():
            if not future.done():
                future.set_exception(AriError("ARI connection lost"))
        self._pending.clear()

    # Requests

    async def request(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
    ) -> Any:
        """A REST request; the decoded JSON answer (None when empty). AriError on failure."""
        if self._stopped:
            raise AriError(f"{method} {path}: not sent, the engine stopped leading")
        query = urlencode({k: _param(v) for k, v in (params or {}).items() if v is not None})
        uri = quote(path, safe="/:@-._~") + (f"?{query}" if query else "")
        if self._ws_rest and self._ws is not None:
            try:
                response = await self._ws_request(method, uri, body)
            except TimeoutError as exc:
                raise AriError(f"{method} {path}: no answer in time") from exc
            status = int(response.get("status_code") or 500)  # no status is no success
            text = response.get("message_body") or ""
            reason = str(response.get("reason_phrase", ""))
        else:
            status, reason, text = await self._http_request(method, uri, body)
        if status >= 300:
            raise AriError(f"{method} {path}: {status} {reason} {text[:200]}".strip(), status)
        return json.loads(text) if text else None

    async def _ws_request(
        self, method: str, uri: str, body: Any = None, timeout: float | None = None
    ) -> dict[str, Any]:
        ws = self._ws
        if ws is None or ws.closed:
            raise AriError("not connected to ARI")
        request_id = f"r{next(self._ids)}"
        message: dict[str, Any] = {
            "type": "RESTRequest",
            "request_id": request_id,
            "method": method,
            "uri": uri,
        }
        if body is not None:
            message["content_type"] = "application/json"
            message["message_body"] = json.dumps(body)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        try:
            try:
                await ws.send_str(json.dumps(message))
            except (aiohttp.ClientError, ConnectionError) as exc:
                raise AriError(f"{method} {uri}: ARI connection lost ({exc})") from exc
            return await asyncio.wait_for(future, REQUEST_TIMEOUT if timeout is None else timeout)
        finally:
            self._pending.pop(request_id, None)

    async def _http_request(self, method: str, uri: str, body: Any) -> tuple[int, str, str]:
        if self._session is None:
            raise AriError("not connected to ARI")
        try:
            async with self._session.request(
                method, self.base + uri, json=body, timeout=aiohttp.ClientTimeout(REQUEST_TIMEOUT)
            ) as response:
                return response.status, response.reason or "", await response.text()
        except (TimeoutError, aiohttp.ClientError, RuntimeError) as exc:
            # RuntimeError: aiohttp's "Session is closed" once the client is shutting down.
            raise AriError(f"{method} {uri}: {exc}") from exc

    async def download(self, path: str, target: Path) -> int:
        """GET a binary resource (a stored recording) into `target` over HTTP, written
        to a temporary file first so that a broken transfer leaves no half file.
        Returns the size in bytes."""
        if self._session is None:
            raise AriError("not connected to ARI")
        partial = target.with_name(target.name + ".part")
        size = 0
        try:
            async with self._session.get(
                self.base + quote(path, safe="/:@-._~"),
                timeout=aiohttp.ClientTimeout(DOWNLOAD_TIMEOUT),
            ) as response:
                if response.status >= 300:
                    raise AriError(
                        f"GET {path}: {response.status} {response.reason}", response.status
                    )
                with partial.open("wb") as out:
                    async for chunk in response.content.iter_chunked(1 << 16):
                        out.write(chunk)
                        size += len(chunk)
            partial.replace(target)
        except (TimeoutError, aiohttp.ClientError, RuntimeError, OSError) as exc:
            raise AriError(f"GET {path}: {exc}") from exc
        finally:
            partial.unlink(missing_ok=True)
        return size

    async def quiet(self, method: str, path: str, params: Mapping[str, Any] | None = None) -> Any:
        """A request whose failure only matters to the log (hanging up a gone channel)."""
        try:
            return await self.request(method, path, params)
        except AriError as exc:
            # A gone channel (404), a state already so (422): the usual case and no news;
            # no answer or a failing Asterisk is.
            level = (
                logging.DEBUG if exc.status is not None and exc.status < 500 else logging.WARNING
            )
            log.log(level, "ARI %s %s failed: %s", method, path, exc)
        return None


def _param(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
