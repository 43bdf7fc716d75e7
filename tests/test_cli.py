"""The `astpbx` command as users and CI call it: a real subprocess, exit codes, formats."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from tests.conftest import EXAMPLE, ROOT, WriteConfig

BROKEN = ROOT / "tests" / "data" / "broken"


def astpbx(
    *args: str,
    cwd: Path = ROOT,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ast_pbx", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=60,
        check=False,
    )


def test_clean_example_exits_0() -> None:
    result = astpbx("check", "--strict", str(EXAMPLE))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().endswith("0 errors, 0 warnings in 12 files")


def test_problems_exit_1_and_name_their_place() -> None:
    result = astpbx("check", "tests/data/broken")
    assert result.returncode == 1
    assert "tests/data/broken/menus.yaml:10:18: error [bad-regex]" in result.stdout
    assert result.stdout.strip().endswith("4 errors, 3 warnings in 5 files")
    assert "Traceback" not in result.stderr


def test_warnings_fail_only_with_strict(write_config: WriteConfig) -> None:
    directory = write_config(
        **{"w.yaml": 'phones:\n  - {number: 2001, password: "x-long-enough-secret"}\n'}
    )
    assert astpbx("check", str(directory)).returncode == 0
    strict = astpbx("check", "--strict", str(directory))
    assert strict.returncode == 1
    assert "warning [number-not-quoted]" in strict.stdout


def test_usage_errors_exit_2() -> None:
    missing = astpbx("check", "no/such/dir")
    assert missing.returncode == 2
    assert "no/such/dir: no such file or directory" in missing.stderr
    assert astpbx("check", "--format", "xml", str(EXAMPLE)).returncode == 2
    assert astpbx("rules", "no-such-rule").returncode == 2
    assert astpbx().returncode == 2


def test_directory_without_yaml_is_a_usage_error(tmp_path: Path) -> None:
    result = astpbx("check", str(tmp_path))
    assert result.returncode == 2
    assert "no *.yaml or *.yml files" in result.stderr


def test_json_format() -> None:
    result = astpbx("check", "--format", "json", "tests/data/broken")
    document = json.loads(result.stdout)
    assert document["summary"] == {"errors": 4, "warnings": 3, "files": 5}
    first = document["problems"][0]
    assert first == {
        "file": "tests/data/broken/menus.yaml",
        "line": 10,
        "column": 18,
        "level": "error",
        "rule": "bad-regex",
        "message": "digits handler of menu 91100 '*[0-9]*#' is not a valid regex: "
        "nothing to repeat at position 0",
    }


def test_github_format() -> None:
    lines = astpbx("check", "--format", "github", "tests/data/broken").stdout.splitlines()
    assert lines[0].startswith(
        "::error file=tests/data/broken/menus.yaml,line=10,col=18,title=astpbx bad-regex::"
    )
    assert any(
        line.startswith("::warning file=tests/data/broken/phones.yaml,line=3,col=14,")
        for line in lines
    )
    assert lines[-1] == "4 errors, 3 warnings in 5 files"


def test_several_paths_are_separate_configs() -> None:
    result = astpbx("check", str(EXAMPLE), "tests/data/broken")
    assert result.returncode == 1
    assert result.stdout.strip().endswith("4 errors, 3 warnings in 17 files")


def test_default_path_is_config_or_env(tmp_path: Path) -> None:
    assert astpbx("check", "--strict").stdout.strip().endswith("in 1 file")
    via_env = astpbx("check", env={"ASTPBX_CONFIG": "tests/data/broken"})
    assert via_env.stdout.strip().endswith("in 5 files")
    elsewhere = astpbx("check", cwd=tmp_path)
    assert elsewhere.returncode == 2
    assert "config: no such file or directory" in elsewhere.stderr


def test_single_file_is_a_config(tmp_path: Path) -> None:
    file = tmp_path / "one.yml"
    file.write_text('phones:\n  - {number: "1001", password: "long-enough-secret"}\n')
    assert astpbx("check", "--strict", str(file)).returncode == 0


def test_schema_prints_and_writes_a_valid_schema(tmp_path: Path) -> None:
    printed = json.loads(astpbx("schema").stdout)
    jsonschema.Draft202012Validator.check_schema(printed)
    target = tmp_path / "astpbx.schema.json"
    assert astpbx("schema", "-o", str(target)).returncode == 0
    assert json.loads(target.read_text()) == printed
    assert (ROOT / "schemas" / "astpbx.schema.json").read_text() == target.read_text()
    unwritable = astpbx("schema", "-o", str(tmp_path / "no" / "dir" / "s.json"))
    assert unwritable.returncode == 2
    assert "cannot write" in unwritable.stderr


def test_rules_lists_and_explains() -> None:
    listing = astpbx("rules").stdout
    assert "rule-loop" in listing and "weak-secret" in listing
    explained = astpbx("rules", "rule-loop").stdout
    assert explained.startswith("rule-loop (error)")
    assert "Mondays" in explained


def test_version() -> None:
    result = astpbx("--version")
    assert result.returncode == 0
    assert result.stdout.startswith("astpbx ")


@pytest.mark.parametrize("command", ["check", "rules", "schema"])
def test_help(command: str) -> None:
    result = astpbx(command, "--help")
    assert result.returncode == 0
    assert f"Usage: astpbx {command}" in result.stdout


def test_call_refuses_a_broken_system_section_with_its_place(write_config: WriteConfig) -> None:
    """`astpbx call` needs only `system` valid; an error there stops it before dialing."""
    directory = write_config(
        **{"system.yaml": 'system:\n  timezone: Europe/Moscow\n  ari: {url: 12, app: "a b"}\n'}
    )
    result = astpbx("call", str(directory), "--to", "90000")
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"{directory / 'system.yaml'}:3:" in result.stderr
    assert "the system section has errors" in result.stderr
