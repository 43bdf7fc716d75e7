"""Shared helpers: write a config directory from YAML texts and check it."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from ast_pbx.lint.linter import Report, check
from tests.sandbox_fixture import sandbox  # noqa: F401

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "mfc"

# A small config that is clean under --strict; rule tests add one file that breaks it.
BASE = """\
trunks:
  - name: rt
    match: '\\+?\\d{7,}'
    inbound: "90000"
    host: sip.example.net
    username: "0001"
    password: ${RT_PASSWORD:-long-enough-secret}
phones:
  - {number: "1001", password: "${SIP_1001:-long-enough-secret}"}
  - {number: "1002", password: "${SIP_1002:-long-enough-secret}"}
menus:
  - number: "90000"
    say: Hello
    on:
      - {key: "1", goto: "1001"}
      - {key: "2", goto: "92000"}
queues:
  - {number: "92000", members: ["1001", "1002"]}
"""

WriteConfig = Callable[..., Path]


@pytest.fixture
def write_config(tmp_path: Path) -> WriteConfig:
    """write_config(name=text, ...) → a config directory; texts are dedented."""

    def write(base: bool = True, **files: str) -> Path:
        directory = tmp_path / "config"
        directory.mkdir(exist_ok=True)
        if base:
            (directory / "base.yaml").write_text(BASE, encoding="utf-8")
        for name, text in files.items():
            path = directory / name.replace("__", "/")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(text), encoding="utf-8")
        return directory

    return write


def check_dir(directory: Path) -> Report:
    return check(str(directory), env={})


def located(report: Report, directory: Path) -> list[tuple[str, int, int, str]]:
    """(file relative to the config, line, col, rule) of every problem."""
    return [
        (str(Path(p.where.file).relative_to(directory)), p.where.line, p.where.col, p.rule)
        for p in report.problems
    ]
