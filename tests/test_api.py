"""The external-system API (`ast_pbx.web.api`) over SQLite and PostgreSQL, through
FastAPI's TestClient: auth, error format, tasks, callbacks, the call log, OpenAPI."""

from __future__ import annotations

import base64
import logging
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
import sqlalchemy as sa

from ast_pbx.engine.callbacks import CallbackError, NoSuchCallback
from ast_pbx.storage.callbacks import CallbackStore
from ast_pbx.storage.calls import CallLog
from ast_pbx.storage.db import Database
from ast_pbx.storage.models import DialerAttempt, DialerTask
from ast_pbx.web.api import create_api
from tests.storage_fixtures import (  # noqa: F401
    database_fixture,
    postgres_url_fixture,
    url_fixture,
)

with warnings.catch_warnings():
    # Starlette asks for `httpx2` in place of `httpx`; the client works the same.
    warnings.filterwarnings("ignore", "Using `httpx` with")
    from fastapi.testclient import TestClient

MSK = timezone(timedelta(hours=3))  # the system timezone of these tests
T0 = datetime(2026, 3, 2, 7, 0, tzinfo=UTC)  # 10:00 in MSK
AUTH = ("api", "s3cret")


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


class Hook:
    """A dial-now hook that remembers the tasks it was given."""

    def __init__(self, fail: bool = False) -> None:
        self.calls: list[int] = []
        self.fail = fail

    async def __call__(self, task_id: int) -> None:
        self.calls.append(task_id)
        if self.fail:
            raise RuntimeError("the dialer is asleep")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def hook() -> Hook:
    return Hook()


def make_client(
    database: Database,
    clock: Clock,
    hook: Hook | None = None,
    password: str = AUTH[1],
    call_back: Any = None,
) -> TestClient:
    app = create_api(
        database=database,
        username=AUTH[0],
        password=password,
        clock=clock,
        dial_now_hook=hook,
        call_back_hook=call_back,
        timezone=MSK,
    )
    return TestClient(app)


@pytest.fixture
def anonymous(database: Database, clock: Clock, hook: Hook) -> Iterator[TestClient]:
    with make_client(database, clock, hook) as client:
        yield client


@pytest.fixture
def client(anonymous: TestClient) -> TestClient:
    anonymous.auth = AUTH
    return anonymous


def task(number: Any = "+79001234567", text: Any = "Your order is ready", **more: Any) -> Any:
    return {"number": number, "text": text, **more}


def add(client: TestClient, body: Any) -> Any:
    response = client.post("/api/tasks", json=body)
    assert response.status_code in {200, 201}, response.text
    return response.json()


def task_rows(database: Database) -> int:
    with database.engine.connect() as connection:
        return int(connection.scalar(sa.select(sa.func.count()).select_from(DialerTask)) or 0)


def assert_error(response: Any, status: int, field: str | None) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "field"}
    assert body["field"] == field
    if field is not None:
        assert body["error"].startswith(f"{field}: ")
    message: str = body["error"]
    return message


# Auth


def test_no_credentials_are_refused_with_the_realm(anonymous: TestClient) -> None:
    response = anonymous.get("/api/tasks")
    assert_error(response, 401, None)
    assert response.headers["www-authenticate"] == 'Basic realm="astpbx"'
    response = anonymous.post("/api/tasks", json=task())
    assert response.status_code == 401


@pytest.mark.parametrize(
    "credentials", [("api", "wrong"), ("other", "s3cret"), ("api", ""), ("api", "s3cret ")]
)
def test_wrong_credentials_are_refused(
    anonymous: TestClient, database: Database, credentials: tuple[str, str]
) -> None:
    response = anonymous.post("/api/tasks", json=task(), auth=credentials)
    message = assert_error(response, 401, None)
    assert message == "wrong username or password"
    assert response.headers["www-authenticate"] == 'Basic realm="astpbx"'
    assert task_rows(database) == 0


def test_malformed_authorization_header_is_refused(anonymous: TestClient) -> None:
    for header in ["Basic !!!notbase64", "Bearer abc", "Basic " + base64.b64encode(b"x").decode()]:
        response = anonymous.get("/api/tasks", headers={"Authorization": header})
        assert_error(response, 401, None)
        assert response.headers["www-authenticate"] == 'Basic realm="astpbx"'


def test_right_credentials_pass(anonymous: TestClient) -> None:
    response = anonymous.get("/api/tasks", auth=AUTH)
    assert response.status_code == 200
    assert response.json() == []


def test_an_empty_password_refuses_everyone(
    database: Database, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="astpbx.api"):
        client = make_client(database, clock, password="")
    assert "refuses every request" in caplog.text
    for credentials in [("api", ""), ("api", "anything"), ("", "")]:
        response = client.get("/api/tasks", auth=credentials)
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == 'Basic realm="astpbx"'


def test_openapi_document_and_docs_need_no_auth(anonymous: TestClient) -> None:
    response = anonymous.get("/api/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document["info"]["title"] == "astpbx API"
    routes = {
        (method.upper(), path)
        for path, operations in document["paths"].items()
        for method in operations
    }
    assert routes == {
        ("POST", "/api/tasks"),
        ("GET", "/api/tasks"),
        ("GET", "/api/tasks/{task_id}"),
        ("DELETE", "/api/tasks/{task_id}"),
        ("POST", "/api/tasks/{task_id}/dial"),
        ("POST", "/api/callbacks"),
        ("GET", "/api/callbacks"),
        ("POST", "/api/callbacks/{callback_id}/call"),
        ("GET", "/api/calls"),
    }
    for operations in document["paths"].values():
        for operation in operations.values():
            assert operation["summary"]
            assert operation["security"] == [{"HTTPBasic": []}]
            assert "401" in operation["responses"]
    assert document["components"]["securitySchemes"]["HTTPBasic"]["scheme"] == "basic"
    task_in = document["components"]["schemas"]["TaskIn"]
    assert task_in["additionalProperties"] is False
    assert all(field.get("description") for field in task_in["properties"].values())
    docs = anonymous.get("/api/docs")
    assert docs.status_code == 200
    assert "swagger" in docs.text.lower()


# Errors


def test_malformed_json_is_400(client: TestClient, database: Database) -> None:
    response = client.post(
        "/api/tasks", content=b'{"number": ', headers={"Content-Type": "application/json"}
    )
    message = assert_error(response, 400, None)
    assert message.startswith("request body is not valid JSON: ")
    assert task_rows(database) == 0


def test_a_body_that_is_not_json_is_415(client: TestClient) -> None:
    response = client.post(
        "/api/tasks", content=b"number=1", headers={"Content-Type": "text/plain"}
    )
    assert_error(response, 415, None)


def test_unknown_field_is_422_naming_it(client: TestClient, database: Database) -> None:
    response = client.post("/api/tasks", json=task(colour="red"))
    message = assert_error(response, 422, "tasks.0.colour")
    assert "not permitted" in message
    assert task_rows(database) == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (task(number="12"), "tasks.0.number"),
        (task(number="+7 900 123"), "tasks.0.number"),
        (task(number=79001234567), "tasks.0.number"),
        ({"text": "hi"}, "tasks.0.number"),
        (task(text=""), "tasks.0.text"),
        (task(text="   "), "tasks.0.text"),
        (task(text="x" * 2001), "tasks.0.text"),
        (task(priority=101), "tasks.0.priority"),
        (task(priority=-1), "tasks.0.priority"),
        (task(priority="5"), "tasks.0.priority"),
        (task(repeat=0), "tasks.0.repeat"),
        (task(repeat=6), "tasks.0.repeat"),
        (task(external_id=""), "tasks.0.external_id"),
        (task(external_id="x" * 129), "tasks.0.external_id"),
        (task(not_before="tomorrow"), "tasks.0.not_before"),
        ([], "tasks"),
        ("a task", "tasks"),
    ],
)
def test_invalid_tasks_are_422_naming_the_field(
    client: TestClient, database: Database, body: Any, field: str
) -> None:
    response = client.post("/api/tasks", json=body)
    assert_error(response, 422, field)
    assert task_rows(database) == 0


def test_a_batch_with_one_bad_item_writes_nothing(client: TestClient, database: Database) -> None:
    body = [task(external_id="a"), task(number="oops", external_id="b"), task(external_id="c")]
    response = client.post("/api/tasks", json=body)
    assert_error(response, 422, "tasks.1.number")
    assert task_rows(database) == 0
    assert client.get("/api/tasks").json() == []


def test_unexpected_errors_are_500_and_logged(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(CallLog, "history", broken)
    with caplog.at_level(logging.ERROR, logger="astpbx.api"):
        response = client.get("/api/calls", params={"from": "2026-03-01", "to": "2026-03-02"})
    assert response.status_code == 500
    assert response.json() == {"error": "internal error", "field": None}
    assert "disk on fire" in caplog.text


def test_unknown_routes_and_methods_are_json(client: TestClient) -> None:
    assert_error(client.get("/api/nothing"), 404, None)
    assert_error(client.put("/api/tasks"), 405, None)


# Tasks


def test_add_one_task(client: TestClient, database: Database) -> None:
    response = client.post(
        "/api/tasks",
        json=task(
            not_before="2026-03-02T12:30:00",  # no offset: the system timezone
            priority=5,
            repeat=2,
            external_id="order-1",
        ),
    )
    assert response.status_code == 201
    body = response.json()
    assert body == {
        "id": body["id"],
        "external_id": "order-1",
        "number": "+79001234567",
        "text": "Your order is ready",
        "repeat": 2,
        "priority": 5,
        "enqueued_at": "2026-03-02T10:00:00+03:00",
        "not_before": "2026-03-02T12:30:00+03:00",
        "done": False,
        "done_reason": None,
        "attempt_count": 0,
        "unanswered_count": 0,
        "failed_count": 0,
        "dialing_since": None,
        "created": True,
    }
    with database.engine.connect() as connection:
        stored = connection.execute(sa.select(DialerTask)).one()
    assert stored.not_before in {
        datetime(2026, 3, 2, 9, 30),  # SQLite: naive UTC
        datetime(2026, 3, 2, 9, 30, tzinfo=UTC),
    }


def test_add_task_defaults_and_offsets(client: TestClient) -> None:
    body = add(client, task(number="100", not_before="2026-03-02T07:00:00Z"))
    assert (body["priority"], body["repeat"], body["external_id"]) == (0, 1, None)
    assert body["not_before"] == "2026-03-02T10:00:00+03:00"


def test_add_a_batch(client: TestClient, database: Database) -> None:
    response = client.post(
        "/api/tasks", json=[task(number="101", external_id="a"), task(number="102")]
    )
    assert response.status_code == 201
    body = response.json()
    assert isinstance(body, list)
    assert [(item["number"], item["created"]) for item in body] == [("101", True), ("102", True)]
    assert task_rows(database) == 2


def test_resubmit_is_idempotent_by_external_id(client: TestClient, database: Database) -> None:
    first = add(client, task(external_id="order-7"))
    again = client.post("/api/tasks", json=task(text="changed", external_id="order-7"))
    assert again.status_code == 200
    assert again.json() == {**first, "created": False}
    assert task_rows(database) == 1

    batch = client.post("/api/tasks", json=[task(external_id="order-7")])
    assert batch.status_code == 200
    assert [(item["id"], item["created"]) for item in batch.json()] == [(first["id"], False)]

    mixed = client.post(
        "/api/tasks", json=[task(external_id="order-7"), task(external_id="order-8")]
    )
    assert mixed.status_code == 201
    assert [item["created"] for item in mixed.json()] == [False, True]
    assert task_rows(database) == 2


def test_list_tasks_with_filters(client: TestClient, clock: Clock) -> None:
    a = add(client, task(number="+79001110000"))
    clock.now = T0 + timedelta(days=1)
    b = add(client, task(number="+79002220000"))
    clock.now = T0 + timedelta(days=2)
    c = add(client, task(number="+79001119999"))
    with_done = client.post(f"/api/tasks/{b['id']}/dial")  # not done: still pending
    assert with_done.status_code == 202

    def ids(**params: Any) -> list[int]:
        response = client.get("/api/tasks", params=params)
        assert response.status_code == 200, response.text
        return [item["id"] for item in response.json()]

    assert ids() == [c["id"], b["id"], a["id"]]
    assert ids(number="111") == [c["id"], a["id"]]
    assert ids(done="false") == [c["id"], b["id"], a["id"]]
    assert ids(done="true") == []
    # Dates are days of the system timezone; `to` as a date includes its day.
    assert ids(**{"from": "2026-03-03"}) == [c["id"], b["id"]]
    assert ids(**{"to": "2026-03-03"}) == [b["id"], a["id"]]
    assert ids(**{"from": "2026-03-03", "to": "2026-03-03"}) == [b["id"]]
    # Date-times: `to` excluded; without an offset in the system timezone.
    assert ids(**{"from": "2026-03-03T10:00:00", "to": "2026-03-04T10:00:00"}) == [b["id"]]
    assert ids(**{"from": "2026-03-03T07:00:00Z"}) == [c["id"], b["id"]]
    assert ids(**{"from": "2026-03-03T10:00:01+03:00"}) == [c["id"]]
    assert ids(limit=1, offset=1) == [b["id"]]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"from": "yesterday"}, "query.from"),
        ({"to": "2026-13-01"}, "query.to"),
        ({"from": "2026-03-02", "to": "2026-03-01"}, "query.to"),
        ({"done": "maybe"}, "query.done"),
        ({"limit": 0}, "query.limit"),
        ({"limit": 1001}, "query.limit"),
        ({"offset": -1}, "query.offset"),
    ],
)
def test_bad_task_queries_are_422(client: TestClient, params: dict[str, Any], field: str) -> None:
    assert_error(client.get("/api/tasks", params=params), 422, field)


def test_a_plus_that_became_a_space_gets_a_hint(client: TestClient) -> None:
    response = client.get("/api/tasks?from=2026-03-02T10:00:00+03:00")
    message = assert_error(response, 422, "query.from")
    assert "%2B" in message


def test_get_task_with_its_attempts(client: TestClient, database: Database) -> None:
    added = add(client, task())
    with database.engine.begin() as connection:
        for row in [
            {
                "task_id": added["id"],
                "number": "+79001234567",
                "channel_id": "dial-1",
                "worker": "pbx1:42",
                "started_at": T0 + timedelta(minutes=1),
                "ringing_at": T0 + timedelta(minutes=1, seconds=2),
                "ended_at": T0 + timedelta(minutes=1, seconds=32),
                "outcome": "no_answer",
                "cause": 19,
                "cause_text": "No answer",
            },
            {
                "task_id": added["id"],
                "number": "+79001234567",
                "started_at": T0 + timedelta(minutes=20),
            },
        ]:
            connection.execute(sa.insert(DialerAttempt).values(**row))
    response = client.get(f"/api/tasks/{added['id']}")
    assert response.status_code == 200
    body = response.json()
    assert {key: body[key] for key in added if key != "created"} == {
        key: value for key, value in added.items() if key != "created"
    }
    assert body["attempts"] == [
        {
            "id": body["attempts"][0]["id"],
            "number": "+79001234567",
            "channel_id": "dial-1",
            "worker": "pbx1:42",
            "started_at": "2026-03-02T10:01:00+03:00",
            "ringing_at": "2026-03-02T10:01:02+03:00",
            "answered_at": None,
            "ended_at": "2026-03-02T10:01:32+03:00",
            "outcome": "no_answer",
            "cause": 19,
            "cause_text": "No answer",
        },
        {
            "id": body["attempts"][1]["id"],
            "number": "+79001234567",
            "channel_id": None,
            "worker": None,
            "started_at": "2026-03-02T10:20:00+03:00",
            "ringing_at": None,
            "answered_at": None,
            "ended_at": None,
            "outcome": None,
            "cause": None,
            "cause_text": None,
        },
    ]


def test_get_unknown_or_malformed_task(client: TestClient) -> None:
    assert_error(client.get("/api/tasks/12345"), 404, None)
    assert_error(client.get("/api/tasks/abc"), 422, "path.task_id")


def hold_lease(database: Database, task_id: int, until: datetime) -> None:
    with database.engine.begin() as connection:
        connection.execute(
            sa.update(DialerTask)
            .where(DialerTask.id == task_id)
            .values(lease_owner="pbx1:42", lease_until=until, attempt_started_at=T0)
        )


def test_delete_task(client: TestClient, database: Database) -> None:
    added = add(client, task())
    response = client.delete(f"/api/tasks/{added['id']}")
    assert response.status_code == 204
    assert response.content == b""
    assert task_rows(database) == 0
    assert_error(client.delete(f"/api/tasks/{added['id']}"), 404, None)


def test_delete_is_refused_while_dialing(
    client: TestClient, database: Database, clock: Clock
) -> None:
    added = add(client, task())
    hold_lease(database, added["id"], T0 + timedelta(minutes=3))
    shown = client.get(f"/api/tasks/{added['id']}").json()
    assert shown["dialing_since"] == "2026-03-02T10:00:00+03:00"
    message = assert_error(client.delete(f"/api/tasks/{added['id']}"), 409, None)
    assert "being dialed" in message
    assert task_rows(database) == 1
    # The lease runs out (its engine died): nothing is going on any more.
    clock.now = T0 + timedelta(minutes=4)
    assert client.get(f"/api/tasks/{added['id']}").json()["dialing_since"] is None
    assert client.delete(f"/api/tasks/{added['id']}").status_code == 204
    assert task_rows(database) == 0


def test_dial_now_wakes_the_dialer(client: TestClient, hook: Hook) -> None:
    added = add(client, task(not_before="2026-03-05T09:00:00+03:00", priority=50))
    response = client.post(f"/api/tasks/{added['id']}/dial")
    assert response.status_code == 202
    body = response.json()
    assert body["id"] == added["id"]
    assert body["not_before"] is None
    assert body["priority"] < 0  # urgent
    assert "created" not in body and "attempts" not in body
    assert hook.calls == [added["id"]]
    assert client.get(f"/api/tasks/{added['id']}").json()["priority"] == body["priority"]


def test_dial_unknown_task_is_404_and_wakes_nobody(client: TestClient, hook: Hook) -> None:
    assert_error(client.post("/api/tasks/999/dial"), 404, None)
    assert hook.calls == []


def test_dial_now_without_a_hook_or_with_a_failing_one(database: Database, clock: Clock) -> None:
    for hook in [None, Hook(fail=True)]:
        with make_client(database, clock, hook) as client:
            client.auth = AUTH
            added = add(client, task())
            assert client.post(f"/api/tasks/{added['id']}/dial").status_code == 202


# Callbacks


def test_add_callback(client: TestClient) -> None:
    response = client.post("/api/callbacks", json={"caller": "+79001234567"})
    assert response.status_code == 201
    body = response.json()
    assert body == {
        "id": body["id"],
        "caller": "+79001234567",
        "requested_at": "2026-03-02T10:00:00+03:00",  # the clock
        "source": "api",
        "call_id": None,
        "done": False,
        "call_not_before": None,
        "operator": None,
        "called_at": None,
        "callback_call_id": None,
    }
    earlier = client.post(
        "/api/callbacks", json={"caller": "100", "requested_at": "2026-03-02T09:15:00"}
    )
    assert earlier.status_code == 201
    assert earlier.json()["requested_at"] == "2026-03-02T09:15:00+03:00"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"caller": "abc"}, "callback.caller"),
        ({}, "callback.caller"),
        ({"caller": "100", "source": "ivr"}, "callback.source"),
        ({"caller": "100", "requested_at": "soon"}, "callback.requested_at"),
    ],
)
def test_invalid_callbacks_are_422(client: TestClient, body: Any, field: str) -> None:
    assert_error(client.post("/api/callbacks", json=body), 422, field)
    assert client.get("/api/callbacks").json() == []


def test_list_callbacks(client: TestClient, database: Database, clock: Clock) -> None:
    def post(caller: str) -> int:
        response = client.post("/api/callbacks", json={"caller": caller})
        assert response.status_code == 201
        return int(response.json()["id"])

    a = post("+79001110000")
    clock.now = T0 + timedelta(days=1)
    b = post("+79002220000")
    clock.now = T0 + timedelta(days=2)
    c = post("+79001119999")
    CallbackStore(database).update(b, done=True)

    def ids(**params: Any) -> list[int]:
        response = client.get("/api/callbacks", params=params)
        assert response.status_code == 200, response.text
        return [item["id"] for item in response.json()]

    assert ids() == [c, b, a]
    assert ids(open="true") == [c, a]
    assert ids(open="false") == [b]
    assert ids(caller="111") == [c, a]
    assert ids(**{"from": "2026-03-03", "to": "2026-03-03"}) == [b]
    assert ids(**{"from": "2026-03-03"}, open="true") == [c]
    assert_error(client.get("/api/callbacks", params={"open": "perhaps"}), 422, "query.open")


# The call log


def test_call_history_with_filters(client: TestClient, database: Database) -> None:
    log = CallLog(database)
    for n, (caller, called, minutes) in enumerate(
        [("+79001110000", "90000", 0), ("+79002220000", "91000", 30), ("1001", "90000", 90)]
    ):
        log.started(f"chan-{n}", caller, called, at=T0 + timedelta(minutes=minutes))
    log.answered("chan-0", T0 + timedelta(seconds=5))
    log.ended(
        "chan-0",
        at=T0 + timedelta(seconds=65),
        outcome="phone 1001",
        reason="caller hung up",
        path=["90000", "1001"],
    )
    log.mark_channel("chan-1")

    def calls(**params: Any) -> list[Any]:
        query = {"from": "2026-03-02", "to": "2026-03-02", **params}
        response = client.get("/api/calls", params=query)
        assert response.status_code == 200, response.text
        result: list[Any] = response.json()
        return result

    everything = calls()
    assert [call["channel_id"] for call in everything] == ["chan-2", "chan-1", "chan-0"]
    first = everything[2]
    assert first["started_at"] == "2026-03-02T10:00:00+03:00"
    assert first["answered_at"] == "2026-03-02T10:00:05+03:00"
    assert first["path"] == ["90000", "1001"]
    assert (first["outcome"], first["reason"]) == ("phone 1001", "caller hung up")
    assert (first["duration_seconds"], first["talk_seconds"]) == (65.0, 60.0)
    assert everything[0]["ended_at"] is None and everything[0]["duration_seconds"] is None

    assert [c["channel_id"] for c in calls(caller="79001")] == ["chan-0"]
    assert [c["channel_id"] for c in calls(called="90000")] == ["chan-2", "chan-0"]
    assert [c["channel_id"] for c in calls(marked="true")] == ["chan-1"]
    assert [c["channel_id"] for c in calls(limit=2)] == ["chan-2", "chan-1"]
    only_first = calls(**{"from": "2026-03-02T10:00:00+03:00", "to": "2026-03-02T10:30:00+03:00"})
    assert [c["channel_id"] for c in only_first] == ["chan-0"]
    assert calls(**{"from": "2026-03-03", "to": "2026-03-04"}) == []


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"to": "2026-03-02"}, "query.from"),
        ({"from": "2026-03-02"}, "query.to"),
        ({"from": "2026-03-02", "to": "2026-03-02", "limit": 1001}, "query.limit"),
        ({"from": "2026-03-02", "to": "2026-03-02", "marked": "sometimes"}, "query.marked"),
    ],
)
def test_bad_call_queries_are_422(client: TestClient, params: dict[str, Any], field: str) -> None:
    assert_error(client.get("/api/calls", params=params), 422, field)


# Calling back through a running engine


def test_call_back_asks_the_engine_and_maps_its_refusals(
    database: Database, clock: Clock, client: TestClient
) -> None:
    asked: list[tuple[int, str, str | None]] = []

    async def call_back(callback: int, operator: str, phone: str | None) -> str:
        asked.append((callback, operator, phone))
        if callback == 404:
            raise NoSuchCallback(f"no callback request {callback}")
        if operator == "nobody":
            raise CallbackError("no user 'nobody' in the config's users")
        return "callback-1"

    # Without an engine (the API alone) there is no one to place the call.
    assert client.post("/api/callbacks/1/call", json={"operator": "ivanova"}).status_code == 409
    with make_client(database, clock, call_back=call_back) as engine_client:
        engine_client.auth = AUTH
        ok = engine_client.post("/api/callbacks/1/call", json={"operator": "ivanova"})
        assert (ok.status_code, ok.json()) == (202, {"call": "callback-1"})
        missing = engine_client.post("/api/callbacks/404/call", json={"operator": "ivanova"})
        assert missing.status_code == 404 and "no callback request" in missing.json()["error"]
        refused = engine_client.post("/api/callbacks/1/call", json={"operator": "nobody"})
        assert refused.status_code == 409 and "nobody" in refused.json()["error"]
        bad = engine_client.post(
            "/api/callbacks/1/call", json={"operator": "ivanova", "phone": "x", "more": 1}
        )
        assert bad.status_code == 422
    assert asked == [(1, "ivanova", None), (404, "ivanova", None), (1, "nobody", None)]
