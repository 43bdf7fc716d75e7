"""`astpbx report`: one of the six reports of the manual, as an Excel file."""

from __future__ import annotations

import contextlib
import os
import tempfile
from datetime import date, datetime, tzinfo
from typing import Annotated

import typer

from ast_pbx.cli.common import config_timezone, load_valid
from ast_pbx.errors import UsageError
from ast_pbx.reports import REPORTS, Built, make, period, validate
from ast_pbx.storage.reporting import open_reporting

ConfigArg = Annotated[
    str,
    typer.Argument(
        metavar="CONFIG",
        help="Config directory (or one file): its system section names the database, "
        "the directories and the timezone.",
    ),
]
FromOption = Annotated[
    str,
    typer.Option(
        "--from", metavar="YYYY-MM-DD", help="First day of the period, in the system timezone."
    ),
]
ToOption = Annotated[
    str,
    typer.Option("--to", metavar="YYYY-MM-DD", help="Last day of the period (included)."),
]


def parse_day(text: str, option: str) -> date:
    """A local date given on the command line; UsageError naming `option` otherwise."""
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise UsageError(f"{option} {text!r} is not a date YYYY-MM-DD") from None


def local_period(first: str, last: str, tz: tzinfo) -> tuple[datetime, datetime]:
    """[start, end) of the local days --from to --to, both included."""
    start, end = parse_day(first, "--from"), parse_day(last, "--to")
    if end < start:
        raise UsageError(f"--to {last} is before --from {first}")
    return period(start, end, tz)


def report(
    name: Annotated[
        str,
        typer.Argument(
            metavar="NAME",
            help="calls, answered, missed, waits, dialer or callbacks.",
            show_default=False,
        ),
    ],
    config_path: ConfigArg,
    first: FromOption,
    last: ToOption,
    output: Annotated[
        str | None,
        typer.Option(
            "--output",
            "-o",
            metavar="FILE",
            help="The workbook to write. Default: NAME-FROM-TO.xlsx here.",
        ),
    ] = None,
    operator: Annotated[
        str | None,
        typer.Option("--operator", metavar="LOGIN", help="answered: one operator's calls only."),
    ] = None,
    number: Annotated[
        str | None,
        typer.Option(
            "--number",
            metavar="FRAGMENT",
            help="waits, dialer: numbers containing FRAGMENT only.",
        ),
    ] = None,
) -> None:
    """Write one of the six reports of the manual as an Excel workbook (.xlsx).

    calls: calls received, handled in the IVR only, handled by operators, and placed by
    the dialer, per day; answered: calls answered per queue and operator; missed: calls
    nobody answered in a queue; waits: waits and talks in the queues; dialer: the
    dialer's calls; callbacks: callback requests per operator. Times are in the system
    timezone; --from and --to are days there, both included. Prints the file and its
    number of rows.
    """
    if name not in REPORTS:
        raise typer.BadParameter(
            f"no report {name!r}; the reports are: {', '.join(REPORTS)}", param_hint="NAME"
        )
    validate(name, operator=operator, number=number)
    config = load_valid(config_path)
    tz = config_timezone(config)
    start, end = local_period(first, last, tz)
    path = output or f"{name}-{first}-{last}.xlsx"
    database = open_reporting(config.system.database_url)
    try:
        built = make(name, database, start, end, tz, operator=operator, number=number)
    finally:
        database.dispose()
    save(built, path)
    typer.echo(f"{path}: {built.rows} {'row' if built.rows == 1 else 'rows'}")


def save(built: Built, path: str) -> None:
    """Write the workbook through a temporary file beside `path`, then rename it."""
    directory = os.path.dirname(path) or "."
    try:
        handle, temporary = tempfile.mkstemp(dir=directory, prefix=".astpbx-", suffix=".xlsx")
        os.close(handle)
        try:
            built.workbook.save(temporary)
            os.chmod(temporary, 0o666 & ~_umask())  # mkstemp made it 0600
            os.replace(temporary, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from exc


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def register(app: typer.Typer) -> None:
    app.command()(report)
