"""`astpbx sandbox up|down|status|cli`: a throwaway Asterisk 22 for a config."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from ast_pbx import sandbox as box
from ast_pbx.cli.check import default_paths
from ast_pbx.cli.common import load_valid
from ast_pbx.errors import EXIT_OK, EXIT_PROBLEMS

HELP = (
    "A throwaway Asterisk 22 (Debian sid under chroot, needs root) serving the ARI and SIP "
    "of a config's `system` section, for demos, tests and trying astpbx out."
)

sub = typer.Typer(no_args_is_help=True, add_completion=False, rich_markup_mode=None)

CONFIG_HELP = "Config directory (or one file). Default: $ASTPBX_CONFIG, else ./config."
ConfigArg = Annotated[str | None, typer.Argument(metavar="CONFIG", help=CONFIG_HELP)]


def _sandbox(config: str | None) -> box.Sandbox:
    path = config or default_paths()[0]
    return box.sandbox_for(load_valid(path).system, config_path=path)


def _say(message: str) -> None:
    typer.echo(message, err=True)


def _describe(sandbox: box.Sandbox) -> None:
    typer.echo(f"ARI:     {sandbox.ari_url}  (user {sandbox.username}, app {sandbox.app})")
    typer.echo(f"SIP:     udp {sandbox.sip}")
    typer.echo(f"data:    {sandbox.data_dir}  (same path inside Asterisk)")
    typer.echo(f"config:  {sandbox.config_dir}  (inside: {box.CUSTOM_DIR})")
    typer.echo(f"root:    {sandbox.root}")
    typer.echo(f"log:     {sandbox.log_file}")


@sub.command()
def up(config: ConfigArg = None) -> None:
    """Start the sandbox (building its root file system once, ~1 minute); a no-op when it
    runs already. Exit 1 when Asterisk does not come up."""
    sandbox = _sandbox(config)
    result = box.up(sandbox, _say)
    if result.built_seconds is not None:
        _say(f"root file system built in {result.built_seconds:.0f} s")
    if result.already_running:
        typer.echo(f"sandbox already running (pid {result.pid}, Asterisk {result.version})")
        if result.stale_files:
            _say(
                "the config changed since it started; `astpbx sandbox down` and `up` to use: "
                + ", ".join(os.path.basename(f) for f in result.stale_files)
            )
    else:
        typer.echo(
            f"sandbox started in {result.seconds:.1f} s "
            f"(pid {result.pid}, Asterisk {result.version})"
        )
    _describe(sandbox)


@sub.command()
def down(config: ConfigArg = None) -> None:
    """Stop the sandbox and unmount what `up` mounted; a no-op when it is not running."""
    sandbox = _sandbox(config)
    stopped = box.down(sandbox, _say)
    typer.echo("sandbox stopped" if stopped else "sandbox was not running")


@sub.command()
def status(config: ConfigArg = None) -> None:
    """Whether the sandbox runs and its ARI answers. Exit 0 running, 1 not."""
    sandbox = _sandbox(config)
    state = box.status(sandbox)
    if state.running:
        answer = f"answering (Asterisk {state.version})" if state.ari_answers else "NOT answering"
        typer.echo(f"sandbox: running (pid {state.pid}), ARI {answer}")
    else:
        typer.echo("sandbox: not running")
        if state.owner_data_dir:
            typer.echo(f"         (its root runs Asterisk for data dir {state.owner_data_dir})")
    _describe(sandbox)
    typer.echo(f"built:   {'yes' if state.built else 'no (the first `up` builds it)'}")
    if state.mounts:
        typer.echo(f"mounts:  {', '.join(state.mounts)}")
    raise typer.Exit(EXIT_OK if state.running else EXIT_PROBLEMS)


@sub.command(context_settings={"allow_interspersed_args": False})
def cli(
    args: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="ARGS",
            help="An Asterisk CLI command, e.g. `core show channels` (words are joined). "
            "None: an interactive `asterisk -r`.",
        ),
    ] = None,
    config: Annotated[
        str | None, typer.Option("--config", "-c", metavar="CONFIG", help=CONFIG_HELP)
    ] = None,
) -> None:
    """Run an Asterisk CLI command in the running sandbox (`asterisk -rx`), or open its
    console. The config comes with --config here: the arguments are Asterisk's."""
    sandbox = _sandbox(config)
    if not args:
        argv = box.interactive_cli_argv(sandbox)
        os.execvp(argv[0], argv)
    result = box.run_cli(sandbox, " ".join(args))
    typer.echo(result.stdout, nl=False)
    if result.stderr:
        typer.echo(result.stderr, err=True, nl=False)
    raise typer.Exit(result.returncode)


def register(app: typer.Typer) -> None:
    app.add_typer(sub, name="sandbox", help=HELP)
