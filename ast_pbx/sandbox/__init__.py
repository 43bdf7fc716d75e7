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

This package is the shell around debootstrap, mount, chroot and asterisk: standard
library only, no typer (the command line is ast_pbx/cli/sandbox.py). The operations
(up, down, status, cli) are here; the pieces are in its modules.
"""

from ast_pbx.sandbox.conffiles import base_files
from ast_pbx.sandbox.mounts import mounts_under
from ast_pbx.sandbox.operations import down, interactive_cli_argv, run_cli, status, up
from ast_pbx.sandbox.process import alive, read_owner, read_pid
from ast_pbx.sandbox.settings import (
    ASTERISK,
    CUSTOM_DIR,
    ROOT_ENV,
    Sandbox,
    SandboxError,
    inside,
    root_path,
    sandbox_for,
    tool,
)

__all__ = [
    "ASTERISK",
    "CUSTOM_DIR",
    "ROOT_ENV",
    "Sandbox",
    "SandboxError",
    "alive",
    "base_files",
    "down",
    "inside",
    "interactive_cli_argv",
    "mounts_under",
    "read_owner",
    "read_pid",
    "root_path",
    "run_cli",
    "sandbox_for",
    "status",
    "tool",
    "up",
]
