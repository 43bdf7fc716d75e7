"""Every rule of `check` has a failing example that pins file, line, column and rule id."""

from __future__ import annotations

from pathlib import Path

import pytest

from ast_pbx.lint.registry import RULES
from tests.conftest import WriteConfig, check_dir, located

# (rule id, files {name: yaml}, the problem expected: (file, line, col, rule)).
CASES: list[tuple[str, dict[str, str], tuple[str, int, int, str]]] = [
    (
        "yaml-syntax",
        {
            "case.yaml": """\
        phones:
          - {number: "2001", password: [unclosed
        """
        },
        ("case.yaml", 3, 1, "yaml-syntax"),
    ),
    (
        "duplicate-key",
        {
            "case.yaml": """\
        phones:
          - number: "2001"
            password: long-enough-secret
            number: "2002"
        """
        },
        ("case.yaml", 4, 5, "duplicate-key"),
    ),
    (
        "schema",
        {
            "case.yaml": """\
        queues:
          - number: "93000"
            members: ["1001"]
            ring_at_once: many
        """
        },
        ("case.yaml", 4, 19, "schema"),
    ),
    (
        "unknown-key",
        {
            "case.yaml": """\
        phones:
          - number: "2001"
            pasword: long-enough-secret
        """
        },
        ("case.yaml", 3, 5, "unknown-key"),
    ),
    (
        "duplicate-section",
        {
            "a.yaml": "system: {timezone: UTC}\n",
            "b.yaml": "dialer: {lines: 1}\nsystem: {timezone: UTC}\n",
        },
        ("b.yaml", 2, 1, "duplicate-section"),
    ),
    (
        "env-unset",
        {
            "case.yaml": """\
        phones:
          - {number: "2001", password: "${NOT_SET_ANYWHERE}"}
        """
        },
        ("case.yaml", 2, 32, "env-unset"),
    ),
    (
        "duplicate-number",
        {
            "case.yaml": """\
        menus:
          - number: "1001"
            say: A menu with the number of a phone
        """
        },
        ("case.yaml", 2, 13, "duplicate-number"),
    ),
    (
        "duplicate-id",
        {
            "case.yaml": """\
        trunks:
          - {name: rt, endpoint: PJSIP/other}
        """
        },
        ("case.yaml", 2, 12, "duplicate-id"),
    ),
    (
        "reserved-number",
        {
            "case.yaml": """\
        phones:
          - {number: "1*234", password: long-enough-secret}
        """
        },
        ("case.yaml", 2, 14, "reserved-number"),
    ),
    (
        "number-not-quoted",
        {
            "case.yaml": """\
        queues:
          - number: "93000"
            members: ["1001", 1002]
        """
        },
        ("case.yaml", 3, 23, "number-not-quoted"),
    ),
    (
        "unknown-goto",
        {
            "case.yaml": """\
        rules:
          - {number: "90000", goto: "55555"}
        """
        },
        ("case.yaml", 2, 29, "unknown-goto"),
    ),
    (
        "unknown-member",
        {
            "case.yaml": """\
        queues:
          - number: "93000"
            members:
              - "1001"
              - "7777"
        """
        },
        ("case.yaml", 5, 9, "unknown-member"),
    ),
    (
        "unknown-playlist",
        {
            "case.yaml": """\
        transfer:
          playlist: no-such-playlist
        """
        },
        ("case.yaml", 2, 13, "unknown-playlist"),
    ),
    (
        "unknown-audio",
        {
            "case.yaml": """\
        playlists:
          - id: hold
            items:
              - audio: nothing
        """
        },
        ("case.yaml", 4, 16, "unknown-audio"),
    ),
    (
        "unknown-trunk",
        {
            "case.yaml": """\
        tests:
          - name: leaves through a trunk that does not exist
            to: "+79001234567"
            expect: {ends: trunk nope}
        """
        },
        ("case.yaml", 4, 13, "unknown-trunk"),
    ),
    (
        "missing-audio-file",
        {
            "sub__case.yaml": """\
        audio:
          - id: song
            file: sounds/song.mp3
        """
        },
        ("sub/case.yaml", 3, 11, "missing-audio-file"),
    ),
    (
        "bad-regex",
        {
            "case.yaml": """\
        menus:
          - number: "91100"
            entry: true
            say: Enter the case number
            on:
              - {digits: '*[0-9]*#', goto: "1001"}
        """
        },
        ("case.yaml", 6, 18, "bad-regex"),
    ),
    (
        "bad-hours",
        {
            "case.yaml": """\
        rules:
          - number: "90000"
            hours: ["09:00-11:00", "15:00-25:00"]
            goto: "1001"
        """
        },
        ("case.yaml", 3, 28, "bad-hours"),
    ),
    (
        "bad-day",
        {
            "case.yaml": """\
        rules:
          - number: "90000"
            days: [mon, tues]
            goto: "1001"
        """
        },
        ("case.yaml", 3, 17, "bad-day"),
    ),
    (
        "empty-callers",
        {
            "case.yaml": """\
        rules:
          - number: "90000"
            callers: []
            goto: "1001"
        """
        },
        ("case.yaml", 3, 14, "empty-callers"),
    ),
    (
        "sqlite-relative-path",
        {
            "case.yaml": """\
        system:
          database: sqlite:///var/lib/astpbx/astpbx.db
        """
        },
        ("case.yaml", 2, 13, "sqlite-relative-path"),
    ),
    (
        "bad-time",
        {
            "case.yaml": """\
        tests:
          - name: the thirtieth of February
            to: "1001"
            at: "2026-02-30 10:00"
            expect: {ends: phone 1001}
        """
        },
        ("case.yaml", 4, 9, "bad-time"),
    ),
    (
        "unknown-timezone",
        {
            "case.yaml": """\
        system:
          timezone: Europe/Moskva
        """
        },
        ("case.yaml", 2, 13, "unknown-timezone"),
    ),
    (
        "timeout-not-positive",
        {
            "case.yaml": """\
        menus:
          - number: "95000"
            entry: true
            say: Goodbye
            on:
              - {timeout: 0, goto: "1001"}
        """
        },
        ("case.yaml", 6, 19, "timeout-not-positive"),
    ),
    (
        "rule-loop",
        {
            "case.yaml": """\
        rules:
          - {number: "92000", days: [mon], goto: "90000"}
          - {number: "90000", hours: ["09:00-18:00"], goto: "92000"}
        """
        },
        ("case.yaml", 3, 53, "rule-loop"),
    ),
    (
        "unreachable-menu",
        {
            "case.yaml": """\
        menus:
          - number: "94000"
            say: Nobody sends calls here
        """
        },
        ("case.yaml", 2, 13, "unreachable-menu"),
    ),
    (
        "scenario-needs-input",
        {
            "case.yaml": """\
        menus:
          - number: "91000"
            say: Press 1 for the case status
            entry: true
            on:
              - {key: "1", goto: "91110"}
          - number: "91110"
            scenario: case_status
        """
        },
        ("case.yaml", 6, 26, "scenario-needs-input"),
    ),
    (
        "exactly-one",
        {
            "case.yaml": """\
        menus:
          - number: "94000"
            entry: true
            say: Hello
            audio: roxette
        """
        },
        ("case.yaml", 5, 5, "exactly-one"),
    ),
    (
        "duplicate-handler",
        {
            "case.yaml": """\
        menus:
          - number: "94000"
            entry: true
            say: Press 1
            on:
              - {key: "1", goto: "1001"}
              - {key: "1", goto: "1002"}
        """
        },
        ("case.yaml", 7, 9, "duplicate-handler"),
    ),
    (
        "queue-without-members",
        {
            "case.yaml": """\
        queues:
          - number: "93000"
            members: []
        """
        },
        ("case.yaml", 3, 14, "queue-without-members"),
    ),
    (
        "trunk-shadows-internal",
        {
            "case.yaml": """\
        trunks:
          - {name: city, match: '\\d{4}', endpoint: PJSIP/city}
        """
        },
        ("case.yaml", 2, 25, "trunk-shadows-internal"),
    ),
    (
        "weak-secret",
        {
            "case.yaml": """\
        phones:
          - {number: "2001", password: "2001x"}
        """
        },
        ("case.yaml", 2, 32, "weak-secret"),
    ),
]

# Rules that a config cannot trigger: they report astpbx's own failures or the machine's.
UNTRIGGERABLE = {"internal-error", "file-unreadable"}


def test_base_config_is_clean(write_config: WriteConfig) -> None:
    assert check_dir(write_config()).problems == []


@pytest.mark.parametrize(("rule_id", "files", "expected"), CASES, ids=[c[0] for c in CASES])
def test_rule_reports_at_the_place(
    write_config: WriteConfig,
    rule_id: str,
    files: dict[str, str],
    expected: tuple[str, int, int, str],
) -> None:
    directory = write_config(**files)
    found = located(check_dir(directory), directory)
    assert expected in found, f"{rule_id}: expected {expected}, got {found}"
    assert RULES[rule_id].level.value in {"error", "warning"}


def test_every_rule_has_a_case() -> None:
    covered = {case[0] for case in CASES} | UNTRIGGERABLE
    assert covered == set(RULES)


def test_file_unreadable_is_reported(write_config: WriteConfig, tmp_path: Path) -> None:
    directory = write_config()
    (directory / "dangling.yaml").symlink_to(tmp_path / "gone.yaml")
    found = located(check_dir(directory), directory)
    assert ("dangling.yaml", 1, 1, "file-unreadable") in found
