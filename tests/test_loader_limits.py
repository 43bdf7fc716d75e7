"""What `check` and the engine's reload do with configs built to hurt the loader: a file
nested deeper than libyaml's C stack allows, a directory that cannot be listed, a number
that no quoting makes valid, values megabytes long, secrets from the environment."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

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
