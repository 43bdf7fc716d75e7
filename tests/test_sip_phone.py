"""tests/sip_phone.py against the sandbox Asterisk: real registrations of PJSIP phones.

A module fixture applies a config with two phones (2001, 2002); a SipPhone registering
as one of them makes its endpoint "online" in ARI, unregistering makes it "offline".
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.sandbox_fixture import SandboxInfo
from tests.sip_phone import SipError, SipPhone, choose_challenge, digest_authorization

pytestmark = pytest.mark.asterisk

PASSWORDS = {"2001": "sip-2001-Kx7pQ2vL", "2002": "sip-2002-Rm4tW9sD"}


def _write_config(sandbox: SandboxInfo, base: Path) -> Path:
    config = base / "config"
    config.mkdir()
    (config / "system.yaml").write_text(sandbox.system_yaml(base), encoding="utf-8")
    (config / "phones.yaml").write_text(
        "phones:\n"
        + "".join(
            f'  - {{number: "{number}", password: "{password}"}}\n'
            for number, password in PASSWORDS.items()
        ),
        encoding="utf-8",
    )
    return config


@pytest.fixture(scope="module")
def phones_applied(
    sandbox: SandboxInfo, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SandboxInfo]:
    """The sandbox with PJSIP endpoints 2001 and 2002 (`astpbx apply`), removed afterwards."""
    config = _write_config(sandbox, tmp_path_factory.mktemp("sip-phone"))
    with sandbox.applied(config):
        yield sandbox


def _phone(sandbox: SandboxInfo, number: str, password: str | None = None) -> SipPhone:
    return SipPhone(number, PASSWORDS[number] if password is None else password, sandbox.sip)


def _state(sandbox: SandboxInfo, number: str) -> str:
    status, endpoint = sandbox.ari("GET", f"endpoints/PJSIP/{number}")
    assert status == 200, (status, endpoint)
    state: str = endpoint["state"]
    return state


def _channels(sandbox: SandboxInfo, number: str) -> list[str]:
    status, endpoint = sandbox.ari("GET", f"endpoints/PJSIP/{number}")
    assert status == 200
    channels: list[str] = endpoint["channel_ids"]
    return channels


def _until(condition: Callable[[], bool], timeout: float = 5) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _contact_line(sandbox: SandboxInfo, phone: SipPhone) -> str:
    """The `pjsip show contacts` line of this phone's contact ("" when there is none)."""
    uri = f"{phone.number}/sip:{phone.number}@127.0.0.1:{phone.port}"
    lines = sandbox.cli("pjsip show contacts").splitlines()
    return next((line for line in lines if uri in line), "")


def test_register_and_unregister_switch_the_endpoint_state(phones_applied: SandboxInfo) -> None:
    sandbox = phones_applied
    assert _state(sandbox, "2001") == "offline"
    with _phone(sandbox, "2001") as phone:
        phone.register()
        assert phone.registered
        assert _until(lambda: _state(sandbox, "2001") == "online"), _state(sandbox, "2001")
        assert _contact_line(sandbox, phone)
        assert _state(sandbox, "2002") == "offline"
        phone.unregister()
        assert not phone.registered
        assert _until(lambda: _state(sandbox, "2001") == "offline"), _state(sandbox, "2001")
        assert not _contact_line(sandbox, phone)


def test_two_phones_and_close_unregisters(phones_applied: SandboxInfo) -> None:
    sandbox = phones_applied
    with _phone(sandbox, "2001") as first, _phone(sandbox, "2002") as second:
        first.register()
        second.register(expires=120)
        assert first.port != second.port
        assert _until(
            lambda: _state(sandbox, "2001") == "online" and _state(sandbox, "2002") == "online"
        )
    assert _until(
        lambda: _state(sandbox, "2001") == "offline" and _state(sandbox, "2002") == "offline"
    )


def test_register_again_refreshes(phones_applied: SandboxInfo) -> None:
    sandbox = phones_applied
    with _phone(sandbox, "2002") as phone:
        phone.register()
        phone.register(expires=300)  # same Call-ID, next CSeq: a refresh
        assert _until(lambda: _state(sandbox, "2002") == "online")
    assert _until(lambda: _state(sandbox, "2002") == "offline")


@pytest.mark.parametrize(
    ("number", "password"),
    [("2001", "wrong-password-123"), ("2009", "no-such-phone-123")],
    ids=["wrong-password", "unknown-number"],
)
def test_rejected_registration_raises(
    phones_applied: SandboxInfo, number: str, password: str
) -> None:
    sandbox = phones_applied
    with SipPhone(number, password, sandbox.sip) as phone:
        with pytest.raises(SipError, match=r"SIP/2\.0 40[13] "):
            phone.register(timeout=3)
        assert not phone.registered
    assert _state(sandbox, "2001") == "offline"


def test_phone_answers_qualify(phones_applied: SandboxInfo) -> None:
    sandbox = phones_applied
    with _phone(sandbox, "2001") as phone:
        phone.register()
        assert _until(lambda: _state(sandbox, "2001") == "online")
        # Asterisk qualifies a new contact at once; `pjsip qualify` asks once more.
        answered = phone.options_answered
        assert answered >= 1
        assert "Qualifying AOR '2001'" in sandbox.cli("pjsip qualify 2001")
        assert _until(lambda: phone.options_answered > answered)
        assert _until(lambda: "Avail" in _contact_line(sandbox, phone)), _contact_line(
            sandbox, phone
        )
        assert _state(sandbox, "2001") == "online"


def test_phone_rejects_calls_busy(phones_applied: SandboxInfo) -> None:
    sandbox = phones_applied
    with _phone(sandbox, "2001") as phone:
        phone.register()
        assert _until(lambda: _state(sandbox, "2001") == "online")
        sandbox.cli("channel originate PJSIP/2001 application Wait 1")
        assert _until(lambda: phone.invites_rejected >= 1)
        assert _until(lambda: not _channels(sandbox, "2001"))
        assert _state(sandbox, "2001") == "online"


def test_register_without_registrar_times_out() -> None:
    """No registrar at all: a SipError after the timeout, not a hang."""
    with SipPhone("2001", "whatever-password", "127.0.0.1:9") as phone:
        started = time.monotonic()
        with pytest.raises(SipError, match="no final response"):
            phone.register(timeout=1)
        assert time.monotonic() - started < 3
        assert not phone.registered


def test_digest_rfc2617_example(monkeypatch: pytest.MonkeyPatch) -> None:
    """RFC 2617 3.5: the example response, with qop=auth and the cnonce given there."""
    monkeypatch.setattr("tests.sip_phone.secrets.token_hex", lambda _n: "0a4f113b")
    challenge = choose_challenge(
        [
            'Digest realm="testrealm@host.com", qop="auth,auth-int", '
            'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", '
            'opaque="5ccc069c403ebaf9f0171e9517f40e41"'
        ]
    )
    value = digest_authorization(challenge, "GET", "/dir/index.html", "Mufasa", "Circle Of Life")
    assert 'response="6629fae49393a05397450978507c4ef1"' in value
    assert "nc=00000001" in value and 'cnonce="0a4f113b"' in value
    assert 'opaque="5ccc069c403ebaf9f0171e9517f40e41"' in value
