"""Bind mounts of the directories the engine and Asterisk share."""

from __future__ import annotations

import re
import subprocess

from ast_pbx.sandbox.settings import CUSTOM_DIR, Sandbox, SandboxError, _is_under, tool


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
