"""Loading: files, merge order, ${VAR}, YAML details, and the compiled model."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from pathlib import Path

import pytest

from ast_pbx.config.loader import config_files, load
from ast_pbx.config.model import Menu
from ast_pbx.config.timespec import TimeSpan
from ast_pbx.errors import UsageError
from tests.conftest import EXAMPLE, WriteConfig, check_dir, located


def test_files_are_read_recursively_in_sorted_path_order(write_config: WriteConfig) -> None:
    # Sorted by path components, as pathlib sorts: a directory's files stay together.
    directory = write_config(
        base=False,
        **{
            "b.yaml": "phones: []\n",
            "a__z.yml": "phones: []\n",
            "a.yaml": "phones: []\n",
            ".hidden.yaml": "junk: 1\n",
            ".git__x.yaml": "junk: 1\n",
            "notes.txt": "junk",
        },
    )
    names = [Path(f).relative_to(directory).as_posix() for f in config_files(str(directory))]
    assert names == ["a/z.yml", "a.yaml", "b.yaml"]


def test_list_sections_merge_in_file_order(write_config: WriteConfig) -> None:
    directory = write_config(
        base=False,
        **{
            "2.yaml": 'phones:\n  - {number: "3", password: long-enough-secret}\n',
            "1.yaml": 'phones:\n  - {number: "1", password: long-enough-secret}\n'
            '  - {number: "2", password: long-enough-secret}\n',
        },
    )
    assert [p.number for p in load(str(directory), {}).config.phones] == ["1", "2", "3"]


def test_rules_keep_file_then_position_order(write_config: WriteConfig) -> None:
    directory = write_config(
        **{
            "r1.yaml": 'rules:\n  - {number: "90000", days: [mon], goto: "1001"}\n',
            "r2.yaml": 'rules:\n  - {number: "90000", goto: "1002"}\n',
        }
    )
    rules = load(str(directory), {}).config.rules_for["90000"]
    assert [r.goto for r in rules] == ["1001", "1002"]


def test_env_expansion(write_config: WriteConfig) -> None:
    directory = write_config(
        base=False,
        **{
            "p.yaml": """\
        phones:
          - {number: "1", password: "${PW}"}
          - {number: "2", password: "${MISSING:-fallback-secret}"}
          - {number: "3", password: "literal $${NOT_A_VAR} x"}
        """
        },
    )
    config = load(str(directory), {"PW": "from-env-secret"}).config
    assert [p.password for p in config.phones] == [
        "from-env-secret",
        "fallback-secret",
        "literal ${NOT_A_VAR} x",
    ]


def test_unset_variable_warns_for_check_and_fails_for_run(write_config: WriteConfig) -> None:
    directory = write_config(
        base=False, **{"p.yaml": 'phones:\n  - {number: "1", password: "${PW}"}\n'}
    )
    checked = load(str(directory), {})
    assert [(p.rule, p.level.value) for p in checked.problems] == [("env-unset", "warning")]
    assert [(p.rule, p.level.value) for p in load(str(directory), {}, need_env=True).problems] == [
        ("env-unset", "error")
    ]


def test_yaml_merge_keys(write_config: WriteConfig) -> None:
    directory = write_config(
        base=False,
        **{
            "q.yaml": """\
        phones:
          - {number: "1", password: long-enough-secret}
        queues:
          - &defaults {number: "10", members: ["1"], ring_timeout: 7, sticky: true}
          - {<<: *defaults, number: "11"}
        """
        },
    )
    queues = load(str(directory), {}).config.queues
    assert [(q.number, q.ring_timeout, q.sticky) for q in queues] == [
        ("10", 7, True),
        ("11", 7, True),
    ]


def test_unquoted_yaml_timestamp_stays_text(write_config: WriteConfig) -> None:
    directory = write_config(
        **{
            "t.yaml": """\
        tests:
          - name: t
            to: "1001"
            at: 2026-03-02 10:00
            expect: {ends: phone 1001}
        """
        }
    )
    loaded = load(str(directory), {})
    assert loaded.config.tests[0].moment == datetime(2026, 3, 2, 10, 0)
    assert loaded.problems == []


def test_the_on_key_is_not_a_boolean(write_config: WriteConfig) -> None:
    # YAML 1.1 read `on:` as True; the config language depends on the 1.2 reading.
    config = load(str(write_config()), {}).config
    assert [h.goto for h in config.menus[0].handlers] == ["1001", "92000"]


def test_missing_path_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no such file or directory"):
        load(str(tmp_path / "missing"), {})


def test_audio_paths_are_relative_to_the_naming_file() -> None:
    audio = load(str(EXAMPLE), {}).config.audio_by_id["roxette"]
    assert audio.file == str((EXAMPLE / "audio" / "roxette.mp3").resolve())


def test_example_compiles_to_frozen_typed_objects() -> None:
    config = load(str(EXAMPLE), {}).config
    menu = config.targets["90000"]
    assert isinstance(menu, Menu)
    assert menu.prompt is not None and menu.prompt.kind == "say"
    assert [h.kind for h in menu.handlers].count("key") == 4
    assert menu.timeout is not None and menu.timeout.timeout == 15
    with pytest.raises(dataclasses.FrozenInstanceError):
        menu.number = "1"  # type: ignore[misc]
    monday = config.rules_for["92000"][0]
    assert monday.days == frozenset({0}) and monday.goto == "95000"
    weekday_rule = config.rules_for["+79999999999"][0]
    assert weekday_rule.hours is not None
    assert set(weekday_rule.hours) == {TimeSpan.parse("09:00-11:00"), TimeSpan.parse("15:00-18:00")}
    assert weekday_rule.applies("+79001234567", datetime(2026, 3, 4, 10, 30))
    assert not weekday_rule.applies("+79001234567", datetime(2026, 3, 4, 12, 0))
    assert config.trunk_for("+79001234567") is config.trunk_by_name["rt"]
    assert config.trunk_for("123456") is None
    assert config.system.timezone == "Europe/Moscow"


def test_where_points_at_the_written_value() -> None:
    config = load(str(EXAMPLE), {}).config
    queue = config.targets["92000"]
    where = queue.at("number")
    line = Path(where.file).read_text(encoding="utf-8").splitlines()[where.line - 1]
    assert line[where.col - 1 :].startswith('"92000"')


def test_broken_items_are_left_out_not_raised(write_config: WriteConfig) -> None:
    directory = write_config(
        **{
            "bad.yaml": """\
        phones:
          - just a string
          - {password: no-number-here-at-all}
          - {number: [1, 2], password: x}
        menus:
          - {number: "94000", entry: true, say: 5, on: [{key: true}, {goto: "1001"}]}
        """
        }
    )
    report = check_dir(directory)
    assert {rule for *_, rule in located(report, directory)} >= {"schema", "exactly-one"}
    assert "internal-error" not in {p.rule for p in report.problems}
    config = load(str(directory), {}).config
    assert [p.number for p in config.phones] == ["1001", "1002"]


def test_flow_mappings_read_as_yaml_1_2(write_config: WriteConfig) -> None:
    # The spec writes `ari: {url: http://127.0.0.1:8088, …}`; libyaml alone refuses it.
    directory = write_config(
        **{
            "s.yaml": """\
        system:
          ari: {url: http://127.0.0.1:8088, username: astpbx, app: astpbx}
          http: {listen: 127.0.0.1:8080}
        """
        }
    )
    loaded = load(str(directory), {})
    assert loaded.problems == []
    assert loaded.config.system.ari.url == "http://127.0.0.1:8088"
    assert loaded.config.system.http_listen == "127.0.0.1:8080"


def test_unquoted_variable_in_a_flow_mapping_gets_a_hint(write_config: WriteConfig) -> None:
    directory = write_config(**{"s.yaml": "system:\n  api: {username: mfc, password: ${PW}}\n"})
    [problem] = check_dir(directory).problems
    assert (problem.rule, problem.where.line) == ("yaml-syntax", 2)
    assert 'quote values that use ${VAR}: "${VAR}"' in problem.message


def test_deep_nesting_is_refused_not_crashed(write_config: WriteConfig) -> None:
    directory = write_config(**{"deep.yaml": "tests: " + "[" * 3000 + "]" * 3000 + "\n"})
    found = located(check_dir(directory), directory)
    assert ("deep.yaml", 1, 107, "yaml-syntax") in found
