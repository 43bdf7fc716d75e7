"""Documentation that cannot drift: README, man pages and --help say what the code does."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import pytest

from ast_pbx.lint.registry import RULES
from tests.conftest import ROOT
from tests.test_cli import astpbx

README = (ROOT / "README.md").read_text(encoding="utf-8")
MAN1 = ROOT / "man" / "astpbx.1"
MAN5 = ROOT / "man" / "astpbx.yaml.5"
COMMANDS = (
    "check",
    "rules",
    "schema",
    "simulate",
    "test",
    "graph",
    "plan",
    "apply",
    "run",
    "call",
    "sandbox",
    "report",
    "history",
    "files",
    "callback",
    "hash-password",
)


def _rendered(page: str) -> str:
    """The page as a reader sees it: roff escapes and font changes removed."""
    text = (ROOT / "man" / page).read_text(encoding="utf-8")
    text = re.sub(r"\\f[BIRP]|\\f\(..|\\&|\\%", "", text)
    return text.replace("\\-", "-").replace("\\(em", "—").replace("\\e", "\\")


def _quick_start() -> list[str]:
    section = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.strip()]


def test_quick_start_is_two_commands_and_ci_runs_the_test_command() -> None:
    setup_and_run, test_command = _quick_start()
    assert setup_and_run == "bash .ci/demo"
    demo = (ROOT / ".ci" / "demo").read_text(encoding="utf-8").splitlines()
    assert "bash .ci/setup" in demo
    assert any(line.startswith("exec .venv/bin/astpbx run ") for line in demo)
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert "bash .ci/setup" in ci
    assert test_command in ci


def test_readme_check_example_is_real_output() -> None:
    block = README.split("```console\n$ astpbx check tests/data/broken\n", 1)[1].split("```", 1)[0]
    assert astpbx("check", "tests/data/broken").stdout == block


def test_readme_simulate_example_is_real_output() -> None:
    command = '$ astpbx simulate examples/mfc --to 90000 --input 2 --at "2026-03-02 10:00"\n'
    block = README.split("```console\n" + command, 1)[1].split("```", 1)[0]
    actual = astpbx(
        "simulate", "examples/mfc", "--to", "90000", "--input", "2", "--at", "2026-03-02 10:00"
    ).stdout.splitlines()
    shown = block.splitlines()
    assert len(shown) == len(actual)
    for line, real in zip(shown, actual, strict=True):
        # The README shortens long prompts with "…"; the rest is verbatim.
        head, cut, _ = line.partition(" …")
        assert real.startswith(head) if cut else real == line


@pytest.mark.parametrize("page", ["astpbx.1", "astpbx.yaml.5"])
def test_man_pages_render_without_warnings(page: str) -> None:
    if shutil.which("groff") is None:
        pytest.skip("groff is not installed (bash .ci/setup installs it)")
    result = subprocess.run(
        ["groff", "-man", "-ww", "-z", str(ROOT / "man" / page)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0
    assert result.stderr == ""


RULES_BEGIN = '.\\" BEGIN RULES (generated from `astpbx rules ID`: ASTPBX_REGEN_DOCS=1 pytest)\n'
RULES_END = '.\\" END RULES\n'


def _roff(text: str) -> str:
    lines = text.replace("\\", "\\e").splitlines()
    return "\n".join(f"\\&{line}" if line.startswith((".", "'")) else line for line in lines)


def rules_section() -> str:
    parts = []
    for rule in sorted(RULES.values(), key=lambda r: r.id):
        paragraphs = [_roff(p) for p in rule.doc.split("\n\n")]
        parts.append(f'.TP\n.BR {rule.id} " ({rule.level.value})"\n' + "\n.IP\n".join(paragraphs))
    return "\n".join(parts) + "\n"


def test_man1_rules_section_is_generated_from_the_rules() -> None:
    text = MAN1.read_text(encoding="utf-8")
    head, rest = text.split(RULES_BEGIN, 1)
    current, tail = rest.split(RULES_END, 1)
    if os.environ.get("ASTPBX_REGEN_DOCS"):
        MAN1.write_text(head + RULES_BEGIN + rules_section() + RULES_END + tail, encoding="utf-8")
        return
    assert current == rules_section(), "run ASTPBX_REGEN_DOCS=1 pytest tests/test_docs.py"


def test_man1_documents_every_command_option_and_rule() -> None:
    page = _rendered("astpbx.1")
    for command in COMMANDS:
        assert re.search(rf"\b{command}\b", page), command
        help_text = astpbx(command, "--help").stdout
        for option in set(re.findall(r"(?<![\w-])(--[a-z][a-z-]+|-[a-z])\b", help_text)):
            assert option in page, f"astpbx {command} {option} is not in astpbx.1"
    for rule_id in RULES:
        assert rule_id in page, f"rule {rule_id} is not in astpbx.1"
    for variable in ("ASTPBX_CONFIG", "ASTPBX_DEBUG"):
        assert variable in page


def _schema_keys(node: object) -> set[str]:
    keys: set[str] = set()
    if isinstance(node, dict):
        for name, value in node.items():
            if name == "properties" and isinstance(value, dict):
                keys |= set(value)
            keys |= _schema_keys(value)
    elif isinstance(node, list):
        for item in node:
            keys |= _schema_keys(item)
    return keys


def test_man5_documents_every_key_of_the_schema() -> None:
    page = _rendered("astpbx.yaml.5")
    schema = json.loads((ROOT / "schemas" / "astpbx.schema.json").read_text(encoding="utf-8"))
    missing = sorted(k for k in _schema_keys(schema) if not re.search(rf"\b{k}\b", page))
    assert missing == []
