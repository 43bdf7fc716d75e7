"""Asterisk in the chroot: start, stop, ask ARI whether it answers."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from base64 import b64encode
from typing import Any

from ast_pbx.sandbox.conffiles import _write_atomically
from ast_pbx.sandbox.settings import (
    ASTERISK,
    MESSAGES_LOG,
    OWNER_RECORD,
    START_TIMEOUT,
    STOP_TIMEOUT,
    Sandbox,
    SandboxError,
    _split_host_port,
    inside,
    tool,
)


def read_pid(path: str) -> int | None:
    try:
        with open(path, encoding="ascii") as handle:
            return int(handle.read().strip())
    except (OSError, ValueError):
        return None


def alive(pid: int | None) -> bool:
    """Whether `pid` is a live Asterisk (or the chroot about to become one). Zombies
    count as dead: in a container nobody may reap the detached process."""
    if pid is None:
        return False
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as handle:
            stat = handle.read()
    except OSError:
        return False
    name, _, rest = stat.partition("(")[2].rpartition(")")
    return name in {"asterisk", "chroot"} and rest.split()[0] not in {"Z", "X"}


def read_owner(root: str) -> dict[str, Any]:
    try:
        with open(inside(root, OWNER_RECORD), encoding="utf-8") as handle:
            owner = json.load(handle)
    except (OSError, ValueError):
        return {}
    return owner if isinstance(owner, dict) else {}


def ari_info(sandbox: Sandbox, timeout: float = 1.0) -> dict[str, Any] | None:
    """GET /ari/asterisk/info with the config's user: the JSON when it answers 200."""
    credentials = b64encode(f"{sandbox.username}:{sandbox.password}".encode()).decode()
    request = urllib.request.Request(
        sandbox.info_url, headers={"Authorization": f"Basic {credentials}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            if response.status != 200:
                return None
            info = json.loads(response.read())
    except (OSError, ValueError):  # URLError, HTTPError, refused, timeout, bad JSON
        return None
    return info if isinstance(info, dict) else None


def version_of(info: dict[str, Any] | None) -> str | None:
    system = (info or {}).get("system")
    return str(system.get("version")) if isinstance(system, dict) else None


def start_asterisk(sandbox: Sandbox) -> int:
    """Start `asterisk -f -n` under chroot, detached: it outlives this command."""
    with open(sandbox.log_file, "w", encoding="utf-8") as log:
        process = subprocess.Popen(
            [tool("chroot"), sandbox.root, ASTERISK, "-f", "-n"],  # not -U root: astdb fails
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # no SIGINT/SIGHUP from this terminal
            close_fds=True,
        )
    _write_atomically(sandbox.pid_file, f"{process.pid}\n")
    owner = {
        "pid": process.pid,
        "config": sandbox.config_path,
        "data_dir": sandbox.data_dir,
        "config_dir": sandbox.config_dir,
        "ari_url": sandbox.ari_url,
        "started": time.time(),
    }
    _write_atomically(sandbox.inside(OWNER_RECORD), json.dumps(owner) + "\n")
    return process.pid


def wait_for_ari(sandbox: Sandbox, pid: int, timeout: float = START_TIMEOUT) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = ari_info(sandbox)
        if info is not None:
            return info
        if not alive(pid):
            raise SandboxError(f"Asterisk exited during start\n{log_tails(sandbox)}")
        time.sleep(0.2)
    raise SandboxError(
        f"ARI did not answer {sandbox.info_url} within {timeout:.0f} s\n{log_tails(sandbox)}"
    )


def stop_asterisk(sandbox: Sandbox, pid: int | None) -> None:
    """`core stop now` through the control socket, then SIGTERM, then SIGKILL."""
    if pid is None or not alive(pid):
        return
    with contextlib.suppress(subprocess.TimeoutExpired):
        subprocess.run(
            asterisk_command(sandbox, "core stop now"),
            capture_output=True,
            timeout=STOP_TIMEOUT,
            check=False,
        )
    for sig, wait in ((None, STOP_TIMEOUT), (signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        if sig is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if not alive(pid):
            return
    raise SandboxError(f"Asterisk (pid {pid}) does not stop")


def asterisk_command(sandbox: Sandbox, command: str) -> list[str]:
    """argv of `asterisk -rx COMMAND` against the running sandbox."""
    return [tool("chroot"), sandbox.root, ASTERISK, "-rx", command]


def log_tails(sandbox: Sandbox, lines: int = 25) -> str:
    parts = []
    for path in (sandbox.log_file, sandbox.inside(MESSAGES_LOG)):
        if os.path.exists(path):
            parts.append(f"--- the end of {path}:\n{_tail(path, lines)}")
    return "\n".join(parts)


def _tail(path: str, lines: int = 25) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return "".join(handle.readlines()[-lines:]).rstrip()
    except OSError:
        return ""


def _check_ports_free(sandbox: Sandbox) -> None:
    """Refuse early when something else holds the ports: otherwise Asterisk starts
    without ARI or SIP and the wait ends in a timeout that names neither."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        if probe.connect_ex(("127.0.0.1", sandbox.ari_port)) == 0:
            raise SandboxError(
                f"127.0.0.1:{sandbox.ari_port} (system.ari.url) is in use by another program"
            )
    host, port = _split_host_port(sandbox.sip, "system.asterisk.sip")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise SandboxError(
                f"{sandbox.sip} (system.asterisk.sip): {exc.strerror or exc}"
            ) from exc
