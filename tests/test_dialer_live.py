"""The autodialer, the external-system API and callbacks on a real Asterisk.

The engine runs in this process with its HTTP server; tasks come in over HTTP like the
information system sends them. The "outside world" is a trunk whose endpoint is a
dialplan context (Local/N@astpbx-test-out): citizens there answer and record what they
hear, ring without answering, or are busy.
"""

from __future__ import annotations

import array
import shutil
import wave
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from ast_pbx.engine.engine import Engine
from ast_pbx.storage.callbacks import CallbackStore
from ast_pbx.storage.calls import CallLog, CallRecord
from ast_pbx.storage.db import open_database
from tests.live_engine import LiveEngine, MovableClock, eventually
from tests.sandbox_fixture import SandboxInfo

pytestmark = pytest.mark.asterisk

ANSWERS, SILENT, BUSY = "79001110001", "79001110002", "79001110003"
API_USER, API_PASSWORD = "mfc", "api-secret-for-tests"


def _dialplan(heard: Path) -> str:
    return f"""\
[astpbx-test-out]
exten => {ANSWERS},1,Answer()
 same => n,Record({heard}/${{UNIQUEID}}.wav,0,30,qxk)
 same => n,Hangup()
exten => {SILENT},1,Wait(60)
exten => {BUSY},1,Busy(5)

[astpbx-test-phones]
exten => _X!,1,Answer()
 same => n,Wait(3)
 same => n,Hangup()
"""


CONFIG = """\
phones:
  - {number: "2002", password: "secret-for-tests"}
users:
  - {login: ivanova, role: operator}
trunks:
  - {name: city, match: '7\\d{10}', endpoint: Local/astpbx-test-out, lines: 3}
dialer:
  enabled: true
  lines: 2
  retry_after: 1
  max_unanswered: 2
  max_failed: 2
  ring_timeout: 5
menus:
  - number: "96200"
    scenario: callback_request
"""


@pytest.fixture(scope="module")
def live(sandbox: SandboxInfo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveEngine]:
    base = tmp_path_factory.mktemp("dialer")
    config = base / "config"
    config.mkdir()
    system = sandbox.system_yaml(
        base, 'phone_dial: "Local/{number}@astpbx-test-phones", presence: always'
    )
    system += f'  api: {{username: {API_USER}, password: "{API_PASSWORD}"}}\n'
    (config / "system.yaml").write_text(system, encoding="utf-8")
    (config / "pbx.yaml").write_text(CONFIG, encoding="utf-8")
    heard = sandbox.data_dir / "heard"
    heard.mkdir(parents=True, exist_ok=True)
    engine = LiveEngine(config)
    with sandbox.applied(config, _dialplan(heard)):
        engine.start()
        try:
            yield engine
        finally:
            engine.stop()
            shutil.rmtree(heard, ignore_errors=True)


def engine_of(live: LiveEngine) -> Engine:
    assert live.engine is not None
    return live.engine


@pytest.fixture
def api(live: LiveEngine) -> Iterator[httpx.Client]:
    listen = engine_of(live).current.config.system.http_listen
    with httpx.Client(
        base_url=f"http://{listen}/api", auth=(API_USER, API_PASSWORD), timeout=10
    ) as client:
        yield client


def task_when(api: httpx.Client, task: int, done: Any) -> dict[str, Any]:
    """The task (with its attempts) once `done(task)` holds."""
    return eventually(lambda: (t := api.get(f"/tasks/{task}").json()) and done(t) and t, 40)


def _audio(path: Path) -> tuple[float, float]:
    with wave.open(str(path)) as wav:
        samples = array.array("h", wav.readframes(wav.getnframes()))
        seconds = wav.getnframes() / wav.getframerate()
    return seconds, (sum(s * s for s in samples) / max(1, len(samples))) ** 0.5 / 32768


def test_a_task_from_the_api_is_dialed_and_the_citizen_hears_the_text(
    live: LiveEngine, api: httpx.Client, sandbox: SandboxInfo
) -> None:
    response = api.post(
        "/tasks",
        json={"number": ANSWERS, "text": "Ваше дело 4567 готово.", "external_id": "case-4567"},
    )
    assert response.status_code == 201, response.text
    task = response.json()
    task = task[0] if isinstance(task, list) else task
    done = task_when(api, task["id"], lambda t: t["done"])
    assert done["done_reason"] == "answered"
    [attempt] = done["attempts"]
    assert attempt["outcome"] == "answered"
    assert attempt["answered_at"] and attempt["ended_at"]
    heard = eventually(lambda: list((sandbox.data_dir / "heard").glob("*.wav")))
    seconds, rms = _audio(heard[0])
    assert seconds > 1 and rms > 0.01  # the spoken text, not silence

    again = api.post("/tasks", json={"number": ANSWERS, "text": "x", "external_id": "case-4567"})
    assert again.status_code == 200  # the same task, not a second call
    assert api.get(f"/tasks/{task['id']}").json()["attempts"] == done["attempts"]


def test_unanswered_and_busy_attempts_are_retried_then_given_up(
    live: LiveEngine, api: httpx.Client
) -> None:
    clock = live.clock
    assert isinstance(clock, MovableClock)
    silent = api.post("/tasks", json={"number": SILENT, "text": "Алло."}).json()
    busy = api.post("/tasks", json={"number": BUSY, "text": "Алло."}).json()
    silent, busy = (t[0] if isinstance(t, list) else t for t in (silent, busy))
    first = task_when(api, silent["id"], lambda t: t["attempts"] and t["attempts"][0]["outcome"])
    assert first["attempts"][0]["outcome"] == "no_answer"
    assert (first["unanswered_count"], first["failed_count"], first["done"]) == (1, 1, False)
    b = task_when(api, busy["id"], lambda t: t["attempts"] and t["attempts"][0]["outcome"])
    assert b["attempts"][0]["outcome"] == "busy", repr(b["attempts"][0])
    assert (b["unanswered_count"], b["failed_count"]) == (0, 1)

    clock.offset += timedelta(minutes=1, seconds=5)  # retry_after has passed
    for task, reason in ((silent, "max_unanswered"), (busy, "max_failed")):
        done = task_when(api, task["id"], lambda t: t["done"])
        assert done["done_reason"] == reason
        assert len(done["attempts"]) == 2


def logged(live: LiveEngine, channel: str) -> CallRecord:
    with open_database(engine_of(live).current.config.system.database_url) as database:
        log = CallLog(database)
        return eventually(lambda: (r := log.get(channel)) is not None and r.ended_at and r, 30)


def test_a_callback_request_left_in_the_ivr_and_called_back(
    live: LiveEngine, sandbox: SandboxInfo, api: httpx.Client
) -> None:
    engine = engine_of(live)
    with live.callers(sandbox) as callers:
        request = live.run(callers.dial("96200", caller=ANSWERS))
        live.run(callers.ended(request, 30))
    with open_database(engine.current.config.system.database_url) as database:
        store = CallbackStore(database)
        [callback] = eventually(lambda: store.open(engine.clock()))
        assert (callback.caller, callback.call_id, callback.source) == (ANSWERS, request, "ivr")
        listed = api.get("/callbacks", params={"open": "true"}).json()
        assert [c["caller"] for c in listed] == [ANSWERS]

        channel = live.run(engine.callback_calls.call(callback.id, "ivanova", phone="2002"))
        record = logged(live, channel)
        assert (record.caller, record.called, record.outcome) == ("2002", ANSWERS, "trunk city")
        # The conversation is recorded like any other.
        assert eventually(lambda: logged(live, channel).recording)
        called = eventually(lambda: (c := store.get(callback.id)) and c.called_at and c)
        assert (called.operator, called.callback_call_id) == ("ivanova", channel)


def test_the_callback_commands_against_the_running_engine(
    live: LiveEngine, sandbox: SandboxInfo, api: httpx.Client
) -> None:
    engine = engine_of(live)
    config = str(live.config)
    made = api.post("/callbacks", json={"caller": "+" + ANSWERS})
    assert made.status_code == 201, made.text
    callback = made.json()["id"]
    listed = sandbox.astpbx("callback", "list", config)
    assert listed.returncode == 0 and f"{callback}\t+{ANSWERS}\t" in listed.stdout

    refused = sandbox.astpbx("callback", "call", str(callback), config, "--operator", "nobody")
    assert refused.returncode != 0 and "no user 'nobody'" in refused.stderr
    placed = sandbox.astpbx(
        "callback", "call", str(callback), config, "--operator", "ivanova", "--phone", "2002"
    )
    assert placed.returncode == 0, placed.stderr
    channel = placed.stdout.rsplit("(call ", 1)[1].rstrip(")\n")
    assert logged(live, channel).called == "+" + ANSWERS
    with open_database(engine.current.config.system.database_url) as database:
        store = CallbackStore(database)
        eventually(lambda: (c := store.get(callback)) and c.operator == "ivanova")

    closed = sandbox.astpbx("callback", "done", str(callback), config)
    assert closed.returncode == 0 and "\tdone" in closed.stdout
    still_open = sandbox.astpbx("callback", "list", config).stdout.splitlines()
    assert str(callback) not in [line.split("\t")[0] for line in still_open]


def test_no_more_calls_at_once_than_the_dialer_has_lines(
    live: LiveEngine, api: httpx.Client
) -> None:
    """dialer.lines is 2: three tasks due together are dialed two, then one."""
    batch = [{"number": SILENT, "text": f"Задача {n}."} for n in range(3)]
    response = api.post("/tasks", json=batch)
    assert response.status_code == 201, response.text
    ids = [task["id"] for task in response.json()]
    tasks = [
        task_when(api, task, lambda t: t["attempts"] and t["attempts"][0]["ended_at"])
        for task in ids
    ]
    spans = [(t["attempts"][0]["started_at"], t["attempts"][0]["ended_at"]) for t in tasks]
    moments = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    at_once, most = 0, 0
    for _, change in moments:
        at_once += change
        most = max(most, at_once)
    assert most == 2
    for task in ids:  # leave nothing to be retried in later tests
        api.delete(f"/tasks/{task}")
