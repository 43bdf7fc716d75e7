"""`astpbx simulate` (one call) and `astpbx test` (the config's own call-flow tests)."""

from __future__ import annotations

import enum
import json
from datetime import datetime
from typing import Annotated

import typer

from ast_pbx.cli.common import config_timezone, load_valid
from ast_pbx.config.compile import parse_local_time
from ast_pbx.core.scenarios import FixtureDirectory
from ast_pbx.core.simulator import Outcome
from ast_pbx.core.simulator import simulate as run_simulation
from ast_pbx.core.testing import TestResult, local_moment, run_test
from ast_pbx.errors import EXIT_OK, EXIT_PROBLEMS, UsageError


class Format(enum.StrEnum):
    text = "text"
    json = "json"


ConfigArg = Annotated[
    str,
    typer.Argument(
        metavar="CONFIG", help="Config directory (or one file); it must pass `astpbx check`."
    ),
]


def _at(text: str | None, config_tz: object) -> datetime:
    if text is None:
        return datetime.now(tz=config_tz)  # type: ignore[arg-type]
    moment = parse_local_time(text)
    if moment is None:
        raise UsageError(f"--at '{text}' is not a date and time YYYY-MM-DD HH:MM")
    return local_moment(moment, config_tz)  # type: ignore[arg-type]


def _print_outcome(outcome: Outcome) -> None:
    for offset, step in outcome.steps:
        where = f"  ({step.where})" if step.where is not None else ""
        typer.echo(f"{offset:7.1f} s  {step.describe()}{where}")
    typer.echo(f"visits: {' '.join(outcome.visits)}")
    typer.echo(f"ends: {outcome.ends}")


def simulate(
    config_path: ConfigArg,
    to: Annotated[str, typer.Option("--to", help="The number called.")],
    caller: Annotated[
        str | None,
        typer.Option("--from", help="The caller's number (rules with callers match on it)."),
    ] = None,
    at: Annotated[
        str | None,
        typer.Option(
            "--at",
            metavar="'YYYY-MM-DD HH:MM'",
            help="Local time of the call in the system timezone. Default: now.",
        ),
    ] = None,
    input_text: Annotated[
        str,
        typer.Option(
            "--input",
            metavar="'1 *123# w20'",
            help="DTMF presses separated by spaces; wN waits N seconds.",
        ),
    ] = "",
    output_format: Annotated[
        Format, typer.Option("--format", "-f", help="text: one line per step; json: one document.")
    ] = Format.text,
) -> None:
    """Walk one call through the configuration, offline, and print each decision.

    Prompts take no time; keys right after reaching a menu are pressed while its prompt
    plays. When the input is used up the caller stays silent until the call reaches a
    phone, a trunk or a queue, or hangs up. Scenarios find nothing in the directory.
    """
    config = load_valid(config_path)
    tz = config_timezone(config)
    start = _at(at, tz)
    try:
        outcome = run_simulation(
            config,
            to=to,
            caller=caller,
            at=start,
            tz=tz,
            input_text=input_text,
            directory=FixtureDirectory(),
        )
    except ValueError as exc:
        raise UsageError(f"--input: {exc}") from exc
    if output_format is Format.json:
        typer.echo(json.dumps(outcome.as_dict(), ensure_ascii=False, indent=2))
        return
    typer.echo(
        f"call to {to} from {caller or 'an unknown number'} at {start:%Y-%m-%d %H:%M} ({tz})"
    )
    _print_outcome(outcome)


def _report_failure(result: TestResult) -> None:
    typer.echo(f"FAILED {result.test.name}  ({result.test.where})")
    for failure in result.failures:
        typer.echo(f"    {failure}")
    if result.outcome is not None:
        typer.echo(f"    path: {' → '.join(result.outcome.visits)} → {result.outcome.ends}")


def test(config_path: ConfigArg) -> None:
    """Run the config's `tests:` through the call-flow core; exit 1 if any fails."""
    config = load_valid(config_path)
    if not config.tests:
        typer.echo(f"{config_path}: no tests: section")
        raise typer.Exit(EXIT_OK)
    tz = config_timezone(config)
    now = datetime.now(tz=tz)
    results = [run_test(config, t, tz, now) for t in config.tests]
    typer.echo("".join("." if r.passed else "F" for r in results))
    for result in results:
        if not result.passed:
            _report_failure(result)
    failed = sum(1 for r in results if not r.passed)
    typer.echo(f"{len(results) - failed} passed, {failed} failed")
    raise typer.Exit(EXIT_PROBLEMS if failed else EXIT_OK)


def register(app: typer.Typer) -> None:
    app.command()(simulate)
    app.command()(test)
