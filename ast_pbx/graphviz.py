"""The thin shell around graphviz's `dot` program: DOT text in, SVG text out."""

from __future__ import annotations

import shutil
import subprocess

from ast_pbx.errors import UsageError

TIMEOUT = 60.0  # seconds; a call-flow graph takes well under one, a hung `dot` must not hang us
MISSING = (
    "graphviz is not installed: install it (apt-get install graphviz) or use --format mermaid|dot"
)


def render_svg(dot_source: str) -> str:
    """The SVG that `dot -Tsvg` draws from `dot_source`; UsageError when it cannot."""
    program = shutil.which("dot")
    if program is None:
        raise UsageError(MISSING)
    try:
        result = subprocess.run(
            [program, "-Tsvg"],
            input=dot_source.encode("utf-8"),
            capture_output=True,
            timeout=TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise UsageError(f"graphviz dot did not finish in {TIMEOUT:g} s") from exc
    except OSError as exc:
        raise UsageError(f"cannot run {program}: {exc.strerror or exc}") from exc
    if result.returncode != 0:
        detail = result.stderr.decode("utf-8", "replace").strip() or f"exit {result.returncode}"
        raise UsageError(f"graphviz dot failed: {detail}")
    return result.stdout.decode("utf-8", "replace")
