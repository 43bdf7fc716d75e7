"""`astpbx simulate` and `astpbx test` as users run them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tests.conftest import EXAMPLE
from tests.test_cli import astpbx

TUESDAY = "2026-03-03 10:00"
MONDAY = "2026-03-02 10:00"


def simulated(*args: str) -> dict[str, object]:
    result = astpbx("simulate", str(EXAMPLE), "--format", "json", *args)
    assert result.returncode == 0, result.stderr
    document: dict[str, object] = json.loads(result.stdout)
    return document


def test_key_2_reaches_the_queue() -> None:
    outcome = simulated("--to", "90000", "--input", "2", "--at", TUESDAY)
    assert outcome["visits"] == ["90000", "92000"]
    assert outcome["ends"] == "queue 92000"


def test_on_monday_the_rule_overrides_the_queue() -> None:
    outcome = simulated("--to", "90000", "--input", "2", "--at", MONDAY)
    assert outcome["visits"] == ["90000", "92000", "95000"]
    steps = outcome["steps"]
    assert isinstance(steps, list)
    rule = next(s for s in steps if s["step"] == "rule")
    assert rule["number"] == "92000" and rule["goto"] == "95000"
    assert rule["where"].endswith("rules.yaml:13:5")


def test_text_output_names_the_lines_that_decided() -> None:
    result = astpbx("simulate", str(EXAMPLE), "--to", "90000", "--input", "w20", "--at", TUESDAY)
    lines = result.stdout.splitlines()
    assert lines[0] == "call to 90000 from an unknown number at 2026-03-03 10:00 (Europe/Moscow)"
    assert any("timeout after 15 s → 92000" in line and "menus.yaml:19:9" in line for line in lines)
    assert lines[-2:] == ["visits: 90000 92000", "ends: queue 92000"]


def test_simulate_refuses_bad_input_and_invalid_configs() -> None:
    bad_at = astpbx("simulate", str(EXAMPLE), "--to", "90000", "--at", "tomorrow")
    assert bad_at.returncode == 2 and "--at 'tomorrow'" in bad_at.stderr
    bad_input = astpbx("simulate", str(EXAMPLE), "--to", "90000", "--input", "1 two")
    assert bad_input.returncode == 2 and "'two'" in bad_input.stderr
    invalid = astpbx("simulate", "tests/data/broken", "--to", "90000")
    assert invalid.returncode == 1
    assert "error [bad-regex]" in invalid.stderr
    assert "Traceback" not in invalid.stderr


def test_example_tests_pass() -> None:
    result = astpbx("test", str(EXAMPLE))
    assert result.returncode == 0, result.stdout
    assert result.stdout.splitlines()[-1] == "21 passed, 0 failed"


def test_example_tests_fail_when_the_config_breaks(tmp_path: Path) -> None:
    broken = tmp_path / "mfc"
    shutil.copytree(EXAMPLE, broken)
    rules = broken / "rules.yaml"
    rules.write_text(rules.read_text().replace("days: [mon]", "days: [tue]"))
    result = astpbx("test", str(broken))
    assert result.returncode == 1
    out = result.stdout
    assert "FAILED main menu, key 2 reaches the operator queue on Tuesday" in out
    assert "ends: expected queue 92000, got hangup" in out
    assert "visits: expected 90000 92000, got 90000 92000 95000" not in out  # a prefix
    assert "path: 90000 → 92000 → 95000 → hangup" in out
    assert out.splitlines()[-1].endswith("failed")
    assert not out.splitlines()[-1].endswith(" 0 failed")
