"""`astpbx graph`: the call-flow picture in mermaid, DOT and SVG, and its failure modes."""

from __future__ import annotations

import html
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ast_pbx import graphviz
from ast_pbx.cli.common import load_valid
from ast_pbx.errors import UsageError
from ast_pbx.flowgraph import FlowGraph, build, number_id, shorten, to_dot, to_mermaid, trunk_id
from tests.conftest import EXAMPLE, ROOT, WriteConfig

BROKEN = ROOT / "tests" / "data" / "broken"


def astpbx(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ast_pbx", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env if env is not None else dict(os.environ),
        timeout=60,
        check=False,
    )


def graph_of(directory: Path) -> FlowGraph:
    return build(load_valid(str(directory)))


def dot_svg(source: str) -> str:
    """What the real graphviz draws; a DOT syntax error fails the test with dot's message."""
    program = shutil.which("dot")
    assert program, "graphviz is needed by these tests: apt-get install graphviz"
    result = subprocess.run(
        [program, "-Tsvg"], input=source, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def example() -> FlowGraph:
    return graph_of(EXAMPLE)


def test_example_mermaid_nodes_and_edges(example: FlowGraph) -> None:
    lines = to_mermaid(example).splitlines()
    assert lines[0] == "flowchart LR"
    for expected in [
        'trunk_rt{{"trunk rt"}}',
        'n_92000[["queue 92000<br/>Очередь<br/>members 1111, 1001"]]',
        'n_91110["menu 91110<br/>Статус дела<br/>scenario case_status"]',
        'n_plus79999999999[/"number +79999999999"/]',
        'hangup(("hang up"))',
        'trunk_rt -->|"inbound"| n_90000',
        'n_90000 -->|"key 0"| n_90000',
        'n_90000 -->|"key 2"| n_92000',
        'n_90000 -->|"timeout 15 s"| n_92000',
        'n_91100 -->|"digits [0-9*]+#35;"| n_91110',
        'n_91110 -->|"after scenario"| hangup',
        'n_95000 -->|"timeout 15 s"| hangup',
        'n_92000 -->|"timeout 600 s"| n_93000',
        'n_92000 -.->|"rule: mon"| n_95000',
        'n_plus79999999999 -.->|"rule: mon-fri 09:00-11:00, 15:00-18:00"| n_1234567890',
        'n_1234567890 -->|"outbound"| trunk_rt_out',
        'n_plus79999999999 -->|"outbound"| trunk_rt_out',
    ]:
        assert f"    {expected}" in lines, expected
    menu = next(line for line in lines if line.startswith("    n_90000["))
    assert "menu 90000<br/>Главное меню<br/>“Здравствуйте." in menu
    # Phones reached only as queue members stay inside the queue's label.
    assert not any(line.startswith("    n_1001") for line in lines)


def test_example_dot_nodes_and_edges(example: FlowGraph) -> None:
    dot = to_dot(example)
    assert dot.startswith("digraph callflow {\n    rankdir=LR;\n")
    for expected in [
        'trunk_rt [shape=hexagon, label="trunk rt"];',
        'n_92000 [shape=box3d, label="queue 92000\\nОчередь\\nmembers 1111, 1001"];',
        'hangup [shape=octagon, label="hang up"];',
        'n_90000 -> n_92000 [label="key 2"];',
        'n_92000 -> n_95000 [label="rule: mon", style=dashed];',
        'trunk_rt -> n_90000 [label="inbound"];',
        'n_91100 -> n_91110 [label="digits [0-9*]+#"];',
        'n_1234567890 -> trunk_rt_out [label="outbound"];',
    ]:
        assert f"    {expected}\n" in dot, expected
    assert 'shape=box, style=rounded, label="menu 91000\\nИнформация о делах\\n' in dot


def test_example_dot_is_drawn_by_graphviz(example: FlowGraph) -> None:
    svg = dot_svg(to_dot(example))
    assert "<svg" in svg
    assert "Главное меню" in svg
    assert "rule: mon" in svg


def test_output_is_deterministic(example: FlowGraph) -> None:
    assert graph_of(EXAMPLE) == example
    assert to_mermaid(graph_of(EXAMPLE)) == to_mermaid(example)


def test_implicit_timeout_phones_and_rules(write_config: WriteConfig) -> None:
    directory = write_config(
        **{
            "rules.yaml": """\
            rules:
              - {number: "92000", callers: ["+79181234567"], caller_patterns: ['\\+7918\\d+'],
                 goto: "1001"}
              - {number: "92000", days: [sat, sun], hours: ["22:00-06:00"]}
              - {number: "555", days: [mon, wed, thu, fri], goto: "92000"}
            """
        }
    )
    lines = to_mermaid(graph_of(directory)).splitlines()
    for expected in [
        # Menu 90000 of the base config has keys but no timeout: 15 s, then hang up.
        'n_90000 -.->|"timeout 15 s"| hangup',
        'n_90000 -->|"key 1"| n_1001',
        'n_1001(["phone 1001"])',
        'n_92000[["queue 92000<br/>members 1001, 1002"]]',
        'n_92000 -.->|"rule 1: callers +79181234567, \\+7918\\d+"| n_1001',
        'n_92000 -.->|"rule 2: sat, sun 22:00-06:00"| hangup',
        'n_555 -.->|"rule: mon, wed-fri"| n_92000',
        'n_555 -->|"unknown number"| hangup',
    ]:
        assert f"    {expected}" in lines, expected
    assert not any(line.startswith("    n_1002") for line in lines)


def test_quotes_and_backslashes_are_escaped(write_config: WriteConfig) -> None:
    name = 'Say "hi" \\ bye \\N'
    directory = write_config(
        **{
            "quoted.yaml": f"""\
            menus:
              - number: "90001"
                name: '{name}'
                say: 'Press <1> & "#" | `2`'
                on:
                  - {{digits: '\\d+#', goto: "1001"}}
            """
        }
    )
    flow = graph_of(directory)
    svg = html.unescape(dot_svg(to_dot(flow)))
    assert name in svg  # \N is not graphviz's node-name escape here
    assert "digits \\d+#" in svg
    mermaid = to_mermaid(flow)
    assert "Say #quot;hi#quot; \\ bye \\N" in mermaid
    assert "“Press #lt;1#gt; #amp; #quot;#35;#quot; #124; #96;2#96;”" in mermaid
    for line in mermaid.splitlines()[1:]:
        # Only the delimiting quotes are left: one pair per label.
        assert line.count('"') == 2, line


def test_identifiers_are_safe_and_distinct() -> None:
    assert number_id("+7*#0") == "n_plus7starhash0"
    assert number_id("90000") == "n_90000"
    assert trunk_id("rt") == "trunk_rt"
    assert trunk_id("a_b-c") != trunk_id("a-b_c")
    assert trunk_id("a_b-c").replace("_", "").isalnum()


def test_shorten_cuts_at_a_word() -> None:
    assert shorten("short  text\n here") == "short text here"
    long = "Здравствуйте. Для получения информации о делах нажмите единицу."
    cut = shorten(long)
    assert len(cut) <= 40
    assert cut == "Здравствуйте. Для получения информации…"


def test_cli_prints_mermaid_and_writes_dot(tmp_path: Path, example: FlowGraph) -> None:
    printed = astpbx("graph", str(EXAMPLE))
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout == to_mermaid(example)
    target = tmp_path / "mfc.dot"
    written = astpbx("graph", "-f", "dot", "-o", str(target), str(EXAMPLE))
    assert written.returncode == 0, written.stderr
    assert written.stdout == ""
    assert target.read_text(encoding="utf-8") == to_dot(example)


def test_cli_svg(tmp_path: Path) -> None:
    target = tmp_path / "mfc.svg"
    result = astpbx("graph", "--format", "svg", "--output", str(target), str(EXAMPLE))
    assert result.returncode == 0, result.stderr
    text = target.read_text(encoding="utf-8")
    assert text.startswith(("<?xml", "<svg"))
    assert "</svg>" in text
    assert not list(tmp_path.glob("*.tmp*"))


def test_missing_graphviz_in_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda _name: None)
    with pytest.raises(UsageError, match=r"graphviz is not installed: install it \(apt-get"):
        graphviz.render_svg("digraph { a -> b }")


def test_missing_graphviz_exits_2() -> None:
    result = astpbx("graph", "--format", "svg", "examples/mfc", env={**os.environ, "PATH": ""})
    assert result.returncode == 2
    assert "graphviz is not installed" in result.stderr
    assert "--format mermaid|dot" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_graphviz_failure_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match=r"graphviz dot failed: .*syntax error"):
        graphviz.render_svg("digraph { a -> }")


def test_invalid_config_exits_1() -> None:
    result = astpbx("graph", str(BROKEN))
    assert result.returncode == 1
    assert "error(s) in the configuration" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    assert astpbx("graph", "no/such/dir").returncode == 2
    assert astpbx("graph", "--format", "png", str(EXAMPLE)).returncode == 2
    assert astpbx("graph").returncode == 2
    unwritable = astpbx("graph", "-o", str(tmp_path / "no" / "dir" / "g.mmd"), str(EXAMPLE))
    assert unwritable.returncode == 2
    assert "cannot write" in unwritable.stderr


def test_help_describes_the_picture() -> None:
    result = astpbx("graph", "--help")
    assert result.returncode == 0
    assert "Draw the call flow of a configuration." in result.stdout
    assert "mermaid" in result.stdout
