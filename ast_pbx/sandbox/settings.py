"""Where a sandbox lives and what it serves: settings read from a config's system section."""

from __future__ import annotations

import os
import re
import shutil
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass

from ast_pbx.config.system import System
from ast_pbx.errors import EXIT_PROBLEMS, AstPbxError, UsageError

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
    # Decline to load in the chroot: unbound wants a resolver config of its own; the Debian sample
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
