"""`astpbx plan` (what would change) and `astpbx apply` (make it so)."""

from __future__ import annotations

from typing import Annotated

import typer

from ast_pbx.applying import Plan, apply_plan, make_plan
from ast_pbx.cli.common import load_valid
from ast_pbx.errors import EXIT_OK

# `plan` exits 2 when there are changes, as `terraform plan -detailed-exitcode` does, so
# that scripts can tell "nothing to do" from "something to apply". Usage errors are 2 too.
EXIT_CHANGES = 2

ConfigArg = Annotated[
    str,
    typer.Argument(
        metavar="CONFIG",
        help="Config directory (or one file); it must pass `astpbx check`, and every "
        "${VAR} without a default must be set.",
    ),
]


def _show(plan: Plan) -> None:
    for line in plan.lines():
        typer.echo(line)


def plan(config_path: ConfigArg) -> None:
    """Show what `astpbx apply` would change, without changing anything.

    Lists, with + (add), ~ (change) and - (remove): the sections of the generated
    Asterisk files (pjsip_astpbx.conf, extensions_astpbx.conf; passwords shown as ***),
    the phones, trunks, menus, queues, rules, playlists, audio and users against what
    the last apply recorded in <paths.data>/applied.json, the recordings still to
    convert and the Asterisk modules to reload.

    Exit status: 0 no changes, 2 changes to apply, 1 invalid config or another error.
    """
    config = load_valid(config_path, need_env=True)
    result = make_plan(config, config_path)
    _show(result)
    typer.echo(result.summary())
    raise typer.Exit(EXIT_CHANGES if result.has_changes else EXIT_OK)


def apply(config_path: ConfigArg) -> None:
    """Write Asterisk's side of the config and reload only what changed.

    Refuses a config with errors. Writes pjsip_astpbx.conf and extensions_astpbx.conf
    atomically into system.asterisk.config_dir, converts recordings into the audio
    directory, reloads res_pjsip.so and/or pbx_config.so over ARI when their file
    changed, then records what was applied in <paths.data>/applied.json. Running it
    again changes nothing.

    Exit status: 0 applied (or nothing to do), 1 invalid config, a file that cannot be
    written, or Asterisk not reloaded ("files written; reload failed: …": run apply
    again once Asterisk is reachable).
    """
    config = load_valid(config_path, need_env=True)
    result = make_plan(config, config_path)
    _show(result)
    apply_plan(result, config, typer.echo)
    typer.echo(result.summary(applied=True))


def register(app: typer.Typer) -> None:
    app.command()(plan)
    app.command()(apply)
