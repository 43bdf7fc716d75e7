"""Writing files so that no reader ever sees half of one."""

from __future__ import annotations

import contextlib
import os


def write_atomically(
    path: str, text: str, *, mode: int | None = None, make_dirs: bool = False
) -> None:
    """Write through a temporary file in the same directory, then rename it over `path`.

    The old file's mode and owner are kept (Asterisk may run as another user than
    astpbx); `mode` sets them for a new file or one holding secrets; `make_dirs` creates
    missing parent directories. OSError on failure, with the temporary file removed.
    """
    directory = os.path.dirname(path) or "."
    temporary = os.path.join(directory, f".{os.path.basename(path)}.tmp{os.getpid()}")
    try:
        if make_dirs:
            os.makedirs(directory, exist_ok=True)
        with open(temporary, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        _keep_owner_and_mode(path, temporary)
        if mode is not None:
            os.chmod(temporary, mode)
        os.replace(temporary, path)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def _keep_owner_and_mode(old: str, new: str) -> None:
    try:
        info = os.stat(old)
    except FileNotFoundError:
        return
    os.chmod(new, info.st_mode & 0o7777)
    with contextlib.suppress(PermissionError):  # only root may give a file away
        os.chown(new, info.st_uid, info.st_gid)
