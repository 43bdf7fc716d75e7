"""The sandbox's operations: up, down, status and the Asterisk CLI."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time

from ast_pbx.errors import AstPbxError, UsageError
from ast_pbx.sandbox.conffiles import prepare_dirs, stale_base_files, write_base_files
from ast_pbx.sandbox.mounts import mount_all, mounts_under, unmount_under
from ast_pbx.sandbox.process import (
    _check_ports_free,
    alive,
    ari_info,
    asterisk_command,
    read_owner,
    read_pid,
    start_asterisk,
    stop_asterisk,
    version_of,
    wait_for_ari,
)
from ast_pbx.sandbox.rootfs import build_root, is_built
from ast_pbx.sandbox.settings import (
    ASTERISK,
    OWNER_RECORD,
    ROOT_ENV,
    Echo,
    Sandbox,
    SandboxError,
    Started,
    Status,
    _quiet,
    require_root,
    tool,
)


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
