"""A throwaway Asterisk 22 for demos, tests and newcomers (`astpbx sandbox`).

Debian 12 has no asterisk package, so the sandbox is a Debian sid root file system made
with debootstrap once and cached (default /var/cache/astpbx/sandbox-root, or
$ASTPBX_SANDBOX_ROOT), in which /usr/sbin/asterisk runs under chroot. The chroot shares
the host's network: ARI/HTTP and the PJSIP transport bind where the config says
(system.ari.url, system.asterisk.sip), on 127.0.0.1.

Directories shared with the engine are bind-mounted into the root:

- system.paths.data (and audio/, tts-cache/, recordings/, tmp/ when they are set outside
  it) at the same absolute path, so that a file name the engine hands to Asterisk
  (`sound:/…/tts-cache/ab12`) names the same file inside;
- system.asterisk.config_dir at /etc/asterisk/custom, where `astpbx apply` writes
  pjsip_astpbx.conf and extensions_astpbx.conf, which the base files `#tryinclude`.

One root runs one Asterisk at a time (its control socket, astdb and /etc/asterisk are
shared), so the root holds a record of the data directory it runs for; the pid file and
Asterisk's stdout are in <data>/sandbox/.

This module is the shell around debootstrap, mount, chroot and asterisk: standard
library only, no typer (the command line is ast_pbx/cli/sandbox.py).
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import wave
from base64 import b64encode
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ast_pbx.asterisk_files import conf_value
from ast_pbx.config.system import System
from ast_pbx.errors import EXIT_PROBLEMS, AstPbxError, UsageError
from ast_pbx.files import write_atomically

ROOT_ENV = "ASTPBX_SANDBOX_ROOT"
DEFAULT_ROOT = "/var/cache/astpbx/sandbox-root"
SUITE = "sid"  # Debian 12 has no asterisk; sid has Asterisk 22
MIRROR = "http://deb.debian.org/debian"
PACKAGES = ("asterisk", "asterisk-modules", "asterisk-core-sounds-en-wav")
ASTERISK = "/usr/sbin/asterisk"

DATA_KINDS = ("audio", "tts-cache", "recordings", "tmp")
CUSTOM_DIR = "/etc/asterisk/custom"  # inside the root; `apply` writes there
RECORDING_DIR = "/var/spool/asterisk/recording"  # ARI recordings answer 500 without it
RUN_DIR = "/var/run/asterisk"
OWNER_RECORD = "/var/lib/astpbx-sandbox.json"  # inside the root: who runs Asterisk there
MESSAGES_LOG = "/var/log/asterisk/messages"
MOH_DIR = "/var/lib/asterisk/moh"
SILENCE = "astpbx-silence.wav"  # in MOH_DIR: the default music-on-hold class plays it

# Root's PATH may lack the sbin directories (Debian's `su` without `-`): look there too.
SYSTEM_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"

START_TIMEOUT = 30.0  # seconds for ARI to answer after start
STOP_TIMEOUT = 10.0  # seconds for `core stop now` before signals

NEEDS_ROOT = "astpbx sandbox needs root (debootstrap, chroot, mount)"

# Modules `autoload=yes` would load that fail, hang or do harm in a throwaway chroot.
# Checked against the messages log of Asterisk 22.10 in the sid root on Debian 12.
NOLOAD = (
    "chan_sip.so",  # gone in Asterisk 21+; listed in case an old root still has it
    # Need a server that is not there; pgsql ones retry and log errors at start.
    "cdr_pgsql.so",
    "cel_pgsql.so",
    "res_config_pgsql.so",
    "cdr_tds.so",
    "cel_tds.so",
    "cdr_radius.so",
    "cel_radius.so",
    "res_config_ldap.so",
    "res_snmp.so",
    # Homer capture: nothing to send to.
    "res_hep.so",
    "res_hep_pjsip.so",
    "res_hep_rtcp.so",
    # Other listeners on 0.0.0.0 (IAX2 4569, DUNDi 4520, Unistim 5000, AudioSocket):
    # a sandbox listens only where the config says.
    "chan_iax2.so",
    "pbx_dundi.so",
    "chan_unistim.so",
    "chan_audiosocket.so",
    "res_audiosocket.so",
    "app_audiosocket.so",  # fails without res_audiosocket: undefined symbol
    "chan_motif.so",
    "res_xmpp.so",
    "res_phoneprov.so",
    "res_pjsip_phoneprov_provider.so",
    # Audio devices and the like a chroot has not.
    "chan_console.so",
    "app_jack.so",
    # Decline to load in the chroot: no /etc/hosts in a minbase root; the Debian sample
    # configs of the custom CDR/CEL back ends do not parse; the ODBC voicemail clashes
    # with app_voicemail, which is loaded too.
    "res_resolver_unbound.so",
    "cdr_custom.so",
    "cel_custom.so",
    "cdr_sqlite3_custom.so",
    "cel_sqlite3_custom.so",
    "app_voicemail_odbc.so",
    "app_voicemail_imap.so",
    # They read Debian's demo extensions.ael / extensions.lua, whose contexts (demo,
    # ael-…, default…) would sit next to the dialplan of `astpbx apply`.
    "pbx_ael.so",
    "pbx_lua.so",
)


class SandboxError(AstPbxError):
    """The sandbox could not be built, started or stopped (exit 1)."""

    exit_code = EXIT_PROBLEMS


Echo = Callable[[str], None]


def _quiet(_: str) -> None:
    """The default `echo`: progress messages go nowhere."""


@dataclass(frozen=True)
class Sandbox:
    """Everything the sandbox of one config needs, resolved to absolute paths."""

    root: str  # the cached root file system (real path)
    ari_url: str
    ari_port: int
    username: str
    password: str
    app: str
    sip: str  # HOST:PORT of the PJSIP UDP transport
    data_dir: str
    config_dir: str
    shared_dirs: tuple[str, ...]  # bind-mounted at the same path, data_dir first
    config_path: str = ""  # the astpbx config it was made from, for messages

    @property
    def state_dir(self) -> str:
        return os.path.join(self.data_dir, "sandbox")

    @property
    def pid_file(self) -> str:
        return os.path.join(self.state_dir, "asterisk.pid")

    @property
    def log_file(self) -> str:
        return os.path.join(self.state_dir, "asterisk.log")

    @property
    def info_url(self) -> str:
        return self.ari_url.rstrip("/") + "/ari/asterisk/info"

    def inside(self, path: str) -> str:
        """The host path of `path` as seen inside the root."""
        return inside(self.root, path)


@dataclass(frozen=True)
class Status:
    running: bool
    pid: int | None
    ari_answers: bool
    version: str | None
    built: bool
    mounts: tuple[str, ...]  # mount points under the root
    owner_data_dir: str | None  # the data dir the root runs Asterisk for, if any


@dataclass(frozen=True)
class Started:
    already_running: bool
    pid: int
    version: str
    seconds: float
    built_seconds: float | None  # how long debootstrap took, when it ran
    files: tuple[str, ...]  # base files written (host paths)
    stale_files: tuple[str, ...]  # when already running: base files that would change


# ---------------------------------------------------------------------------- settings


def root_path() -> str:
    """The cached root: $ASTPBX_SANDBOX_ROOT or the default, as /proc/mounts spells it."""
    return os.path.realpath(os.environ.get(ROOT_ENV) or DEFAULT_ROOT)


def sandbox_for(system: System, root: str | None = None, config_path: str = "") -> Sandbox:
    """The sandbox of a config's `system` section; UsageError for what it cannot serve."""
    url = urllib.parse.urlsplit(system.ari.url)
    try:
        port = url.port or 80
    except ValueError as exc:
        raise UsageError(f"system.ari.url {system.ari.url!r}: {exc}") from exc
    if url.scheme != "http" or url.hostname not in {"127.0.0.1", "localhost"}:
        # The sandbox serves plain HTTP on 127.0.0.1 only: anything else would never answer.
        raise UsageError(
            f"system.ari.url {system.ari.url!r}: the sandbox serves http://127.0.0.1:PORT only"
        )
    if not re.fullmatch(r"[A-Za-z0-9_.@-]+", system.ari.username):
        raise UsageError(f"system.ari.username {system.ari.username!r}: use letters and digits")
    _check_password(system.ari.password)
    _split_host_port(system.asterisk_sip, "system.asterisk.sip")
    data_dir = os.path.abspath(system.paths.data)
    shared = [data_dir]
    for kind in DATA_KINDS:
        path = os.path.abspath(system.paths.dir(kind))
        if not any(_is_under(path, done) for done in shared):
            shared.append(path)
    root = os.path.realpath(root) if root else root_path()
    if root == "/":
        raise UsageError(f"{ROOT_ENV}=/: the sandbox root must be a directory of its own")
    return Sandbox(
        root=root,
        ari_url=system.ari.url,
        ari_port=port,
        username=system.ari.username,
        password=system.ari.password,
        app=system.ari.app,
        sip=system.asterisk_sip,
        data_dir=data_dir,
        config_dir=os.path.abspath(system.asterisk_config_dir),
        shared_dirs=tuple(shared),
        config_path=os.path.abspath(config_path) if config_path else "",
    )


def _check_password(password: str) -> None:
    if not password:
        raise UsageError(
            "system.ari.password is empty: the sandbox's ARI needs one "
            '(e.g. password: "${ARI_PASSWORD:-sandbox-ari-secret}")'
        )
    if re.search(r"\$\{[A-Za-z_][A-Za-z0-9_]*\}", password):
        raise UsageError(f"system.ari.password {password!r}: the variable is not set")
    if password != password.strip() or any(ord(c) < 32 for c in password):
        # Asterisk strips the blanks around values and knows no escape for line ends.
        raise UsageError("system.ari.password: no blanks around it, no control characters")


def _split_host_port(text: str, what: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"{what} {text!r} is not HOST:PORT")
    return host.strip("[]"), int(port)


def _is_under(path: str, directory: str) -> bool:
    return path == directory or path.startswith(directory.rstrip("/") + "/")


def tool(name: str) -> str:
    """The full path of a system program (chroot, mount, debootstrap…)."""
    found = shutil.which(name, path=f"{os.environ.get('PATH', '')}:{SYSTEM_PATH}")
    if found is None:
        raise SandboxError(f"{name} is not installed (looked in $PATH and {SYSTEM_PATH})")
    return found


def require_root() -> None:
    if os.geteuid() != 0:
        raise UsageError(NEEDS_ROOT)


def inside(root: str, path: str) -> str:
    """The host path that `path` names inside `root`, following the root's symlinks as
    chroot would: the sid root has /var/run -> /run, and a plain join would follow that
    absolute link out of the root into the host's /run."""
    resolved = root
    pending = [p for p in path.split("/") if p]
    hops = 0
    while pending:
        part = pending.pop(0)
        if part == ".":
            continue
        if part == "..":
            resolved = os.path.dirname(resolved) if resolved != root else root
            continue
        candidate = os.path.join(resolved, part)
        if os.path.islink(candidate):
            hops += 1
            if hops > 40:
                raise SandboxError(f"too many symlinks below {root} resolving {path}")
            target = os.readlink(candidate)
            pending = [p for p in target.split("/") if p] + pending
            if target.startswith("/"):
                resolved = root
            continue
        resolved = candidate
    return resolved


# ------------------------------------------------------------------------- root file system


def is_built(root: str) -> bool:
    """A root is only ever renamed into place complete, so Asterisk in it means built."""
    return os.path.isfile(os.path.join(root, ASTERISK.lstrip("/")))


def build_root(root: str, echo: Echo = _quiet) -> float:
    """debootstrap a sid root with Asterisk into a sibling directory, then rename it to
    `root`: an interrupted build never looks like a cache. Returns the seconds taken."""
    if os.path.lexists(root):
        raise SandboxError(
            f"{root} exists but holds no {ASTERISK}: not a finished sandbox root; "
            f"remove it (after `umount -R {root}` if anything is mounted there)"
        )
    _ensure_debootstrap(echo)
    parent = os.path.dirname(root)
    os.makedirs(parent, exist_ok=True)
    for leftover in glob.glob(glob.escape(root) + ".partial-*"):
        if os.path.isdir(leftover):
            echo(f"removing the unfinished build {leftover}")
            _remove_tree(leftover)
    partial = f"{root}.partial-{os.getpid()}"
    log = f"{root}.debootstrap.log"
    command = [
        tool("debootstrap"),
        "--variant=minbase",
        "--include=" + ",".join(PACKAGES),
        SUITE,
        partial,
        MIRROR,
    ]
    echo(f"building the sandbox root (Debian {SUITE} + Asterisk, ~1 minute, ~550 MB): {root}")
    echo(f"  {' '.join(command)}  > {log}")
    started = time.monotonic()
    with open(log, "w", encoding="utf-8") as output:
        result = subprocess.run(
            command, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT, check=False
        )
    if result.returncode != 0 or not is_built(partial):
        _remove_tree(partial)
        raise SandboxError(
            f"debootstrap failed (exit {result.returncode}); the end of {log}:\n{_tail(log)}"
        )
    os.rename(partial, root)
    return time.monotonic() - started


def _ensure_debootstrap(echo: Echo) -> None:
    if shutil.which("debootstrap", path=SYSTEM_PATH):
        return
    echo("installing debootstrap (apt-get)")
    environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (
        ["install", "-y", "-qq", "debootstrap"],
        ["update", "-qq"],  # the package lists may be missing or old: retry
        ["install", "-y", "-qq", "debootstrap"],
    ):
        subprocess.run(
            [tool("apt-get"), *command], env=environment, stdin=subprocess.DEVNULL, check=False
        )
        if shutil.which("debootstrap", path=SYSTEM_PATH):
            return
    raise SandboxError("debootstrap is missing and apt-get could not install it")


def _remove_tree(path: str) -> None:
    """Remove an unfinished root. debootstrap mounts proc, sys and devices into it:
    unmount whatever is left first, and never cross into another file system."""
    unmount_under(path)
    subprocess.run([tool("rm"), "-rf", "--one-file-system", path], check=False)


# ------------------------------------------------------------------------- Asterisk's files


def base_files(sandbox: Sandbox) -> dict[str, str]:
    """The files `up` writes into <root>/etc/asterisk/, by name; the rest stay as the
    Debian package ships them."""
    head = "; Written by `astpbx sandbox up` on every start: edits here are lost.\n"
    sip_host, sip_port = _split_host_port(sandbox.sip, "system.asterisk.sip")
    # Asterisk reads `;` as a comment start; `\;` is a literal one (nothing else is escaped).
    password = conf_value(sandbox.password)
    noload = sorted(
        set(NOLOAD)
        | {  # whatever this package version ships of the PostgreSQL and HEP modules
            os.path.basename(path)
            for pattern in ("*_pgsql.so", "res_hep*.so")
            for path in glob.glob(os.path.join(_module_dir(sandbox.root), pattern))
        }
    )
    return {
        "http.conf": head
        + f"[general]\nenabled=yes\nbindaddr=127.0.0.1\nbindport={sandbox.ari_port}\n",
        "ari.conf": head
        + "[general]\nenabled=yes\n\n"
        + f"[{sandbox.username}]\ntype=user\nread_only=no\npassword={password}\n",
        "modules.conf": head
        + "[modules]\nautoload=yes\n"
        + "".join(f"noload => {name}\n" for name in noload),
        "pjsip.conf": head
        + "[transport-udp]\ntype=transport\nprotocol=udp\n"
        + f"bind={_bracketed(sip_host)}:{sip_port}\n\n"
        + "; endpoints, aors, auths of phones and trunks: `astpbx apply`\n"
        + "#tryinclude custom/pjsip_astpbx.conf\n",
        "extensions.conf": head
        + "[general]\nstatic=yes\nwriteprotect=no\nclearglobalvars=no\n\n[globals]\n\n"
        + "; the dialplan that hands calls to the Stasis app: `astpbx apply`\n"
        + "#tryinclude custom/extensions_astpbx.conf\n"
        + "; your own contexts beside it (test phones, a lab's extras): never written by astpbx\n"
        + "#tryinclude custom/extensions_local.conf\n",
        "logger.conf": head
        + "[general]\n\n[logfiles]\n"
        + "console => notice,warning,error\n"
        + "messages => notice,warning,error\n",
        # The package's [default] class reads /usr/share/asterisk/moh, which does not
        # exist in Debian's layout, and no music is installed: without a file Asterisk
        # disables music on hold altogether. `up` puts a second of silence there.
        "musiconhold.conf": head + f"[general]\n\n[default]\nmode=files\ndirectory={MOH_DIR}\n",
        # AMI is not used (astpbx speaks ARI); the package's 127.0.0.1:5038 would clash
        # with any other Asterisk on the machine.
        "manager.conf": head + "[general]\nenabled=no\n",
    }


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _module_dir(root: str) -> str:
    found = glob.glob(os.path.join(root, "usr/lib/*/asterisk/modules"))
    return found[0] if found else os.path.join(root, "usr/lib/asterisk/modules")


def write_base_files(sandbox: Sandbox) -> tuple[str, ...]:
    """Write the base files and the silence of music on hold; their host paths."""
    written = []
    for name, text in base_files(sandbox).items():
        path = os.path.join(sandbox.inside("/etc/asterisk"), name)
        _write_atomically(path, text)
        written.append(path)
    silence = os.path.join(sandbox.inside(MOH_DIR), SILENCE)
    if not os.path.exists(silence):
        os.makedirs(os.path.dirname(silence), exist_ok=True)
        with wave.open(silence, "wb") as sound:  # 1 s, 8 kHz 16-bit mono: Asterisk's slin
            sound.setnchannels(1)
            sound.setsampwidth(2)
            sound.setframerate(8000)
            sound.writeframes(bytes(16000))
        written.append(silence)
    return tuple(written)


def stale_base_files(sandbox: Sandbox) -> tuple[str, ...]:
    """Base files that differ from what `up` would write now (the config changed)."""
    stale = []
    for name, text in base_files(sandbox).items():
        path = os.path.join(sandbox.inside("/etc/asterisk"), name)
        try:
            with open(path, encoding="utf-8") as handle:
                if handle.read() == text:
                    continue
        except OSError:
            pass
        stale.append(path)
    return tuple(stale)


def _write_atomically(path: str, text: str) -> None:
    write_atomically(path, text, mode=0o640)  # ari.conf holds a password


def prepare_dirs(sandbox: Sandbox) -> None:
    """Create the directories the host and the root share or Asterisk needs."""
    for directory in sandbox.shared_dirs:
        os.makedirs(directory, exist_ok=True)
        os.makedirs(sandbox.inside(directory), exist_ok=True)
    for kind in DATA_KINDS:
        os.makedirs(os.path.join(sandbox.data_dir, kind), exist_ok=True)
    os.makedirs(sandbox.state_dir, exist_ok=True)
    os.makedirs(sandbox.config_dir, exist_ok=True)
    for directory in (CUSTOM_DIR, RECORDING_DIR, RUN_DIR):
        os.makedirs(sandbox.inside(directory), exist_ok=True)


# ---------------------------------------------------------------------------------- mounts


def mount_points() -> list[str]:
    """Every mount point of this host, as /proc/mounts spells it (octal escapes undone)."""
    with open("/proc/mounts", encoding="utf-8") as handle:
        fields = [line.split() for line in handle]
    return [
        re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), f[1])
        for f in fields
        if len(f) > 1
    ]


def mounts_under(root: str) -> tuple[str, ...]:
    return tuple(m for m in mount_points() if _is_under(m, root))


def mount_all(sandbox: Sandbox) -> None:
    """proc, the shared directories at the same paths and the config dir at
    /etc/asterisk/custom; what is mounted already (a second `up`) is left alone."""
    present = set(mount_points())
    proc = sandbox.inside("/proc")
    if proc not in present:
        _run([tool("mount"), "-t", "proc", "proc", proc])
    pairs = [(d, sandbox.inside(d)) for d in sandbox.shared_dirs]
    pairs.append((sandbox.config_dir, sandbox.inside(CUSTOM_DIR)))
    for source, target in pairs:
        if target not in present:
            _run([tool("mount"), "--bind", source, target])


def unmount_under(root: str) -> None:
    """Unmount everything below `root`, deepest first; lazily when something holds it."""
    for _ in range(5):  # stacked mounts come off one per pass
        found = sorted(mounts_under(root), key=lambda m: m.count("/"), reverse=True)
        if not found:
            return
        for target in found:
            if subprocess.run(
                [tool("umount"), target], capture_output=True, check=False
            ).returncode:
                subprocess.run([tool("umount"), "-l", target], capture_output=True, check=False)
    left = mounts_under(root)
    if left:
        raise SandboxError(f"could not unmount {', '.join(left)}")


def _run(command: list[str]) -> None:
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SandboxError(f"{' '.join(command)}: {result.stderr.strip() or result.returncode}")


# --------------------------------------------------------------------------------- process


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


# ------------------------------------------------------------------------------ operations


def up(sandbox: Sandbox, echo: Echo = _quiet) -> Started:
    """Start the sandbox of a config, building the root first if needed; a second `up`
    while it runs only says so."""
    require_root()
    started = time.monotonic()
    pid = read_pid(sandbox.pid_file)
    if alive(pid):
        assert pid is not None
        info = ari_info(sandbox) or wait_for_ari(sandbox, pid)
        return Started(
            True,
            pid,
            version_of(info) or "?",
            time.monotonic() - started,
            None,
            (),
            stale_base_files(sandbox),
        )
    _take_over_root(sandbox)
    built_seconds = None
    if not is_built(sandbox.root):
        built_seconds = build_root(sandbox.root, echo)
    _check_ports_free(sandbox)
    prepare_dirs(sandbox)
    files = write_base_files(sandbox)
    pid = None
    try:
        mount_all(sandbox)
        pid = start_asterisk(sandbox)
        info = wait_for_ari(sandbox, pid)
    except BaseException:
        # Leave nothing behind that the next `up` would trip over.
        with contextlib.suppress(AstPbxError, OSError):
            stop_asterisk(sandbox, pid)
        with contextlib.suppress(AstPbxError, OSError):
            unmount_under(sandbox.root)
        _forget(sandbox)
        raise
    return Started(
        False,
        pid,
        version_of(info) or "?",
        time.monotonic() - started,
        built_seconds,
        files,
        (),
    )


def _take_over_root(sandbox: Sandbox) -> None:
    """Refuse a root in use by another config; clear what a dead run left behind."""
    owner = read_owner(sandbox.root)
    if alive(owner.get("pid")) and owner.get("data_dir") != sandbox.data_dir:
        raise UsageError(
            f"the sandbox root {sandbox.root} runs Asterisk for another config "
            f"(data {owner.get('data_dir')}, ARI {owner.get('ari_url')}, pid {owner['pid']}): "
            f"`astpbx sandbox down {owner.get('config') or 'CONFIG'}` first, or set {ROOT_ENV} "
            "to a root of this config's own"
        )
    if alive(owner.get("pid")):
        # Same data dir but our pid file is gone: stop it rather than run two.
        stop_asterisk(sandbox, owner["pid"])
    if os.path.isdir(sandbox.root):
        unmount_under(sandbox.root)
    _forget(sandbox)


def _forget(sandbox: Sandbox) -> None:
    for path in (sandbox.pid_file, sandbox.inside(OWNER_RECORD)):
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)


def down(sandbox: Sandbox, echo: Echo = _quiet) -> bool:
    """Stop the sandbox of a config and unmount; True when Asterisk was running."""
    require_root()
    pid = read_pid(sandbox.pid_file)
    owner = read_owner(sandbox.root)
    if alive(owner.get("pid")) and owner.get("data_dir") != sandbox.data_dir:
        echo(
            f"the sandbox root {sandbox.root} runs Asterisk for another config "
            f"(data {owner.get('data_dir')}); left alone"
        )
        with contextlib.suppress(FileNotFoundError):
            os.remove(sandbox.pid_file)
        return False
    running = [p for p in (pid, owner.get("pid")) if alive(p)]
    for each in dict.fromkeys(running):
        stop_asterisk(sandbox, each)
    if os.path.isdir(sandbox.root):
        unmount_under(sandbox.root)
    _forget(sandbox)
    return bool(running)


def status(sandbox: Sandbox) -> Status:
    pid = read_pid(sandbox.pid_file)
    running = alive(pid)
    info = ari_info(sandbox) if running else None
    owner = read_owner(sandbox.root)
    return Status(
        running=running,
        pid=pid if running else None,
        ari_answers=info is not None,
        version=version_of(info),
        built=is_built(sandbox.root),
        mounts=mounts_under(sandbox.root),
        owner_data_dir=owner.get("data_dir") if alive(owner.get("pid")) else None,
    )


def run_cli(sandbox: Sandbox, command: str) -> subprocess.CompletedProcess[str]:
    """`asterisk -rx COMMAND` in the running sandbox."""
    require_running(sandbox)
    return subprocess.run(
        asterisk_command(sandbox, command), capture_output=True, text=True, check=False
    )


def interactive_cli_argv(sandbox: Sandbox) -> list[str]:
    """argv of an interactive `asterisk -r` in the running sandbox (for os.execvp)."""
    require_running(sandbox)
    return [tool("chroot"), sandbox.root, ASTERISK, "-r"]


def require_running(sandbox: Sandbox) -> None:
    require_root()
    if not alive(read_pid(sandbox.pid_file)):
        raise SandboxError(
            f"the sandbox of this config is not running (no live pid in {sandbox.pid_file}); "
            "start it with `astpbx sandbox up`"
        )
