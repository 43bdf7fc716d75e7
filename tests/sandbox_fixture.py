"""The `sandbox` fixture: one real Asterisk 22 (`astpbx sandbox`) for the whole test session.

Integration tests take it as a parameter and get a `SandboxInfo`: where its config,
data and generated-config directories are, how to reach ARI, plus small helpers
(`ari()`, `cli()`, `astpbx()`). It needs root; without root every test using it is
skipped. The first session on a machine builds the root file system (~1 minute,
~550 MB, cached in $ASTPBX_SANDBOX_ROOT or /var/cache/astpbx/sandbox-root); later
sessions start Asterisk in about a second.

Everything in the session shares this one Asterisk and its directories: a test that
writes into `asterisk_config_dir` (as `astpbx apply` does) should leave it as it
found it.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.parse
import urllib.request
from base64 import b64encode
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ast_pbx import sandbox as box

UP_TIMEOUT = 900  # seconds: the first `up` runs debootstrap


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port nothing listens on now (TCP or UDP) on 127.0.0.1."""
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass(frozen=True)
class SandboxInfo:
    config_dir: Path  # the astpbx config the sandbox was started from
    ari_url: str
    username: str
    password: str
    app: str
    sip: str  # HOST:PORT of the PJSIP UDP transport
    data_dir: Path  # system.paths.data: the same path inside Asterisk
    asterisk_config_dir: Path  # system.asterisk.config_dir: /etc/asterisk/custom inside
    root: str  # the chroot; host path of a file inside: root + path

    def astpbx(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run `astpbx ARGS` (e.g. "sandbox", "status", str(self.config_dir))."""
        return subprocess.run(
            [sys.executable, "-m", "ast_pbx", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def cli(self, command: str) -> str:
        """The output of `asterisk -rx COMMAND` in the sandbox."""
        result = subprocess.run(
            [box.tool("chroot"), self.root, box.ASTERISK, "-rx", command],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        return result.stdout

    def ari(self, method: str, path: str, **params: str) -> tuple[int, Any]:
        """(status, decoded JSON or None) of an ARI request, e.g. ari("GET", "channels")."""
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        credentials = b64encode(f"{self.username}:{self.password}".encode()).decode()
        request = urllib.request.Request(
            f"{self.ari_url}/ari/{path.lstrip('/')}{query}",
            method=method,
            headers={"Authorization": f"Basic {credentials}"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                status, body = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, body = error.code, error.read()
        try:
            return status, json.loads(body) if body else None
        except ValueError:
            return status, None

    def system_yaml(self, base: Path, asterisk: str = "") -> str:
        """A `system:` section for a test config on this sandbox, its database in
        `base`; `asterisk` adds keys to `system.asterisk` (`presence: always`)."""
        more = f", {asterisk}" if asterisk else ""
        return textwrap.dedent(f"""\
            system:
              timezone: Europe/Moscow
              ari: {{url: "{self.ari_url}", username: "{self.username}",
                    password: "{self.password}", app: "{self.app}"}}
              asterisk: {{config_dir: "{self.asterisk_config_dir}", sip: "{self.sip}"{more}}}
              paths: {{data: "{self.data_dir}"}}
              database: "sqlite:///{base}/calls.db"
              tts: {{engine: espeak, voice: ru}}
              http: {{listen: "127.0.0.1:{free_port()}"}}
            """)

    @contextlib.contextmanager
    def applied(self, config: Path, dialplan: str | None = None) -> Iterator[None]:
        """`astpbx apply CONFIG`, with `dialplan` (test phones) in extensions_local.conf;
        the generated files are removed and Asterisk reloaded afterwards."""
        if dialplan is not None:
            (self.asterisk_config_dir / "extensions_local.conf").write_text(dialplan, "utf-8")
        result = self.astpbx("apply", str(config))
        try:
            assert result.returncode == 0, result.stdout + result.stderr
            yield
        finally:
            for name in ("extensions_local.conf", "extensions_astpbx.conf", "pjsip_astpbx.conf"):
                (self.asterisk_config_dir / name).unlink(missing_ok=True)
            self.ari("PUT", "asterisk/modules/pbx_config.so")
            self.ari("PUT", "asterisk/modules/res_pjsip.so")


def _write_config(base: Path) -> SandboxInfo:
    config = base / "config"
    config.mkdir()
    ari_url = f"http://127.0.0.1:{free_port()}"
    sip = f"127.0.0.1:{free_port(socket.SOCK_DGRAM)}"
    (config / "system.yaml").write_text(
        textwrap.dedent(f"""\
            system:
              ari: {{url: "{ari_url}", username: astpbx-test, password: "test-ari-secret",
                    app: astpbx-test}}
              asterisk: {{config_dir: ../asterisk, sip: "{sip}"}}
              paths: {{data: ../data}}
            """),
        encoding="utf-8",
    )
    return SandboxInfo(
        config_dir=config,
        ari_url=ari_url,
        username="astpbx-test",
        password="test-ari-secret",
        app="astpbx-test",
        sip=sip,
        data_dir=base / "data",
        asterisk_config_dir=base / "asterisk",
        root=box.root_path(),
    )


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxInfo]:
    """A running Asterisk sandbox for the session: `astpbx sandbox up` once, `down` at the end."""
    # Skipping is for a developer's machine; CI sets ASTPBX_REQUIRE_SANDBOX so that live
    # tests that cannot run fail it instead of passing it unseen.
    give_up = pytest.fail if os.environ.get("ASTPBX_REQUIRE_SANDBOX") else pytest.skip
    if os.geteuid() != 0:
        give_up("the Asterisk sandbox needs root (debootstrap, chroot, mount)")
    info = _write_config(tmp_path_factory.mktemp("sandbox"))
    owner = box.read_owner(info.root)
    for _ in range(50):  # a just-stopped Asterisk lingers a moment as a zombie
        if not box.alive(owner.get("pid")):
            break
        time.sleep(0.1)
    else:
        give_up(
            f"the sandbox root {info.root} runs Asterisk for another config "
            f"({owner.get('config') or owner.get('data_dir')}): `astpbx sandbox down` it, "
            f"or set {box.ROOT_ENV} to another root"
        )
    started = info.astpbx("sandbox", "up", str(info.config_dir), timeout=UP_TIMEOUT)
    if started.returncode != 0:
        info.astpbx("sandbox", "down", str(info.config_dir))
        pytest.fail(f"astpbx sandbox up failed:\n{started.stdout}{started.stderr}")
    try:
        yield info
    finally:
        stopped = info.astpbx("sandbox", "down", str(info.config_dir))
        assert stopped.returncode == 0, stopped.stderr
