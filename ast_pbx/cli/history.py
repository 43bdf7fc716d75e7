"""`astpbx history`: the call log of a period, as the manual's "История вызовов" shows it."""

from __future__ import annotations

import enum
import json
from datetime import datetime, tzinfo
from typing import Annotated, Any

import typer

from ast_pbx.cli.common import config_timezone, load_valid
from ast_pbx.cli.report import ConfigArg, FromOption, ToOption, local_period
from ast_pbx.storage.calls import CallLog, CallRecord
from ast_pbx.storage.reporting import open_reporting

COLUMNS = ("id", "caller", "called", "start", "end", "duration", "mark", "recording", "outcome")
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


class Format(enum.StrEnum):
    text = "text"
    json = "json"


def history(
    config_path: ConfigArg,
    first: FromOption,
    last: ToOption,
    caller: Annotated[
        str | None,
        typer.Option("--caller", metavar="FRAGMENT", help="Callers containing FRAGMENT only."),
    ] = None,
    called: Annotated[
        str | None,
        typer.Option(
            "--called", metavar="FRAGMENT", help="Numbers called containing FRAGMENT only."
        ),
    ] = None,
    marked: Annotated[bool, typer.Option("--marked", help='Marked calls ("!") only.')] = False,
    output_format: Annotated[
        Format,
        typer.Option("--format", "-f", help="text: a table; json: one document, a list of calls."),
    ] = Format.text,
    limit: Annotated[
        int, typer.Option("--limit", min=1, help="At most this many calls, the newest.")
    ] = 1000,
) -> None:
    """List the calls started in a period, newest first, in the system timezone.

    Columns: id, caller, number called, start, end, duration, mark ("!" when an operator
    marked the call), recording ("yes", "purged" when `astpbx files purge` deleted it,
    "-" for none) and outcome. When more calls match than --limit, a note on standard
    error says so.
    """
    config = load_valid(config_path)
    tz = config_timezone(config)
    start, end = local_period(first, last, tz)
    database = open_reporting(config.system.database_url)
    try:
        calls = CallLog(database).history(
            start, end, caller=caller, called=called, marked_only=marked, limit=limit + 1
        )
    finally:
        database.dispose()
    shown = calls[:limit]
    if output_format is Format.json:
        document = [_as_dict(call, tz) for call in shown]
        typer.echo(json.dumps(document, ensure_ascii=False, indent=2))
    elif not shown:
        typer.echo("no calls")
    else:
        for line in table([COLUMNS, *(_columns(call, tz) for call in shown)]):
            typer.echo(line)
        typer.echo(f"{len(shown)} {'call' if len(shown) == 1 else 'calls'}")
    if len(calls) > limit:
        typer.echo(f"more calls match: the newest {limit} are shown (see --limit)", err=True)


def table(rows: list[tuple[str, ...]]) -> list[str]:
    """Rows as columns two spaces apart, each as wide as its widest cell; characters a
    terminal would act on (a caller id from a trunk is anyone's) shown as "?"."""
    rows = [
        tuple("".join(c if c.isprintable() else "?" for c in cell) for cell in row) for row in rows
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


def recording_state(call: CallRecord) -> str:
    """ "purged", "yes" or "-"."""
    if call.recording_purged_at is not None:
        return "purged"
    return "yes" if call.recording else "-"


def _local(at: datetime | None, tz: tzinfo) -> str:
    return "-" if at is None else at.astimezone(tz).strftime(TIME_FORMAT)


def _columns(call: CallRecord, tz: tzinfo) -> tuple[str, ...]:
    duration = call.duration
    return (
        str(call.id),
        call.caller or "-",
        call.called,
        _local(call.started_at, tz),
        _local(call.ended_at, tz),
        "-" if duration is None else f"{round(duration.total_seconds())} s",
        "!" if call.marked else "",
        recording_state(call),
        call.outcome or "-",
    )


def _iso(at: datetime | None, tz: tzinfo) -> str | None:
    return None if at is None else at.astimezone(tz).isoformat()


def _as_dict(call: CallRecord, tz: tzinfo) -> dict[str, Any]:
    duration = call.duration
    return {
        "id": call.id,
        "channel_id": call.channel_id,
        "caller": call.caller,
        "called": call.called,
        "started_at": _iso(call.started_at, tz),
        "answered_at": _iso(call.answered_at, tz),
        "ended_at": _iso(call.ended_at, tz),
        "duration": None if duration is None else round(duration.total_seconds()),
        "marked": call.marked,
        "recording": call.recording,
        "recording_purged_at": _iso(call.recording_purged_at, tz),
        "path": list(call.path),
        "outcome": call.outcome,
        "reason": call.reason,
        "trunk": call.trunk,
        "external": call.external,
    }


def register(app: typer.Typer) -> None:
    app.command()(history)
