"""Trunks against SIPp as the provider: registration with digest authentication, calls
out with the right number and credentials, calls in only from the trunk's address, and
the autodialer's outcomes as a real SIP far end gives them (200, 486, 480, 503, no
answer) with the manual's two counters (not answered / failed, provider errors
included).

Each behaviour of the far end is a SIPp UAS on a port of its own, the trunk to it
identified by 127.0.0.1 and that port.
"""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.live_engine import LiveEngine, eventually
from tests.rtp import RtpSink
from tests.sandbox_fixture import SandboxInfo, free_port
from tests.sipp import SIPP, FarEnd, registrar_scenario, uas_scenario

pytestmark = [pytest.mark.asterisk, pytest.mark.sip]

API_USER, API_PASSWORD = "mfc", "api-secret-for-tests"
PROVIDER_USER, PROVIDER_PASSWORD = "0001", "Provider-secret-4f9Q"
# Called number → how the far end answers it (None: rings until given up).
FAR_ENDS = {
    "79001110001": 200,
    "79001110002": 486,
    "79001110003": 480,
    "79001110004": 503,
    "79001110005": None,
}
PROVIDER_NUMBER = "79001234567"


@dataclass
class Trunks:
    live: LiveEngine
    sandbox: SandboxInfo
    base: Path
    ports: dict[str, int]  # called number (or "provider") → the far end's port
    registrar: FarEnd


def _config(sandbox: SandboxInfo, base: Path, ports: dict[str, int]) -> Path:
    config = base / "config"
    config.mkdir()
    system = sandbox.system_yaml(base)
    system += f'  api: {{username: {API_USER}, password: "{API_PASSWORD}"}}\n'
    (config / "system.yaml").write_text(system, encoding="utf-8")
    trunks = [
        f'  - {{name: far{n}, match: "{number}", host: 127.0.0.1, port: {ports[number]}}}'
        for n, number in enumerate(FAR_ENDS)
    ]
    trunks.append(
        f'  - {{name: provider, match: "{PROVIDER_NUMBER}", inbound: "96300", '
        f'host: 127.0.0.1, port: {ports["provider"]}, username: "{PROVIDER_USER}", '
        f'password: "{PROVIDER_PASSWORD}"}}'
    )
    (config / "pbx.yaml").write_text(
        "trunks:\n"
        + "\n".join(trunks)
        + """
dialer:
  enabled: true
  lines: 2
  retry_after: 60
  max_unanswered: 3
  max_failed: 5
  ring_timeout: 5
menus:
  - number: "96300"
    say: Здравствуйте.
""",
        encoding="utf-8",
    )
    return config


@pytest.fixture(scope="module")
def trunks(sandbox: SandboxInfo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trunks]:
    base = tmp_path_factory.mktemp("sip-trunks")
    ports = {n: free_port(socket.SOCK_DGRAM) for n in [*FAR_ENDS, "provider"]}
    config = _config(sandbox, base, ports)
    # The registrar listens before `apply`: Asterisk registers the trunk at once.
    registrar = FarEnd(ports["provider"], base / "sipp", "registrar")
    registrar.start(registrar_scenario(PROVIDER_USER, PROVIDER_PASSWORD))
    live = LiveEngine(config)
    try:
        with sandbox.applied(config):
            live.start()
            try:
                yield Trunks(live, sandbox, base, ports, registrar)
            finally:
                live.stop()
    finally:
        registrar.stop()


@pytest.fixture
def api(trunks: Trunks) -> Iterator[httpx.Client]:
    assert trunks.live.engine is not None
    listen = trunks.live.engine.current.config.system.http_listen
    with httpx.Client(
        base_url=f"http://{listen}/api", auth=(API_USER, API_PASSWORD), timeout=10
    ) as client:
        yield client


def test_the_trunk_registers_with_digest_authentication(trunks: Trunks) -> None:
    ok, output = trunks.registrar.result(timeout=30)
    assert ok, output
    messages = trunks.registrar.received()
    assert f'Digest username="{PROVIDER_USER}"' in messages
    assert f"sip:{PROVIDER_USER}@127.0.0.1" in messages  # the client URI of the registration
    shown = eventually(
        lambda: "Registered" in (s := trunks.sandbox.cli("pjsip show registrations")) and s, 15
    )
    assert "provider-reg" in shown


def _task(api: httpx.Client, number: str) -> dict[str, Any]:
    response = api.post("/tasks", json={"number": number, "text": "Ваше дело готово."})
    assert response.status_code == 201, response.text
    task = response.json()
    return task[0] if isinstance(task, list) else task


def _first_attempt(api: httpx.Client, task: int) -> dict[str, Any]:
    """The task once its first attempt has ended and the task shows it (done, or a
    counter up: the API reads the task and its attempts one after the other, so one
    answer may have the attempt ended and the task from just before)."""
    found: dict[str, Any] = eventually(
        lambda: (
            (t := api.get(f"/tasks/{task}").json())
            and t["attempts"]
            and t["attempts"][0]["ended_at"]
            and (t["done"] or t["unanswered_count"] + t["failed_count"] > 0)
            and t
        ),
        40,
    )
    return found


@pytest.mark.parametrize(
    ("number", "outcome", "counters"),
    [
        ("79001110001", "answered", (0, 0)),
        ("79001110002", "busy", (0, 1)),
        ("79001110003", "no_answer", (1, 1)),
        ("79001110004", "failed", (0, 1)),
        ("79001110005", "no_answer", (1, 1)),
    ],
)
def test_the_dialers_outcomes_through_a_sip_trunk(
    trunks: Trunks, api: httpx.Client, number: str, outcome: str, counters: tuple[int, int]
) -> None:
    far = FarEnd(trunks.ports[number], trunks.base / "sipp", f"far-{number}")
    with RtpSink() as citizen:
        far.start(uas_scenario(number, FAR_ENDS[number], citizen.port))
        try:
            task = _first_attempt(api, _task(api, number)["id"])
            ok, output = far.result(timeout=30)
        finally:
            far.stop()
    assert ok, output
    attempt = task["attempts"][0]
    assert attempt["outcome"] == outcome, attempt
    assert (task["unanswered_count"], task["failed_count"]) == counters
    assert task["done"] is (outcome == "answered")
    if outcome == "answered":
        assert citizen.heard.loud_seconds() >= 0.8  # the text, spoken, not silence
    api.delete(f"/tasks/{task['id']}")  # no retry in later tests


def test_a_call_out_carries_the_number_and_the_credentials(
    trunks: Trunks, api: httpx.Client
) -> None:
    far = FarEnd(trunks.ports["provider"], trunks.base / "sipp", "provider-call")
    trunks.registrar.stop()  # its one registration is done; the port is the call's now
    with RtpSink() as citizen:
        far.start(
            uas_scenario(PROVIDER_NUMBER, 200, citizen.port, (PROVIDER_USER, PROVIDER_PASSWORD))
        )
        try:
            task = _first_attempt(api, _task(api, PROVIDER_NUMBER)["id"])
            ok, output = far.result(timeout=30)
        finally:
            far.stop()
    assert ok, output  # the INVITE was to 79001234567 and its digest was right
    assert task["attempts"][0]["outcome"] == "answered"
    assert f'Digest username="{PROVIDER_USER}"' in far.received()


def test_calls_in_only_from_the_trunks_address(trunks: Trunks, tmp_path: Path) -> None:
    engine = trunks.live.engine
    assert engine is not None
    before = len(engine.call_log.logged_after(0)) if engine.call_log else 0
    stranger = tmp_path / "stranger.xml"
    stranger.write_text(STRANGER, encoding="utf-8")
    run = subprocess.run(
        [
            SIPP,
            trunks.sandbox.sip,
            "-sf",
            str(stranger),
            "-s",
            "96300",
            "-i",
            "127.0.0.1",
            "-p",
            str(free_port(socket.SOCK_DGRAM)),
            "-cp",
            str(free_port()),
            "-m",
            "1",
            "-timeout",
            "20s",
            "-timeout_error",
            "-nostdin",
        ],
        capture_output=True,
        text=True,
        timeout=40,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-1500:] + run.stderr  # refused, as expected
    assert engine.call_log is not None
    assert len(engine.call_log.logged_after(0)) == before  # the engine never saw it


# An INVITE from an address no trunk or phone has: Asterisk must refuse it.
STRANGER = """<?xml version="1.0"?>
<scenario name="stranger">
<send retrans="500"><![CDATA[
INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:+79990000000@[local_ip]:[local_port]>;tag=[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: <sip:+79990000000@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Length: 0

]]></send>
<recv response="100" optional="true"/>
<recv response="401" optional="true" next="refused"/>
<recv response="403" optional="true" next="refused"/>
<recv response="404" next="refused"/>
<label id="refused"/>
<send><![CDATA[
ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:+79990000000@[local_ip]:[local_port]>;tag=[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 1 ACK
Max-Forwards: 70
Content-Length: 0

]]></send>
</scenario>
"""
