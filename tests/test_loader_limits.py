"""What `check` and the engine's reload do with configs built to hurt the loader: a file
nested deeper than libyaml's C stack allows, a directory that cannot be listed, a number
that no quoting makes valid, values megabytes long, secrets from the environment."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ast_pbx.config.loader import load
from ast_pbx.config.problems import MAX_MESSAGE, Level, Problem, Where
from ast_pbx.config.yamlread import SAFE_COMPOSE_DEPTH, _depth_bound
from tests.conftest import ROOT, WriteConfig, check_dir, located
from tests.test_cli import astpbx

# 60 KB; at 30,000 levels libyaml's recursive C composer overflowed the stack and the
# process died of SIGSEGV before the builder's depth check could run.
DEEP = {
    "flow": "rules: " + "[" * 30_000 + "]" * 30_000 + "\n",
    "flow-unclosed": "rules: " + "[" * 30_000 + "\n",
    "block": "rules:\n" + "- " * 30_000 + "x\n",
    # libyaml refuses the first line (YAML 1.1): ruamel's pure-Python parser reads the file.
    "fallback": "system: {ari: {url: http://127.0.0.1:8088}}\nrules: " + "{a: " * 30_000 + "\n",
}
# Where the 100th level opens: the first collection that is refused.
DEEP_AT = {"flow": (1, 107), "flow-unclosed": (1, 107), "block": (2, 199), "fallback": (2, 404)}

# The engine's reload, in a process of its own: a crash must fail the test, not pytest.
RELOAD = """
import json, sys
from ast_pbx.errors import ConfigInvalid
from ast_pbx.lint.linter import load_for_use
try:
    load_for_use(sys.argv[1], {})
except ConfigInvalid as exc:
    print(json.dumps([[p.where.file, p.where.line, p.where.col, p.rule, p.message]
                      for p in exc.problems]))
"""


@pytest.mark.parametrize("name", DEEP)
def test_a_file_nested_30000_deep_is_a_yaml_syntax_problem_for_check(
    write_config: WriteConfig, name: str
) -> None:
    directory = write_config(**{"deep.yaml": DEEP[name]})
    result = astpbx("check", str(directory), "--format", "json")
    assert result.returncode == 1, (result.returncode, result.stderr[-2000:])
    problems = json.loads(result.stdout)["problems"]
    path = str(directory / "deep.yaml")
    line, col = DEEP_AT[name]
    assert [(p["file"], p["line"], p["column"], p["rule"], p["message"]) for p in problems] == [
        (path, line, col, "yaml-syntax", "nested deeper than 100 levels")
    ]


@pytest.mark.parametrize("name", DEEP)
def test_a_file_nested_30000_deep_is_refused_by_the_engines_reload(
    write_config: WriteConfig, name: str
) -> None:
    directory = write_config(**{"deep.yaml": DEEP[name]})
    result = subprocess.run(
        [sys.executable, "-c", RELOAD, str(directory)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, (result.returncode, result.stderr[-2000:])
    line, col = DEEP_AT[name]
    assert json.loads(result.stdout) == [
        [str(directory / "deep.yaml"), line, col, "yaml-syntax", "nested deeper than 100 levels"]
    ]


@pytest.mark.parametrize("walked", [False, True], ids=["composed", "walked-first"])
def test_100_levels_are_read_101_refused_whether_walked_first_or_not(
    write_config: WriteConfig, walked: bool
) -> None:
    # The root mapping, `rules`, its item and 97 lists make 100 levels. With brackets
    # enough elsewhere the file is walked event by event before libyaml composes it.
    more = "    y: [" + "[], " * 2_100 + "]\n" if walked else ""
    allowed = "rules:\n  - x: " + "[" * 97 + "]" * 97 + "\n" + more
    too_deep = "rules:\n  - x: " + "[" * 98 + "]" * 98 + "\n" + more
    assert (_depth_bound(too_deep) > SAFE_COMPOSE_DEPTH) is walked
    directory = write_config(base=False, **{"a.yaml": allowed})
    assert "yaml-syntax" not in {p.rule for p in check_dir(directory).problems}
    directory = write_config(base=False, **{"a.yaml": too_deep})
    assert ("a.yaml", 2, 8 + 97, "yaml-syntax") in located(check_dir(directory), directory)


def test_a_directory_that_cannot_be_listed_is_a_problem_naming_it(
    write_config: WriteConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Tests run as root, whom permission bits do not stop: the listing itself is refused.
    directory = write_config(**{"locked__phones.yaml": 'phones:\n  - {number: "1003"}\n'})
    locked = directory / "locked"
    listing = os.scandir

    def scandir(path: Any = ".") -> Any:
        if os.fspath(path) == str(locked):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fspath(path))
        return listing(path)

    monkeypatch.setattr(os, "scandir", scandir)
    report = check_dir(directory)
    assert [(p.where.file, p.rule, p.message) for p in report.problems] == [
        (str(locked), "file-unreadable", "cannot list this directory: Permission denied")
    ]
    assert report.files == (str(directory / "base.yaml"),)
    # The config itself (not only check's report) carries the error: the engine refuses it.
    assert [p.rule for p in load(str(directory), {}).errors] == ["file-unreadable"]


def test_a_config_directory_that_cannot_be_listed_exits_1_not_2(tmp_path: Path) -> None:
    """For real: root drops the two capabilities that let it read any directory (as in
    test_fuzz's unreadable file)."""
    if shutil.which("setpriv") is None and os.geteuid() == 0:
        pytest.skip("needs setpriv to drop root's capabilities")
    config = tmp_path / "config"
    (config / "sub").mkdir(parents=True)
    (config / "a.yaml").write_text("phones: []\n", encoding="utf-8")
    (config / "sub" / "b.yaml").write_text("phones: []\n", encoding="utf-8")
    (config / "sub").chmod(0)
    try:
        command = [sys.executable, "-m", "ast_pbx", "check", str(config), "--format", "json"]
        if os.geteuid() == 0:
            dac = "-dac_override,-dac_read_search"
            command = ["setpriv", f"--inh-caps={dac}", f"--bounding-set={dac}", *command]
        result = subprocess.run(
            command, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
        )
    finally:
        (config / "sub").chmod(0o755)
    assert result.returncode == 1, result.stdout + result.stderr
    problems = json.loads(result.stdout)["problems"]
    assert [(p["file"], p["rule"]) for p in problems] == [(str(config / "sub"), "file-unreadable")]
    assert "Permission denied" in problems[0]["message"]


NEGATIVE = """\
rules:
  - number: -92233
    callers: ["+79181234567", -5]
    goto: -3
"""


def test_a_negative_unquoted_number_is_an_error_with_no_invalid_fix(
    write_config: WriteConfig,
) -> None:
    # Was a number-not-quoted warning suggesting `write "-92233"`, itself a schema error;
    # the warning hid the schema error at the same place and check passed.
    directory = write_config(**{"neg.yaml": NEGATIVE})
    report = check_dir(directory)
    problems = [(p.where.line, p.where.col, p.rule, p.message) for p in report.problems]
    never = "digits, '*' and '#', with an optional leading '+', never negative"
    assert problems == [
        (2, 13, "schema", f"rules[0].number: -92233 is not a telephone number: {never}"),
        (3, 31, "schema", f"rules[0].callers[1]: -5 is not a telephone number: {never}"),
        # The schema says the same; the semantic rule's error at the place stands for it.
        (
            4,
            11,
            "unknown-goto",
            "the rule for -92233 goes to -3, which is not a phone, menu, "
            "queue or rule number and matches no trunk",
        ),
    ]
    result = astpbx("check", str(directory))
    assert result.returncode == 1
    assert 'write "-' not in result.stdout


def test_a_warning_does_not_hide_a_schema_error_at_the_same_place(
    write_config: WriteConfig,
) -> None:
    # system.ari.username is a string: an unquoted 1234 is an error, and quoting fixes it.
    directory = write_config(**{"s.yaml": "system:\n  ari: {username: 1234}\n"})
    found = {(p.level.value, p.rule, p.where.line) for p in check_dir(directory).problems}
    assert found == {("error", "schema", 2), ("warning", "number-not-quoted", 2)}


HUGE = 2_000_000


@pytest.mark.parametrize(
    "text, line, rule",
    [
        # The schema echoes the value (a pattern, a type), a rule echoes it, ruamel too.
        ('phones:\n  - {number: "' + "1" * HUGE + 'x", password: long-enough-x}\n', 2, "schema"),
        ("system:\n  ari: {username: [" + "1, " * (HUGE // 3) + "]}\n", 2, "schema"),
        ("system:\n  timezone: Mars/" + "x" * HUGE + "\n", 2, "unknown-timezone"),
        ("rules:\n  - {number: '1', days: [" + "q" * HUGE + "]}\n", 2, "bad-day"),
        ("phones: *" + "a" * HUGE + "\n", 1, "yaml-syntax"),
        ("z" * 1_000 + ": 1\n", 1, "unknown-key"),
    ],
    ids=["schema-pattern", "schema-type", "rule", "rule-quoted", "yaml-alias", "unknown-key"],
)
def test_check_cuts_long_values_in_its_messages(
    write_config: WriteConfig, text: str, line: int, rule: str
) -> None:
    # Each printed the value whole: `check` wrote megabytes.
    directory = write_config(base=False, **{"long.yaml": text})
    result = astpbx("check", str(directory))
    assert result.returncode == 1
    assert len(result.stdout) < 1_000, result.stdout[:2_000]
    (problem,) = [p for p in result.stdout.splitlines() if f"[{rule}]" in p]
    assert problem.startswith(f"{directory / 'long.yaml'}:{line}:")
    assert "…" in problem
    assert " characters)" in problem


def test_no_message_is_longer_than_the_bound() -> None:
    problem = Problem(Where("x.yaml", 3, 4), Level.ERROR, "internal-error", "y" * 10_000)
    assert len(problem.message) <= MAX_MESSAGE + len("… (10000 characters)")
    assert problem.message.endswith("… (10000 characters)")
    assert str(problem).startswith("x.yaml:3:4: error [internal-error] yyy")


SECRET_ENV = {"S_NUM": "hunter2-number", "S_TZ": "Hunter2/Zone", "S_DB": "sqlite:///hunter2.db"}


def test_messages_show_a_value_from_the_environment_as_written(
    write_config: WriteConfig,
) -> None:
    directory = write_config(
        **{
            "env.yaml": """\
            system:
              timezone: "${S_TZ}"
              database: "${S_DB}"
            rules:
              - {number: "${S_NUM}", days: ["${S_NUM}"], goto: "x-${S_NUM}"}
            """
        }
    )
    result = astpbx("check", str(directory), env=SECRET_ENV)
    assert result.returncode == 1
    assert "hunter2" not in result.stdout.lower(), result.stdout
    found = {
        (line.split(": ", 1)[0].rsplit(":", 2)[-2], line.split("[", 1)[1].split("]", 1)[0])
        for line in result.stdout.splitlines()[:-1]
    }
    assert found >= {("2", "unknown-timezone"), ("3", "sqlite-relative-path"), ("5", "schema")}
    assert "'${S_TZ}' is not an IANA time zone name" in result.stdout
    assert '"${S_NUM}" (expanded) is not a telephone number' in result.stdout
