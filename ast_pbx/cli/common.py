"""What several commands share: loading a config that must be valid, its timezone."""

from __future__ import annotations

from datetime import tzinfo
from typing import Any

import typer

from ast_pbx.config.configuration import Config
from ast_pbx.config.loader import load
from ast_pbx.config.problems import Level, Where
from ast_pbx.config.yamlread import LMap
from ast_pbx.errors import ConfigInvalid, UsageError
from ast_pbx.files import write_atomically
from ast_pbx.lint.linter import load_for_use, run_rules


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


def load_system(path: str) -> Config:
    """The config at `path` for a command that needs only its `system` section (how to
    reach ARI and the database): errors elsewhere are only noted, because the running
    engine keeps serving its last good config and a probe must still work. Errors in
    the system section itself are refused as `load_valid` refuses them."""
    loaded = load(path, need_env=False)
    errors = [p for p in run_rules(loaded) if p.level is Level.ERROR]
    system = loaded.maps.get("system")
    inside = [p for p in errors if system is not None and _within(p.where, system)]
    if inside or (errors and system is None):
        for problem in inside or errors:
            typer.echo(str(problem), err=True)
        raise ConfigInvalid(f"{path}: the system section has errors", tuple(inside or errors))
    if errors:
        typer.echo(
            f"note: {path} has {len(errors)} error(s) (`astpbx check` shows them); "
            "the running engine keeps its last good config",
            err=True,
        )
    return loaded.config


def _within(where: Where, section: LMap) -> bool:
    """Whether a problem stands in `section` (its file, from its first to its last line)."""
    if where.file != section.where.file:
        return False
    return section.where.line <= where.line <= _last_line(section)


def _last_line(node: Any) -> int:
    if isinstance(node, LMap):
        lines = [w.line for w in (*node.key_at.values(), *node.value_at.values())]
        return max([node.where.line, *lines, *(_last_line(v) for v in node.values())])
    if isinstance(node, list):
        return max([0, *(_last_line(v) for v in node)])
    return 0


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
