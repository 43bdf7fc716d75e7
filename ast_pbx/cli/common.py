"""What several commands share: loading a config that must be valid, its timezone."""

from __future__ import annotations

from datetime import tzinfo

import typer

from ast_pbx.config.configuration import Config
from ast_pbx.errors import ConfigInvalid, UsageError
from ast_pbx.files import write_atomically
from ast_pbx.lint.linter import load_for_use


def load_valid(path: str, *, need_env: bool = False) -> Config:
    """The config at `path`, or ConfigInvalid after printing its errors to stderr.

    Warnings are not shown here: `astpbx check` is the place for them.
    """
    try:
        return load_for_use(path, need_env=need_env).config
    except ConfigInvalid as exc:
        for problem in exc.problems:
            typer.echo(str(problem), err=True)
        raise


def config_timezone(config: Config) -> tzinfo:
    """The system timezone of the config, or the host's when it names none."""
    return config.system.zone()


def emit(text: str, output: str | None) -> None:
    """Print `text`, or write it atomically to `output` (a failure is a usage error)."""
    if output is None:
        typer.echo(text, nl=False)
        return
    try:
        write_atomically(output, text)
    except OSError as exc:
        raise UsageError(f"cannot write {output}: {exc.strerror or exc}") from exc
