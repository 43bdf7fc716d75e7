"""`astpbx sandbox`: a real Asterisk 22 under chroot (tests marked `asterisk`, root only),
plus what can be checked without one: settings, base files, path resolution."""

from __future__ import annotations

import os
import subprocess
import textwrap
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from ast_pbx import sandbox as box
from ast_pbx.cli import main
from ast_pbx.config.system import Ari, System
from ast_pbx.errors import UsageError
from tests.sandbox_fixture import SandboxInfo

SELFTEST = "astpbx-sandbox-selftest"


def _system(**ari: str) -> System:
    settings = {"url": "http://127.0.0.1:18088", "password": "secret;with-semicolon", **ari}
    return System(ari=Ari(**settings), asterisk_sip="127.0.0.1:15060")  # type: ignore[arg-type]


def _pid(info: SandboxInfo) -> int | None:
    return box.read_pid(str(info.data_dir / "sandbox" / "asterisk.pid"))


# ------------------------------------------------------------------------ without Asterisk


def test_base_files_follow_the_config(tmp_path: Path) -> None:
    files = box.base_files(box.sandbox_for(_system(), root=str(tmp_path)))
    assert "bindaddr=127.0.0.1\nbindport=18088\n" in files["http.conf"]
    ari = files["ari.conf"]
    assert "[astpbx]\ntype=user\nread_only=no\npassword=secret\\;with-semicolon\n" in ari
    assert "bind=127.0.0.1:15060\n" in files["pjsip.conf"]
    assert files["pjsip.conf"].endswith("#tryinclude custom/pjsip_astpbx.conf\n")
    assert "#tryinclude custom/extensions_astpbx.conf\n" in files["extensions.conf"]
    assert files["extensions.conf"].endswith("#tryinclude custom/extensions_local.conf\n")
    assert "noload => res_hep.so\n" in files["modules.conf"]


@pytest.mark.parametrize(
    ("ari", "message"),
    [
        ({"password": ""}, "password is empty"),
        ({"password": "${ARI_PASSWORD}"}, "not set"),
        ({"url": "https://127.0.0.1:8089"}, "http://127.0.0.1:PORT only"),
        ({"url": "http://10.0.0.1:8088"}, "http://127.0.0.1:PORT only"),
    ],
)
def test_settings_the_sandbox_cannot_serve(ari: dict[str, str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        box.sandbox_for(_system(**ari))


def test_paths_inside_follow_the_roots_own_symlinks(tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    (tmp_path / "var").mkdir()
    (tmp_path / "var" / "run").symlink_to("/run")  # as in a Debian root
    assert box.inside(str(tmp_path), "/var/run/asterisk") == str(tmp_path / "run" / "asterisk")
    assert box.inside(str(tmp_path), "/work/data") == str(tmp_path / "work" / "data")


def test_not_root_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "system.yaml").write_text(
        textwrap.dedent("""\
            system:
              ari: {url: "http://127.0.0.1:18088", password: "long-enough-secret"}
              paths: {data: data}
            """),
        encoding="utf-8",
    )
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(SystemExit) as exited:
        main(["sandbox", "up", str(tmp_path)])
    assert exited.value.code == 2
    assert "astpbx sandbox needs root (debootstrap, chroot, mount)" in capsys.readouterr().err


# --------------------------------------------------------------------------- with Asterisk


@pytest.mark.asterisk
def test_up_answers_ari(sandbox: SandboxInfo) -> None:
    status, info = sandbox.ari("GET", "asterisk/info")
    assert status == 200
    assert info["system"]["version"].startswith("22")


@pytest.mark.asterisk
def test_up_again_is_idempotent_and_fast(sandbox: SandboxInfo) -> None:
    before = _pid(sandbox)
    started = time.monotonic()
    again = sandbox.astpbx("sandbox", "up", str(sandbox.config_dir))
    assert again.returncode == 0, again.stderr
    assert time.monotonic() - started < 10
    assert "already running" in again.stdout
    assert _pid(sandbox) == before


@pytest.mark.asterisk
def test_status_of_a_running_sandbox(sandbox: SandboxInfo) -> None:
    result = sandbox.astpbx("sandbox", "status", str(sandbox.config_dir))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "running" in result.stdout
    assert "ARI answering" in result.stdout


@pytest.mark.asterisk
def test_cli_runs_asterisk_commands(sandbox: SandboxInfo) -> None:
    result = sandbox.astpbx(
        "sandbox", "cli", "--config", str(sandbox.config_dir), "core show version"
    )
    assert result.returncode == 0, result.stderr
    assert "Asterisk 22" in result.stdout


@pytest.mark.asterisk
def test_data_dir_is_the_same_path_inside(sandbox: SandboxInfo) -> None:
    probe = sandbox.data_dir / "tts-cache" / "sandbox-probe.txt"
    probe.write_text("visible inside\n", encoding="utf-8")
    try:
        assert os.path.exists(sandbox.root + str(probe))
        # What the Asterisk process itself sees at that path:
        assert Path(f"/proc/{_pid(sandbox)}/root{probe}").read_text() == "visible inside\n"
        shown = subprocess.run(
            ["chroot", sandbox.root, "cat", str(probe)], capture_output=True, text=True, check=True
        )
        assert shown.stdout == "visible inside\n"
    finally:
        probe.unlink()


@pytest.mark.asterisk
def test_local_channel_originates(sandbox: SandboxInfo) -> None:
    status, _ = sandbox.ari(
        "POST",
        "channels",
        endpoint="Local/1@default",
        extension="1",
        context="default",
        priority="1",
    )
    assert status == 200
    status, channels = sandbox.ari("GET", "channels")
    assert status == 200
    assert isinstance(channels, list)


@pytest.mark.asterisk
def test_generated_dialplan_is_included(sandbox: SandboxInfo) -> None:
    """What `astpbx apply` writes into the config dir reaches Asterisk's dialplan."""
    generated = sandbox.asterisk_config_dir / "extensions_astpbx.conf"
    before = generated.read_text(encoding="utf-8") if generated.exists() else None
    generated.write_text(
        f"[{SELFTEST}]\nexten => 1,1,Answer()\n same => n,Wait(5)\n same => n,Hangup()\n",
        encoding="utf-8",
    )
    try:
        sandbox.cli("dialplan reload")
        assert "Wait(5)" in sandbox.cli(f"dialplan show {SELFTEST}")
        status, channel = sandbox.ari(
            "POST",
            "channels",
            endpoint=f"Local/1@{SELFTEST}",
            extension="1",
            context=SELFTEST,
            priority="1",
        )
        assert status == 200
        status, channels = sandbox.ari("GET", "channels")
        assert channel["id"] in {c["id"] for c in channels}
        sandbox.ari("DELETE", f"channels/{channel['id']}")
    finally:
        if before is None:
            generated.unlink()
        else:
            generated.write_text(before, encoding="utf-8")
        sandbox.cli("dialplan reload")


@pytest.mark.asterisk
def test_down_stops_and_unmounts(sandbox: SandboxInfo) -> None:
    """Last: it stops the session's sandbox, checks, and starts it again for later tests."""
    down = sandbox.astpbx("sandbox", "down", str(sandbox.config_dir))
    assert down.returncode == 0, down.stderr
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"{sandbox.ari_url}/ari/asterisk/info", timeout=2)
    assert box.mounts_under(sandbox.root) == ()
    assert str(sandbox.data_dir) not in Path("/proc/mounts").read_text()
    status = sandbox.astpbx("sandbox", "status", str(sandbox.config_dir))
    assert status.returncode == 1
    assert "not running" in status.stdout
    again = sandbox.astpbx("sandbox", "down", str(sandbox.config_dir))
    assert again.returncode == 0  # idempotent
    up = sandbox.astpbx("sandbox", "up", str(sandbox.config_dir))
    assert up.returncode == 0, up.stdout + up.stderr
    assert sandbox.ari("GET", "asterisk/info")[0] == 200
