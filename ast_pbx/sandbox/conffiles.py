"""Asterisk's base configuration files, written into the root on every start."""

from __future__ import annotations

import glob
import os
import wave

from ast_pbx.asterisk_files import conf_value
from ast_pbx.files import write_atomically
from ast_pbx.sandbox.settings import (
    CUSTOM_DIR,
    DATA_KINDS,
    MOH_DIR,
    NOLOAD,
    RECORDING_DIR,
    RUN_DIR,
    SILENCE,
    Sandbox,
    _split_host_port,
)


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


def hosts_file(root: str) -> str:
    """The root's /etc/hosts. debootstrap's minbase writes none, so every name Asterisk
    resolves (localhost, its own host name) went to the DNS server: on this machine one
    lookup in ~60 took 5 s, and PJSIP jammed under load waiting for them."""
    try:
        with open(os.path.join(root, "etc/hostname"), encoding="utf-8") as handle:
            hostname = handle.read().strip()
    except OSError:
        hostname = ""
    names = " ".join(dict.fromkeys(n for n in ("localhost", hostname) if n))
    return (
        "# Written by `astpbx sandbox up` on every start.\n"
        f"127.0.0.1\t{names}\n"
        "::1\tlocalhost ip6-localhost ip6-loopback\n"
    )


def write_base_files(sandbox: Sandbox) -> tuple[str, ...]:
    """Write the base files, /etc/hosts and the silence of music on hold; their host paths."""
    hosts = sandbox.inside("/etc/hosts")
    write_atomically(hosts, hosts_file(sandbox.root), mode=0o644)
    written = [hosts]
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
