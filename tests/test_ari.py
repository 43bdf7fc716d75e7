"""The ARI adapter against a fake Asterisk: events and REST over one WebSocket, HTTP
fallback, reconnects, close.

The fake is an aiohttp application in the test's own event loop: `/ari/events` checks
the credentials and the app name, answers RESTRequest messages from a table and records
them, and lets the test push events, garbage and a close; plain HTTP routes under
`/ari/...` answer from the same table for the fallback. No Asterisk is needed.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from ast_pbx import ari
from ast_pbx.ari import AriClient, AriError
from tests.async_helpers import eventually, run

USER, PASSWORD, APP = "astpbx", "s3cret:pw", "astpbx-test"

# A response in the table that is never sent: the request stays unanswered.
NO_ANSWER = object()

Response = tuple[int, Any]  # status, JSON body (None: empty body)


class FakeAri:
    """A fake Asterisk ARI: WebSocket events + REST over the socket, and HTTP REST."""

    def __init__(self, *, ws_rest: bool = True) -> None:
        self.ws_rest = ws_rest  # False: ignore RESTRequest messages (an Asterisk before 22.3)
        self.responses: dict[tuple[str, str], Response | object] = {
            ("GET", "asterisk/info"): (200, {"system": {"version": "22.10.1"}}),
        }
        self.ws_requests: list[dict[str, Any]] = []
        self.http_requests: list[tuple[str, str, dict[str, str], str]] = []
        self.sockets: list[web.WebSocketResponse] = []
        self.rejected: list[int] = []  # statuses of refused handshakes
        self.app = web.Application()
        self.app.router.add_get("/ari/events", self._events)
        self.app.router.add_route("*", "/ari/{tail:.*}", self._http)

    # What the test does

    @property
    def ws(self) -> web.WebSocketResponse:
        return self.sockets[-1]

    async def push(self, message: dict[str, Any] | str | bytes) -> None:
        """Send an event (a dict), a text frame (str) or a binary frame (bytes)."""
        if isinstance(message, bytes):
            await self.ws.send_bytes(message)
        elif isinstance(message, str):
            await self.ws.send_str(message)
        else:
            await self.ws.send_str(json.dumps(message))

    async def close_socket(self) -> None:
        await self.ws.close()

    async def close_all(self) -> None:
        for ws in self.sockets:
            await ws.close()

    def requests_to(self, method: str, path: str) -> list[dict[str, Any]]:
        return [
            r
            for r in self.ws_requests
            if r.get("method") == method and str(r.get("uri", "")).split("?", maxsplit=1)[0] == path
        ]

    # Answers

    def _lookup(self, method: str, uri: str) -> Response | object:
        path = uri.split("?", maxsplit=1)[0]
        found = self.responses.get((method, uri), self.responses.get((method, path)))
        if found is None:
            return (404, {"message": "Resource not found"})
        return found

    def _authorized(self, request: web.Request) -> bool:
        token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        return request.headers.get("Authorization") == f"Basic {token}"

    async def _events(self, request: web.Request) -> web.StreamResponse:
        if not self._authorized(request):
            self.rejected.append(401)
            raise web.HTTPUnauthorized()
        if request.query.get("app") != APP:
            self.rejected.append(400)
            raise web.HTTPBadRequest(text="no such app")
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.sockets.append(ws)
        async for message in ws:
            if message.type is not aiohttp.WSMsgType.TEXT:
                continue
            data = json.loads(message.data)
            if data.get("type") != "RESTRequest":
                continue
            self.ws_requests.append(data)
            if not self.ws_rest:
                continue
            answer = self._lookup(data["method"], data["uri"])
            if answer is NO_ANSWER:
                continue
            assert isinstance(answer, tuple)
            status, body = answer
            await ws.send_str(
                json.dumps(
                    {
                        "type": "RESTResponse",
                        "transaction_id": "",
                        "request_id": data["request_id"],
                        "status_code": status,
                        "reason_phrase": "OK" if status < 300 else "Not Found",
                        "uri": data["uri"],
                        "content_type": "application/json",
                        "message_body": "" if body is None else json.dumps(body),
                    }
                )
            )
        return ws

    async def _http(self, request: web.Request) -> web.StreamResponse:
        if not self._authorized(request):
            raise web.HTTPUnauthorized()
        tail = request.match_info["tail"]
        body = await request.text()
        self.http_requests.append((request.method, tail, dict(request.query), body))
        uri = tail + (f"?{request.query_string}" if request.query_string else "")
        answer = self._lookup(request.method, uri)
        if answer is NO_ANSWER:
            await asyncio.sleep(3600)
        assert isinstance(answer, tuple)
        status, payload = answer
        if payload is None:
            return web.Response(status=status)
        return web.json_response(payload, status=status)


@contextlib.asynccontextmanager
async def serving(fake: FakeAri) -> AsyncIterator[str]:
    """The fake on 127.0.0.1 with a free port; yields its base URL."""
    server = TestServer(fake.app, host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/")
    finally:
        await fake.close_all()
        await server.close()


@contextlib.asynccontextmanager
async def running(
    url: str,
    events: list[dict[str, Any]],
    *,
    on_connected: Callable[[], Awaitable[None]] | None = None,
    password: str = PASSWORD,
    rest_over_websocket: bool = True,
    wait: bool = True,
) -> AsyncIterator[tuple[AriClient, asyncio.Task[None]]]:
    """A client running against `url`; closed (and its run() awaited) on exit."""
    client = AriClient(
        url,
        USER,
        password,
        APP,
        on_event=events.append,
        on_connected=on_connected,
        rest_over_websocket=rest_over_websocket,
    )
    task = asyncio.create_task(client.run())
    try:
        if wait:
            await client.wait_connected(2.0)
        yield client, task
    finally:
        await client.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 2.0)


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ari, "BACKOFF_START", 0.01)


# 1. Connecting and events


def test_connects_with_basic_auth_and_app_and_delivers_events_in_order() -> None:
    async def scenario() -> None:
        fake = FakeAri()
        events: list[dict[str, Any]] = []
        async with serving(fake) as url, running(url, events) as (client, _):
            assert client.connected
            assert fake.rejected == []
            assert len(fake.sockets) == 1
            for n in range(20):
                await fake.push({"type": "ChannelDtmfReceived", "digit": str(n % 10), "n": n})
            await eventually(lambda: len(events) == 20)
            assert [e["n"] for e in events] == list(range(20))

    run(scenario())


def test_garbage_is_skipped_and_the_connection_goes_on() -> None:
    async def scenario() -> None:
        fake = FakeAri()
        events: list[dict[str, Any]] = []
        async with serving(fake) as url, running(url, events):
            await fake.push({"type": "StasisStart", "n": 1})
            await fake.push("this is not JSON {")
            await fake.push("[1, 2, 3]")
            await fake.push('"a string"')
            await fake.push("null")
            await fake.push(b"\x00\x01binary")
            await fake.push({"type": "RESTResponse", "request_id": "nobody-asked"})
            await fake.push({"type": "SomethingAsteriskInventsLater", "n": 2})
            await fake.push({"no": "type", "n": 3})
            await fake.push({"type": "StasisEnd", "n": 4})
            await eventually(lambda: len(events) == 4)
            # Unknown event types are the owner's business: the adapter passes them on.
            assert [e["n"] for e in events] == [1, 2, 3, 4]
            assert len(fake.sockets) == 1  # the same connection throughout

    run(scenario())


def test_an_event_handler_that_raises_does_not_end_the_connection() -> None:
    async def scenario() -> None:
        fake = FakeAri()
        seen: list[dict[str, Any]] = []

        def handler(event: dict[str, Any]) -> None:
            seen.append(event)
            if event.get("boom"):
                raise RuntimeError("a bad event")

        async with serving(fake) as url:
            client = AriClient(url, USER, PASSWORD, APP, on_event=handler)
            task = asyncio.create_task(client.run())
            await client.wait_connected(2.0)
            await fake.push({"type": "X", "boom": True})
            await fake.push({"type": "Y"})
            await eventually(lambda: len(seen) == 2)
            assert client.connected and len(fake.sockets) == 1
            await client.close()
            await asyncio.wait_for(task, 2.0)

    run(scenario())


def test_wrong_password_is_refused_and_retried() -> None:
    async def scenario() -> None:
        fake = FakeAri()
        async with (
            serving(fake) as url,
            running(url, [], password="wrong", wait=False) as (client, task),
        ):
            await eventually(lambda: len(fake.rejected) >= 2)
            assert set(fake.rejected) == {401}
            assert not client.connected and not task.done()
        assert task.done()

    run(scenario())


# 2. REST over the WebSocket


def test_request_over_the_websocket() -> None:
    async def scenario() -> None:
        fake = FakeAri()
        fake.responses["POST", "channels/c1/play"] = (201, {"id": "p1", "state": "queued"})
        async with serving(fake) as url, running(url, []) as (client, _):
            assert [r["uri"] for r in fake.ws_requests] == ["asterisk/info"]  # the probe
            answer = await client.request(
                "POST", "channels/c1/play", {"media": "sound:x", "playbackId": "p1"}
            )
            assert answer == {"id": "p1", "state": "queued"}
            sent = fake.ws_requests[1:]
            assert len(sent) == 1
            assert set(sent[0]) == {"type", "request_id", "method", "uri"}
            assert sent[0]["type"] == "RESTRequest"
            assert sent[0]["method"] == "POST"
            assert sent[0]["uri"] == "channels/c1/play?media=sound%3Ax&playbackId=p1"
            assert fake.http_requests == []

    run(scenario())


def test_request_parameters_and_body_over_the_websocket() -> None:
    async def scenario() -> None:
        fake = FakeAri()
        fake.responses["POST", "channels"] = (200, {"id": "peer-1"})
        fake.responses["DELETE", "channels/c%201"] = (204, None)
        async with serving(fake) as url, running(url, []) as (client, _):
            peer = await client.request(
                "POST",
                "channels",
                {"endpoint": "PJSIP/1001", "appArgs": "dialed,c1", "early": False, "x": None},
                body={"variables": {"A": "1"}},
            )
            assert peer == {"id": "peer-1"}
            assert await client.request("DELETE", "channels/c 1") is None  # empty body
            first, second = fake.ws_requests[1:]
            assert first["uri"] == "channels?endpoint=PJSIP%2F1001&appArgs=dialed%2Cc1&early=false"
            assert first["content_type"] == "application/json"
            assert json.loads(first["message_body"]) == {"variables": {"A": "1"}}
            assert second["uri"] == "channels/c%201"
            # Every request has an id of its own.
            ids = [r["request_id"] for r in fake.ws_requests]
            assert len(set(ids)) == len(ids)

    run(scenario())


def test_concurrent_requests_get_their_own_answers() -> None:
    async def scenario() -> None:
        fake = FakeAri()
        for n in range(30):
            fake.responses["GET", f"channels/c{n}"] = (200, {"id": f"c{n}"})
        async with serving(fake) as url, running(url, []) as (client, _):
            answers = await asyncio.gather(
                *(client.request("GET", f"channels/c{n}") for n in range(30))
            )
            assert answers == [{"id": f"c{n}"} for n in range(30)]

    run(scenario())


def test_an_error_status_over_the_websocket_raises_ari_error() -> None:
    async def scenario() -> None:
        fake = FakeAri()
        fake.responses["DELETE", "channels/gone"] = (404, {"message": "Channel not found"})
        async with serving(fake) as url, running(url, []) as (client, _):
            with pytest.raises(AriError) as caught:
                await client.request("DELETE", "channels/gone")
            assert caught.value.status == 404
            assert "404" in str(caught.value)
            # quiet() swallows it.
            assert await client.quiet("DELETE", "channels/gone") is None
            assert client.connected

    run(scenario())


def test_a_request_never_answered_raises_after_the_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ari, "REQUEST_TIMEOUT", 0.3)

    async def scenario() -> None:
        fake = FakeAri()
        fake.responses["GET", "channels/slow"] = NO_ANSWER
        async with serving(fake) as url, running(url, []) as (client, _):
            started = time.monotonic()
            with pytest.raises(AriError, match="no answer"):
                # The outer bound keeps the test short if the timeout is not honoured.
                await asyncio.wait_for(client.request("GET", "channels/slow"), 1.0)
            assert time.monotonic() - started < 1.0
            assert client._pending == {}

    run(scenario())


def test_a_request_never_answered_raises_ari_error_and_is_forgotten() -> None:
    """The same, with the timeout the code actually uses shortened."""

    async def scenario() -> None:
        fake = FakeAri()
        fake.responses["GET", "channels/slow"] = NO_ANSWER
        fake.responses["GET", "channels/fast"] = (200, {"id": "fast"})
        async with serving(fake) as url, running(url, []) as (client, _):
            with pytest.raises(TimeoutError):
                await client._ws_request("GET", "channels/slow", timeout=0.2)
            assert client._pending == {}
            assert await client.request("GET", "channels/fast") == {"id": "fast"}

    run(scenario())


# 3. Falling back to HTTP


def test_falls_back_to_http_when_the_socket_does_not_answer_requests(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ari, "PROBE_TIMEOUT", 0.1)

    async def scenario() -> None:
        fake = FakeAri(ws_rest=False)
        fake.responses["POST", "channels/c1/play"] = (201, {"id": "p1"})
        fake.responses["DELETE", "channels/gone"] = (404, {"message": "Channel not found"})
        fake.responses["POST", "channels/c1/answer"] = (204, None)
        fake.responses["POST", "bridges"] = (200, {"id": "b1"})
        events: list[dict[str, Any]] = []
        async with serving(fake) as url, running(url, events) as (client, _):
            assert [r["uri"] for r in fake.ws_requests] == ["asterisk/info"]  # only the probe
            answer = await client.request(
                "POST", "channels/c1/play", {"media": "sound:x", "playbackId": "p1"}
            )
            assert answer == {"id": "p1"}
            assert await client.request("POST", "channels/c1/answer") is None
            assert await client.request("POST", "bridges", body={"type": "mixing"}) is not None
            with pytest.raises(AriError) as caught:
                await client.request("DELETE", "channels/gone")
            assert caught.value.status == 404
            assert fake.http_requests[:2] == [
                ("POST", "channels/c1/play", {"media": "sound:x", "playbackId": "p1"}, ""),
                ("POST", "channels/c1/answer", {}, ""),
            ]
            assert json.loads(fake.http_requests[2][3]) == {"type": "mixing"}
            assert len(fake.ws_requests) == 1  # nothing else went over the socket
            # Events still come over the socket.
            await fake.push({"type": "StasisStart"})
            await eventually(lambda: len(events) == 1)

    run(scenario())


def test_rest_over_websocket_can_be_switched_off() -> None:
    async def scenario() -> None:
        fake = FakeAri()
        fake.responses["GET", "channels/c1"] = (200, {"id": "c1"})
        async with serving(fake) as url, running(url, [], rest_over_websocket=False) as (client, _):
            assert await client.request("GET", "channels/c1") == {"id": "c1"}
            assert fake.ws_requests == []  # not even a probe
            assert [r[:2] for r in fake.http_requests] == [("GET", "channels/c1")]

    run(scenario())


def test_http_errors_raise_ari_error() -> None:
    async def scenario() -> None:
        fake = FakeAri()
        fake.responses["POST", "channels"] = (500, {"message": "Allocation failed"})
        async with serving(fake) as url, running(url, [], rest_over_websocket=False) as (client, _):
            with pytest.raises(AriError) as caught:
                await client.request("POST", "channels", {"endpoint": "PJSIP/1001"})
            assert caught.value.status == 500
            assert "Allocation failed" in str(caught.value)

    run(scenario())


# 4. Reconnecting


def test_reconnects_fails_pending_requests_and_resumes_events() -> None:
    async def scenario() -> None:
        fake = FakeAri()
        fake.responses["GET", "channels/slow"] = NO_ANSWER
        connected: list[int] = []

        async def on_connected() -> None:
            connected.append(len(fake.sockets))

        events: list[dict[str, Any]] = []
        async with (
            serving(fake) as url,
            running(url, events, on_connected=on_connected) as (client, task),
        ):
            assert connected == [1]
            await fake.push({"type": "Before"})
            await eventually(lambda: len(events) == 1)
            pending = asyncio.create_task(client.request("GET", "channels/slow"))
            await eventually(lambda: bool(fake.requests_to("GET", "channels/slow")))
            await fake.close_socket()
            with pytest.raises(AriError, match="ARI connection lost"):
                await asyncio.wait_for(pending, 2.0)
            await eventually(lambda: connected == [1, 2])
            assert client.connected and not task.done()
            await fake.push({"type": "After"})
            await eventually(lambda: len(events) == 2)
            assert [e["type"] for e in events] == ["Before", "After"]
            # REST over the socket works on the new connection too.
            fake.responses["GET", "channels/c1"] = (200, {"id": "c1"})
            assert await client.request("GET", "channels/c1") == {"id": "c1"}
            assert fake.http_requests == []

    run(scenario())


def test_reconnects_after_the_server_goes_away_and_comes_back() -> None:
    async def scenario() -> None:
        fake = FakeAri()
        connected: list[float] = []

        async def on_connected() -> None:
            connected.append(time.monotonic())

        events: list[dict[str, Any]] = []
        server = TestServer(fake.app, host="127.0.0.1")
        await server.start_server()
        port = server.port
        url = str(server.make_url("")).rstrip("/")
        async with running(url, events, on_connected=on_connected) as (client, task):
            await fake.close_all()
            await server.close()
            await eventually(lambda: not client.connected)
            # Requests while disconnected fail at once rather than hang.
            with pytest.raises(AriError):
                await asyncio.wait_for(client.request("GET", "channels"), 1.0)
            await asyncio.sleep(0.1)  # a few failed attempts
            assert not task.done()
            server = TestServer(fake.app, host="127.0.0.1", port=port)
            await server.start_server()
            await eventually(lambda: len(connected) == 2)
            await fake.push({"type": "Back"})
            await eventually(lambda: len(events) == 1)
        await fake.close_all()
        await server.close()

    run(scenario())


def test_connection_lost_during_on_connected_fails_its_requests_at_once() -> None:
    async def scenario() -> None:
        fake = FakeAri()
        fake.responses["GET", f"applications/{APP}"] = NO_ANSWER
        outcome: list[str] = []
        client: AriClient | None = None

        async def on_connected() -> None:
            assert client is not None
            if len(fake.sockets) > 1:
                return
            try:
                await asyncio.wait_for(client.request("GET", f"applications/{APP}"), 0.8)
            except Exception as exc:
                outcome.append(type(exc).__name__)

        async with serving(fake) as url:
            client = AriClient(url, USER, PASSWORD, APP, on_event=lambda e: None)
            client._on_connected = on_connected
            task = asyncio.create_task(client.run())
            try:
                await eventually(lambda: bool(fake.requests_to("GET", f"applications/{APP}")))
                await fake.close_socket()
                await eventually(lambda: bool(outcome), timeout=1.0)
                assert outcome == ["AriError"]  # actual: TimeoutError after the whole wait
            finally:
                await client.close()
                await asyncio.wait_for(task, 2.0)

    run(scenario())


def test_requests_on_a_dropped_socket_raise_ari_error() -> None:
    async def scenario() -> None:
        fake = FakeAri()
        release = asyncio.Event()

        async def on_connected() -> None:
            await release.wait()  # e.g. resync still hanging up stray channels

        async with serving(fake) as url:
            client = AriClient(url, USER, PASSWORD, APP, on_event=lambda e: None)
            client._on_connected = on_connected
            task = asyncio.create_task(client.run())
            try:
                await eventually(lambda: client._ws is not None and client._ws_rest)
                await fake.close_socket()
                await eventually(lambda: client._ws is None or client._ws.closed)
                # A call hanging up its channel: failures must only matter to the log.
                assert await client.quiet("DELETE", "channels/c1") is None
                with pytest.raises(AriError):
                    await client.request("DELETE", "channels/c1")
            finally:
                release.set()
                await client.close()
                await asyncio.wait_for(task, 2.0)

    run(scenario())


# 5. Closing


def test_close_ends_run() -> None:
    async def scenario() -> None:
        fake = FakeAri()
        fake.responses["GET", "channels/slow"] = NO_ANSWER
        async with serving(fake) as url:
            client = AriClient(url, USER, PASSWORD, APP, on_event=lambda e: None)
            task = asyncio.create_task(client.run())
            await client.wait_connected(2.0)
            pending = asyncio.create_task(client.request("GET", "channels/slow"))
            await eventually(lambda: bool(fake.requests_to("GET", "channels/slow")))
            await client.close()
            await asyncio.wait_for(task, 1.0)
            assert not client.connected
            with pytest.raises(AriError, match="ARI connection lost"):
                await asyncio.wait_for(pending, 1.0)
            assert len(fake.sockets) == 1  # it did not reconnect

    run(scenario())


def test_close_while_retrying_ends_run() -> None:
    async def scenario() -> None:
        fake = FakeAri()
        async with serving(fake) as url:
            client = AriClient(url, USER, "wrong", APP, on_event=lambda e: None)
            task = asyncio.create_task(client.run())
            await eventually(lambda: len(fake.rejected) >= 1)
            await client.close()
            await asyncio.wait_for(task, 1.0)

    run(scenario())


def test_close_before_the_connection_is_up_ends_run() -> None:
    async def scenario() -> None:
        fake = FakeAri()
        async with serving(fake) as url:
            client = AriClient(url, USER, PASSWORD, APP, on_event=lambda e: None)
            task = asyncio.create_task(client.run())
            await asyncio.sleep(0)  # run() has started connecting
            await client.close()
            try:
                await asyncio.wait_for(asyncio.shield(task), 0.5)
            finally:
                await client.close()  # now that the socket is up, this one ends run()
                await asyncio.wait_for(task, 1.0)

    run(scenario())
