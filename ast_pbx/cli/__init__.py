"""The `astpbx` command line: builds the pieces, runs them, maps errors to exit codes."""

from __future__ import annotations

import os
import sys
from typing import NoReturn

import typer

from ast_pbx import __version__
from ast_pbx.cli import apply as apply_cmd
from ast_pbx.cli import callback as callback_cmd
from ast_pbx.cli import check as check_cmd
from ast_pbx.cli import files as files_cmd
from ast_pbx.cli import graph as graph_cmd
from ast_pbx.cli import history as history_cmd
from ast_pbx.cli import passwd as passwd_cmd
from ast_pbx.cli import report as report_cmd
from ast_pbx.cli import run as run_cmd
from ast_pbx.cli import sandbox as sandbox_cmd
from ast_pbx.cli import schema as schema_cmd
from ast_pbx.cli import simulate as simulate_cmd
from ast_pbx.errors import EXIT_USAGE, AstPbxError

app = typer.Typer(
    name="astpbx",
    help="Config-as-code call center for Asterisk: YAML in git, checked, applied, run over ARI.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"astpbx {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """astpbx: telephony configuration as versioned YAML, checked before it reaches Asterisk."""


check_cmd.register(app)
schema_cmd.register(app)
graph_cmd.register(app)
simulate_cmd.register(app)
run_cmd.register(app)
sandbox_cmd.register(app)
apply_cmd.register(app)
report_cmd.register(app)
history_cmd.register(app)
files_cmd.register(app)
callback_cmd.register(app)
passwd_cmd.register(app)


def main(argv: list[str] | None = None) -> NoReturn:
    """Entry point: one error handler around every command (no tracebacks for users).

    Usage errors are click's: it prints them and exits with 2 by itself.
    """
    try:
        app(args=argv, prog_name="astpbx")
    except AstPbxError as exc:
        typer.echo(f"astpbx: error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except Exception as exc:
        if os.environ.get("ASTPBX_DEBUG"):
            raise
        typer.echo(
            f"astpbx: internal error: {type(exc).__name__}: {exc} "
            "(set ASTPBX_DEBUG=1 for a traceback)",
            err=True,
        )
        sys.exit(EXIT_USAGE)
    sys.exit(0)
