"""`tests:` entries of a config, run through the simulator and judged."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, tzinfo

from ast_pbx.config.configuration import Config
from ast_pbx.config.model import CallTest
from ast_pbx.core.scenarios import FixtureDirectory
from ast_pbx.core.simulator import Outcome, simulate


@dataclass(frozen=True)
class TestResult:
    test: CallTest
    outcome: Outcome | None
    failures: tuple[str, ...]  # empty: passed

    @property
    def passed(self) -> bool:
        return not self.failures


def local_moment(at: datetime, tz: tzinfo) -> datetime:
    """A wall-clock time in the system timezone (zoneinfo resolves DST gaps and folds)."""
    return at.replace(tzinfo=tz)


def run_test(config: Config, test: CallTest, tz: tzinfo, now: datetime) -> TestResult:
    """Run one test; a test without `at` runs at `now`."""
    directory = FixtureDirectory(test.cases, test.cases_by_phone, test.names)
    at = local_moment(test.moment, tz) if test.moment is not None else now
    try:
        outcome = simulate(
            config,
            to=test.to,
            caller=test.caller,
            at=at,
            tz=tz,
            input_text=test.input,
            directory=directory,
        )
    except ValueError as exc:
        return TestResult(test, None, (str(exc),))
    return TestResult(test, outcome, tuple(judge(test, outcome)))


def judge(test: CallTest, outcome: Outcome) -> list[str]:
    failures = []
    if test.visits is not None and outcome.visits[: len(test.visits)] != test.visits:
        failures.append(
            f"visits: expected {' '.join(test.visits)}, got {' '.join(outcome.visits) or 'nothing'}"
        )
    if test.ends is not None and outcome.ends != test.ends:
        failures.append(f"ends: expected {test.ends}, got {outcome.ends}")
    heard = outcome.heard()
    for text in test.says:
        if not any(text in said for said in heard):
            failures.append(f"says: expected to hear '{text}'")
    return failures
