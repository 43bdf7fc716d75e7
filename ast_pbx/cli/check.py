"""`astpbx check` and `astpbx rules`."""

from __future__ import annotations

import enum
import os
from typing import Annotated

import typer

from ast_pbx.config.problems import Level
from ast_pbx.errors import EXIT_OK, EXIT_PROBLEMS
from ast_pbx.lint.linter import check as run_check
from ast_pbx.lint.output import FORMATS
from ast_pbx.lint.registry import RULES

DEFAULT_CONFIG = "config"


class Format(enum.StrEnum):
    text = "text"
    json = "json"
    github = "github"


def default_paths() -> list[str]:
    return [os.environ.get("ASTPBX_CONFIG", DEFAULT_CONFIG)]


def check(
    paths: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="PATH",
            help="Config directories (every *.yaml/*.yml below, merged) or single files; each is "
            "checked as one configuration. Default: $ASTPBX_CONFIG, else ./config.",
        ),
    ] = None,
    output_format: Annotated[
        Format,
        typer.Option(
            "--format",
            "-f",
            help="text: path:line:col lines; json: one document; github: workflow annotations.",
        ),
    ] = Format.text,
    strict: Annotated[
        bool, typer.Option("--strict", help="Warnings fail the check too (exit 1).")
    ] = False,
) -> None:
    """Validate configurations: JSON Schema plus semantic rules; report every problem.

    Exit status: 0 clean, 1 problems found (errors; with --strict also warnings),
    2 usage error (a path that does not exist, a bad option).
    """
    reports = [run_check(path) for path in paths or default_paths()]
    typer.echo(FORMATS[output_format.value](reports))
    errors = sum(r.count(Level.ERROR) for r in reports)
    warnings = sum(r.count(Level.WARNING) for r in reports)
    failed = errors > 0 or (strict and warnings > 0)
    raise typer.Exit(EXIT_PROBLEMS if failed else EXIT_OK)


def rules(
    rule_id: Annotated[
        str | None,
        typer.Argument(metavar="[RULE]", help="Show the full documentation of one rule."),
    ] = None,
) -> None:
    """List the rules of `astpbx check`, or explain one."""
    if rule_id is not None:
        found = RULES.get(rule_id)
        if found is None:
            raise typer.BadParameter(
                f"no rule '{rule_id}'; `astpbx rules` lists them", param_hint="RULE"
            )
        typer.echo(f"{found.id} ({found.level.value})\n\n{found.doc}")
        return
    width = max(len(r) for r in RULES)
    for item in sorted(RULES.values(), key=lambda r: r.id):
        typer.echo(f"{item.id:<{width}}  {item.level.value:<7}  {item.summary}")


def register(app: typer.Typer) -> None:
    app.command()(check)
    app.command()(rules)
