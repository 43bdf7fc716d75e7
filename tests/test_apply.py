"""`astpbx plan` / `astpbx apply`: rendering Asterisk's files, the plan, applying it.

Unit tests run against a fake ARI (a local HTTP server that records module reloads);
the test marked `asterisk` applies a config to the real Asterisk sandbox.
"""

from __future__ import annotations

import json
import shutil
import socket
import textwrap
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from ast_pbx.applying import APPLIED_FILE, reload_module
from ast_pbx.asterisk_files import (
    DIALPLAN_FILE,
    PJSIP_FILE,
    RenderError,
    diff_sections,
    modules_to_reload,
    parse_sections,
    render,
    sections_digest,
)
from ast_pbx.cli import main
from ast_pbx.config.configuration import Config
from ast_pbx.config.loader import load
from ast_pbx.config.model import Phone, Trunk
from ast_pbx.config.system import Ari
from tests.conftest import EXAMPLE
from tests.sandbox_fixture import SandboxInfo

PHONES = """\
phones:
  - {number: "1001", password: "first-secret-1001", name: Reception}
  - {number: "1002", password: "second-secret-1002"}
"""
TRUNKS = """\
trunks:
  - {name: rt, match: '\\d{7,}', inbound: "1001", host: sip.example.net, port: 5070,
     username: "0001", password: "trunk-secret-0001"}
  - {name: pbx2, match: '7\\d{3}', inbound: "1001", endpoint: PJSIP/pbx2}
"""


# --- helpers ------------------------------------------------------------------------


@dataclass
class FakeAri:
    url: str
    status: int = 204  # what every reload answers
    reloaded: list[str] = field(default_factory=list)
    authorization: list[str] = field(default_factory=list)


@pytest.fixture
def fake_ari() -> Iterator[FakeAri]:
    """An HTTP server answering 204 to PUT /ari/asterisk/modules/NAME, as Asterisk does."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    ari = FakeAri(f"http://127.0.0.1:{server.server_port}")

    class Handler(BaseHTTPRequestHandler):
        def do_PUT(self) -> None:
            ari.reloaded.append(self.path.rsplit("/", 1)[-1])
            ari.authorization.append(self.headers.get("Authorization", ""))
            self.send_response(ari.status)
            self.end_headers()

        def log_message(self, *_: object) -> None:
            pass

    server.RequestHandlerClass = Handler
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield ari
    server.shutdown()
    server.server_close()


def closed_port_url() -> str:
    """An ARI URL where nothing listens."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def make_config(tmp_path: Path, ari_url: str, **files: str) -> Path:
    """A config directory in tmp_path whose generated files and data stay in tmp_path."""
    directory = tmp_path / "config"
    directory.mkdir(exist_ok=True)
    system = f"""\
        system:
          ari: {{url: "{ari_url}", username: astpbx, password: ari-secret-value, app: astpbx}}
          asterisk: {{config_dir: ../asterisk}}
          paths: {{data: ../data}}
        """
    (directory / "system.yaml").write_text(textwrap.dedent(system), encoding="utf-8")
    for name, text in {"phones.yaml": PHONES, "trunks.yaml": TRUNKS, **files}.items():
        (directory / name).write_text(text, encoding="utf-8")
    return directory


def astpbx(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of `astpbx ARGS` run in this process."""
    with pytest.raises(SystemExit) as exited:
        main(list(args))
    out, err = capsys.readouterr()
    code = exited.value.code
    return (code if isinstance(code, int) else 1), out, err


def loaded(path: Path) -> Config:
    result = load(str(path), env={})
    assert not result.errors, [str(p) for p in result.errors]
    return result.config


# --- rendering ----------------------------------------------------------------------


def test_example_renders_every_phone_the_trunk_and_the_contexts() -> None:
    files = render(loaded(EXAMPLE), "/cfg/mfc", "v1")
    pjsip = {s.key: s for s in parse_sections(files[PJSIP_FILE])}
    for number in ("1001", "1111", "123456", "1987", "2609"):
        endpoint = pjsip[(number, "endpoint")].lines
        assert f"auth={number}-auth" in endpoint
        assert "context=astpbx-phones" in endpoint
        assert "direct_media=no" in endpoint
        assert "qualify_frequency=30" in pjsip[(number, "aor")].lines
        assert f"username={number}" in pjsip[(f"{number}-auth", "auth")].lines
    assert 'callerid="Приёмная" <123456>' in pjsip[("123456", "endpoint")].lines
    registration = pjsip[("rt-reg", "registration")].lines
    assert "server_uri=sip:sip.rt.example.net" in registration
    assert "client_uri=sip:0001@sip.rt.example.net" in registration
    assert "context=astpbx-trunk-rt" in pjsip[("rt", "endpoint")].lines
    assert "match=sip.rt.example.net" in pjsip[("rt-identify", "identify")].lines
    assert "dtmf_mode=rfc4733" in pjsip[("rt", "endpoint")].lines
    assert "dtmf_mode=rfc4733" in pjsip[("1001", "endpoint")].lines
    dialplan = {s.name: s.lines for s in parse_sections(files[DIALPLAN_FILE])}
    phones = dialplan["astpbx-phones"]
    assert phones[0] == "exten => _[0-9*#+]!,1,Set(CHANNEL(hangup_handler_push)=astpbx-ended,s,1)"
    assert "same => n(stasis),Stasis(astpbx,internal)" in phones
    # No engine connected: ringing and a retry every second for engine_wait (10) seconds,
    # then the unavailable message; an absolute timeout (an engine's SIGTERM) leads there.
    assert "same => n,GotoIf($[${ASTPBX_WAITED} >= 10]?astpbx-unavailable,s,1)" in phones
    assert phones[-1] == "exten => T,1,Goto(astpbx-unavailable,s,1)"
    assert dialplan["astpbx-call"] == phones
    assert "same => n(stasis),Stasis(astpbx,trunk,rt)" in dialplan["astpbx-trunk-rt"]
    assert "same => n,Playback(pls-try-call-later)" in dialplan["astpbx-unavailable"]
    assert dialplan["astpbx-ended"][0] == (
        "exten => s,1,Set(GLOBAL(ASTPBX_END_${UNIQUEID})=${EPOCH},${HANGUPCAUSE})"
    )
    for text in files.values():
        assert text.startswith("; Generated by astpbx from /cfg/mfc at version v1.\n")


def test_trunk_with_its_own_endpoint_gets_only_a_context(tmp_path: Path) -> None:
    files = render(loaded(make_config(tmp_path, "http://127.0.0.1:1")), "c", "v")
    assert not [s for s in parse_sections(files[PJSIP_FILE]) if "pbx2" in s.name]
    assert "set context=astpbx-trunk-pbx2 on PJSIP/pbx2" in files[DIALPLAN_FILE]
    assert "[astpbx-trunk-pbx2]" in files[DIALPLAN_FILE]
    assert "server_uri=sip:sip.example.net:5070" in files[PJSIP_FILE]
    # With its port, the trunk is only what comes from that port: phones on its host
    # are themselves.
    assert "match=sip.example.net:5070" in files[PJSIP_FILE]


def test_dtmf_mode_per_phone_and_trunk(tmp_path: Path) -> None:
    modes = {"1001": "info", "1002": "inband", "1003": "auto"}
    phones = "".join(
        f'  - {{number: "{n}", password: "long-enough-secret", dtmf: {m}}}\n'
        for n, m in modes.items()
    )
    trunk = "  - {name: rt, host: 127.0.0.1, port: 5999, dtmf: info}\n"
    config = make_config(tmp_path, "http://127.0.0.1:1")
    (config / "phones.yaml").write_text("phones:\n" + phones, encoding="utf-8")
    (config / "trunks.yaml").write_text("trunks:\n" + trunk, encoding="utf-8")
    pjsip = {s.key: s for s in parse_sections(render(loaded(config), "c", "v")[PJSIP_FILE])}
    for number, mode in modes.items():
        assert f"dtmf_mode={mode}" in pjsip[(number, "endpoint")].lines
    assert "dtmf_mode=info" in pjsip[("rt", "endpoint")].lines


def test_an_unknown_dtmf_mode_is_an_error_at_its_line(tmp_path: Path) -> None:
    config = make_config(tmp_path, "http://127.0.0.1:1")
    (config / "phones.yaml").write_text(
        'phones:\n  - number: "1001"\n    password: long-enough-secret\n    dtmf: rfc2833\n',
        encoding="utf-8",
    )
    errors = load(str(config), env={}).errors
    assert [(Path(p.where.file).name, p.where.line) for p in errors] == [("phones.yaml", 4)]
    assert "rfc2833" in errors[0].message and "rfc4733" in errors[0].message


def _one_phone(password: str, name: str | None = None) -> Config:
    return Config(phones=(Phone("1001", password, name),))


def test_semicolons_are_escaped_as_asterisk_reads_them() -> None:
    text = render(_one_phone("a;b;--c", 'Ann "A" <x>; B'), "c", "v")[PJSIP_FILE]
    assert "password=a\\;b\\;--c\n" in text
    assert 'callerid="Ann A x \\; B" <1001>\n' in text
    # A leading '>' would be read as part of '=>'.
    assert "password= >gt\n" in render(_one_phone(">gt"), "c", "v")[PJSIP_FILE]


@pytest.mark.parametrize(
    ("password", "message"),
    [("two\nlines", "newline"), (" padded", "blank"), ("tab\there", "control character")],
)
def test_secrets_asterisk_cannot_hold_are_refused(password: str, message: str) -> None:
    with pytest.raises(RenderError, match=f"phone 1001: password .*{message}"):
        render(_one_phone(password), "c", "v")


def test_values_that_would_break_the_files_are_refused() -> None:
    bad_host = Config(trunks=(Trunk("rt", host="evil.net\n[x]"),))
    with pytest.raises(RenderError, match="trunk rt: host"):
        render(bad_host, "c", "v")
    clash = Config(phones=(Phone("1001", "secret-value"),), trunks=(Trunk("1001", host="h"),))
    with pytest.raises(RenderError, match=r"two sections \[1001\] \(aor\)"):
        render(clash, "c", "v")


def test_the_header_is_not_a_change() -> None:
    old = render(_one_phone("secret-one"), "c", "v1")[PJSIP_FILE]
    new = render(_one_phone("secret-one"), "c", "v2")[PJSIP_FILE]
    assert old != new
    assert diff_sections(old, new) == []
    assert sections_digest(old) == sections_digest(new)


def test_only_the_module_of_a_changed_file_reloads() -> None:
    old = render(_one_phone("secret-one"), "c", "v")
    new = render(_one_phone("secret-two"), "c", "v")
    done = {name: digest for name in old if (digest := sections_digest(old[name]))}
    assert modules_to_reload(new, old, done) == ("res_pjsip.so",)
    assert modules_to_reload(old, old, done) == ()
    # A reload that failed last time (applied.json not updated) is tried again.
    assert modules_to_reload(old, old, {}) == ("res_pjsip.so", "pbx_config.so")


def test_reload_module_speaks_ari(fake_ari: FakeAri) -> None:
    reload_module(Ari(url=fake_ari.url, username="u", password="p;w"), "pbx_config.so")
    assert fake_ari.reloaded == ["pbx_config.so"]
    assert fake_ari.authorization == ["Basic dTpwO3c="]


# --- plan and apply -------------------------------------------------------------------


def test_plan_on_a_fresh_directory_adds_everything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = make_config(tmp_path, "http://127.0.0.1:1")
    code, out, _ = astpbx(capsys, "plan", str(config))
    assert code == 2
    for line in ("+ [1001] (endpoint)", "+ [1001-auth] (auth)", "+ [rt-reg] (registration)"):
        assert f"  {line}\n" in out
    assert "  + [astpbx-trunk-pbx2]\n" in out
    assert "  + phone 1002\n  + trunk rt\n  + trunk pbx2\n" in out
    assert "Asterisk modules to reload: res_pjsip.so, pbx_config.so" in out
    assert out.endswith("Plan: 21 to add, 0 to change, 0 to remove.\n")
    assert " ~ " not in out and " - " not in out
    assert not (tmp_path / "asterisk").exists() and not (tmp_path / "data").exists()


def test_apply_writes_then_a_second_apply_changes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fake_ari: FakeAri
) -> None:
    config = make_config(tmp_path, fake_ari.url)
    code, out, _ = astpbx(capsys, "apply", str(config))
    assert code == 0, out
    assert fake_ari.reloaded == ["res_pjsip.so", "pbx_config.so"]
    pjsip = (tmp_path / "asterisk" / PJSIP_FILE).read_text(encoding="utf-8")
    assert pjsip.startswith(f"; Generated by astpbx from {config} at version ")
    assert "password=first-secret-1001\n" in pjsip
    assert "first-secret-1001" not in out  # files hold secrets, the output never
    assert out.endswith("Applied: 21 added, 0 changed, 0 removed.\n")
    record = json.loads((tmp_path / "data" / APPLIED_FILE).read_text(encoding="utf-8"))
    assert record["config"] == str(config)
    assert set(record["items"]["phones"]) == {"1001", "1002"}
    assert len(record["version"]) == 64
    before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file()}

    assert astpbx(capsys, "apply", str(config)) == (0, "No changes.\n", "")
    assert fake_ari.reloaded == ["res_pjsip.so", "pbx_config.so"]  # nothing reloaded again
    assert before == {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file()}
    assert astpbx(capsys, "plan", str(config)) == (0, "No changes.\n", "")


def test_a_comment_in_the_yaml_reloads_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fake_ari: FakeAri
) -> None:
    config = make_config(tmp_path, fake_ari.url)
    assert astpbx(capsys, "apply", str(config))[0] == 0
    fake_ari.reloaded.clear()
    (config / "phones.yaml").write_text(PHONES + "# a comment\n", encoding="utf-8")
    assert astpbx(capsys, "plan", str(config)) == (0, "No changes.\n", "")
    code, out, _ = astpbx(capsys, "apply", str(config))
    assert code == 0
    assert fake_ari.reloaded == []
    assert out.endswith("No changes; recorded version " + _applied_version(tmp_path)[:12] + ".\n")
    header = (tmp_path / "asterisk" / PJSIP_FILE).read_text(encoding="utf-8").split("\n", 1)[0]
    assert header.endswith(f" at version {_applied_version(tmp_path)}.")


def _applied_version(tmp_path: Path) -> str:
    record = json.loads((tmp_path / "data" / APPLIED_FILE).read_text(encoding="utf-8"))
    version: str = record["version"]
    return version


def test_a_changed_password_changes_only_pjsip(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fake_ari: FakeAri
) -> None:
    config = make_config(tmp_path, fake_ari.url)
    assert astpbx(capsys, "apply", str(config))[0] == 0
    fake_ari.reloaded.clear()
    changed = PHONES.replace("first-secret-1001", "new-secret-for-1001")
    (config / "phones.yaml").write_text(changed, encoding="utf-8")
    code, out, _ = astpbx(capsys, "plan", str(config))
    assert code == 2
    assert "  ~ [1001-auth] (auth)\n      ~ password=***\n" in out
    assert "  ~ phone 1001\n" in out
    assert "secret-1001" not in out
    assert "Asterisk modules to reload: res_pjsip.so\n" in out
    assert out.endswith("Plan: 0 to add, 2 to change, 0 to remove.\n")
    assert astpbx(capsys, "apply", str(config))[0] == 0
    assert fake_ari.reloaded == ["res_pjsip.so"]


def test_a_removed_phone_is_shown_removed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fake_ari: FakeAri
) -> None:
    config = make_config(tmp_path, fake_ari.url)
    assert astpbx(capsys, "apply", str(config))[0] == 0
    (config / "phones.yaml").write_text(PHONES.rsplit("  - ", 1)[0], encoding="utf-8")
    code, out, _ = astpbx(capsys, "plan", str(config))
    assert code == 2
    for line in ("- [1002] (endpoint)", "- [1002-auth] (auth)", "- [1002] (aor)", "- phone 1002"):
        assert f"  {line}\n" in out
    assert out.endswith("Plan: 0 to add, 0 to change, 4 to remove.\n")


def test_apply_refuses_an_unset_variable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ASTPBX_TEST_UNSET_SECRET", raising=False)
    unset = 'phones:\n  - {number: "1003", password: "${ASTPBX_TEST_UNSET_SECRET}"}\n'
    config = make_config(tmp_path, "http://127.0.0.1:1", **{"more.yaml": unset})
    code, out, err = astpbx(capsys, "apply", str(config))
    assert (code, out) == (1, "")
    assert "ASTPBX_TEST_UNSET_SECRET is not set" in err
    assert not (tmp_path / "asterisk").exists()
    assert astpbx(capsys, "plan", str(config))[0] == 1


def test_unreachable_asterisk_files_written_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fake_ari: FakeAri
) -> None:
    config = make_config(tmp_path, closed_port_url())
    code, out, err = astpbx(capsys, "apply", str(config))
    assert code == 1
    assert (tmp_path / "asterisk" / PJSIP_FILE).is_file()
    assert (tmp_path / "asterisk" / DIALPLAN_FILE).is_file()
    assert "astpbx: error: files written; reload failed: cannot reach Asterisk at" in err
    assert "not reloaded: res_pjsip.so, pbx_config.so" in err
    assert not (tmp_path / "data" / APPLIED_FILE).exists()
    # Once Asterisk is back, apply reloads although the files are already up to date.
    make_config(tmp_path, fake_ari.url)
    code, out, _ = astpbx(capsys, "apply", str(config))
    assert code == 0
    assert "reloaded res_pjsip.so\nreloaded pbx_config.so\n" in out
    assert fake_ari.reloaded == ["res_pjsip.so", "pbx_config.so"]


def test_a_refused_reload_names_the_module(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fake_ari: FakeAri
) -> None:
    fake_ari.status = 404  # ARI: the module is not loaded
    code, _, err = astpbx(capsys, "apply", str(make_config(tmp_path, fake_ari.url)))
    assert code == 1
    assert (
        "files written; reload failed: res_pjsip.so: Asterisk answered 404 Not Found; "
        "pbx_config.so: Asterisk answered 404 Not Found." in err
    )


# --- the real Asterisk ------------------------------------------------------------------

EXTRA_PHONES = """\
phones:
  - {number: "7101", password: "sandbox-secret;7101", name: Test one}
  - {number: "7102", password: "sandbox-secret-7102"}
"""


@pytest.fixture
def applied_in_sandbox(sandbox: SandboxInfo) -> Iterator[SandboxInfo]:
    """The sandbox config plus two phones, applied; everything restored afterwards."""
    extra = sandbox.config_dir / "zz-apply-test.yaml"
    kept = {
        path: path.read_bytes() if path.exists() else None
        for path in (
            sandbox.asterisk_config_dir / PJSIP_FILE,
            sandbox.asterisk_config_dir / DIALPLAN_FILE,
            sandbox.data_dir / APPLIED_FILE,
        )
    }
    extra.write_text(EXTRA_PHONES, encoding="utf-8")
    try:
        yield sandbox
    finally:
        extra.unlink()
        for path, content in kept.items():
            if content is None:
                path.unlink(missing_ok=True)
            else:
                path.write_bytes(content)
        ari = Ari(url=sandbox.ari_url, username=sandbox.username, password=sandbox.password)
        for module in ("res_pjsip.so", "pbx_config.so"):
            reload_module(ari, module)


@pytest.mark.asterisk
def test_apply_reaches_the_real_asterisk(applied_in_sandbox: SandboxInfo) -> None:
    box = applied_in_sandbox
    result = box.astpbx("apply", str(box.config_dir))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "reloaded res_pjsip.so" in result.stdout
    status, endpoints = box.ari("GET", "endpoints/PJSIP")
    assert status == 200
    assert {"7101", "7102"} <= {e["resource"] for e in endpoints}
    assert "password                 : sandbox-secret;7101" in box.cli("pjsip show auth 7101-auth")
    assert "[ Context 'astpbx-phones' created by 'pbx_config' ]" in box.cli(
        "dialplan show astpbx-phones"
    )
    for number in ("1", "90000", "*2", "+79001234567"):
        shown = box.cli(f"dialplan show {number}@astpbx-phones")
        assert f"Stasis({box.app},internal)" in shown, (number, shown)
    again = box.astpbx("apply", str(box.config_dir))
    assert (again.returncode, again.stdout) == (0, "No changes.\n")
    # A phone taken out of the config is gone from Asterisk after the next apply.
    (box.config_dir / "zz-apply-test.yaml").write_text(EXTRA_PHONES.rsplit("  - ", 1)[0])
    removed = box.astpbx("apply", str(box.config_dir))
    assert "  - [7102] (endpoint)\n" in removed.stdout, removed.stdout + removed.stderr
    assert "reloaded res_pjsip.so\n" in removed.stdout
    assert "pbx_config.so" not in removed.stdout
    # ARI keeps listing a removed PJSIP endpoint (as offline) until Asterisk restarts;
    # PJSIP itself, which takes calls and registrations, no longer has it.
    assert "Unable to find object 7102" in box.cli("pjsip show endpoint 7102")
    assert "Endpoint:  7101/7101 " in box.cli("pjsip show endpoints")


def test_example_applies_into_a_copy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fake_ari: FakeAri
) -> None:
    """examples/mfc with its paths redirected: applies, and applies again as a no-op."""
    copy = tmp_path / "mfc"
    shutil.copytree(EXAMPLE, copy)
    system = (copy / "system.yaml").read_text(encoding="utf-8")
    system = system.replace("http://127.0.0.1:8088", fake_ari.url)
    system = system.replace("config_dir: /etc/asterisk/custom", "config_dir: ../asterisk")
    system = system.replace("data: /var/lib/astpbx ", "data: ../data ")
    (copy / "system.yaml").write_text(system, encoding="utf-8")
    code, out, err = astpbx(capsys, "plan", str(copy))
    assert code == 2
    assert f"audio to convert into {tmp_path / 'data' / 'audio'}:\n  + roxette: " in out
    code, out, err = astpbx(capsys, "apply", str(copy))
    assert code == 0, out + err
    assert "converted audio roxette into" in out
    assert len(list((tmp_path / "data" / "audio").glob("*.wav"))) == 1
    assert (tmp_path / "asterisk" / PJSIP_FILE).is_file()
    assert astpbx(capsys, "apply", str(copy)) == (0, "No changes.\n", "")
    # Another recording under the same file name is a change of the audio item.
    (converted,) = (tmp_path / "data" / "audio").glob("*.wav")
    shutil.copy(converted, copy / "audio" / "roxette.mp3")
    code, out, err = astpbx(capsys, "plan", str(copy))
    assert code == 2
    assert "  ~ audio roxette\n" in out
    assert out.endswith("Plan: 1 to add, 1 to change, 0 to remove.\n")
