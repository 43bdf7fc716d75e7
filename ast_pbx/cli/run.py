"""`astpbx run`: the engine, until SIGINT or SIGTERM."""

from __future__ import annotations

import asyncio
import enum
import logging
import signal
import time
from typing import Annotated

import typer

from ast_pbx.cli.common import load_system
from ast_pbx.config.configuration import Config
from ast_pbx.core.simulator import parse_input
from ast_pbx.engine import logs
from ast_pbx.engine.main import prepare_version, serve
from ast_pbx.engine.version import ConfigVersion
from ast_pbx.errors import EXIT_PROBLEMS, ConfigInvalid, UsageError
from ast_pbx.storage.calls import CallLog, CallRecord
from ast_pbx.storage.db import open_database
from ast_pbx.testcall import place_call

log = logging.getLogger("astpbx")


class LogFormat(enum.StrEnum):
    text = "text"
    json = "json"


async def _serve(path: str, version: ConfigVersion) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    # Calls are handed over on a stop, for the next engine (a restart, an upgrade);
    # an engine that stopped leading stands by again.
    while not await serve(path, version, stop, hand_over=True):
        stop.clear()
        version = prepare_version(path) if _valid(path) else version


def _valid(path: str) -> bool:
    try:
        prepare_version(path)
    except ConfigInvalid:
        return False
    return True


def run(
    config_path: Annotated[
        str,
        typer.Argument(
            metavar="CONFIG", help="Config directory (or one file); it must pass `astpbx check`."
        ),
    ],
    log_format: Annotated[
        LogFormat,
        typer.Option("--log-format", help="text: lines for people; json: one object a line."),
    ] = LogFormat.text,
) -> None:
    """Run calls on Asterisk: connect to ARI and handle every call of the Stasis app.

    The config is watched: a valid change is loaded for the next calls (calls already
    up finish on the version they started with); an invalid one is logged with file and
    line and the running version stays.

    Stop with SIGTERM or Ctrl-C: the calls stay up in Asterisk and the next `astpbx
    run` (a new version too) adopts them. A second engine on the same PostgreSQL stands
    by and takes over when this one dies.
    """
    logs.setup(log_format.value)
    try:
        version = prepare_version(config_path)
    except ConfigInvalid as exc:
        for problem in exc.problems:
            typer.echo(str(problem), err=True)
        raise
    asyncio.run(_serve(config_path, version))


def call(
    config_path: Annotated[
        str, typer.Argument(metavar="CONFIG", help="The config the running engine uses.")
    ],
    number: Annotated[str, typer.Option("--to", help="The number to call.")],
    caller: Annotated[str | None, typer.Option("--from", help="The caller's number.")] = None,
    input_text: Annotated[
        str,
        typer.Option(
            "--input",
            metavar="'1 w2 *123#'",
            help="DTMF presses separated by spaces; wN waits N seconds.",
        ),
    ] = "",
    timeout: Annotated[
        float,
        typer.Option("--timeout", help="Seconds to wait for the call to end after the input."),
    ] = 60.0,
    hang_up: Annotated[
        bool,
        typer.Option("--hang-up", help="Hang up after the input, as a caller who is done would."),
    ] = False,
) -> None:
    """Place a real test call into the running system and print the path it took.

    The call goes through Asterisk (a Local channel whose other half presses the input
    as DTMF) to the engine of `astpbx run`; the path comes from the engine's call log.
    Only the config's `system` section has to be valid (the engine keeps serving its
    last good config while the files have errors).
    Exit status: 0 the call ran and ended, 1 it was not answered or did not end.
    """
    config = load_system(config_path)
    try:
        parse_input(input_text)
    except ValueError as exc:
        raise UsageError(f"--input: {exc}") from exc
    placed = asyncio.run(place_call(config, number, caller, input_text, timeout, hang_up=hang_up))
    if not placed.answered:
        typer.echo(f"the call to {number} was not answered (is `astpbx run` running?)", err=True)
        raise typer.Exit(EXIT_PROBLEMS)
    record = _logged_call(config, placed.engine_channel)
    if record is None:
        typer.echo("the call ran but the engine's call log has no entry for it", err=True)
        raise typer.Exit(EXIT_PROBLEMS)
    typer.echo(f"visits: {' '.join(record.path)}")
    typer.echo(f"ends: {record.outcome} ({record.reason})")
    if not placed.ended:
        typer.echo(f"the call was still up after {timeout:g} s and was hung up", err=True)
        raise typer.Exit(EXIT_PROBLEMS)


def _logged_call(config: Config, channel: str) -> CallRecord | None:
    """The engine's log entry of our call (by its channel id: concurrent test calls to
    one number must not read each other's), once the engine has closed it (it writes
    the end after the channel is gone, so give it a moment)."""
    database = open_database(config.system.database_url)
    found: CallRecord | None = None
    try:
        database.migrate()
        for _ in range(50):
            found = CallLog(database).get(channel)
            if found is not None and found.ended_at is not None:
                break
            time.sleep(0.1)
    finally:
        database.dispose()
    return found


def register(app: typer.Typer) -> None:
    app.command()(run)
    app.command()(call)
