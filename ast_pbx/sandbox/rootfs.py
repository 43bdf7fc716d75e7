"""The Debian sid root file system, made once with debootstrap and cached."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import time

from ast_pbx.sandbox.mounts import unmount_under
from ast_pbx.sandbox.process import _tail
from ast_pbx.sandbox.settings import (
    ASTERISK,
    MIRROR,
    PACKAGES,
    SUITE,
    SYSTEM_PATH,
    Echo,
    SandboxError,
    _quiet,
    tool,
)


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
