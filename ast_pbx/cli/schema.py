"""`astpbx schema`: the JSON Schema of config files, for editors and other validators."""

from __future__ import annotations

from typing import Annotated

import typer

from ast_pbx.config.schema import schema_text
from ast_pbx.errors import UsageError
from ast_pbx.files import write_atomically


def schema(
    output: Annotated[
        str | None,
        typer.Option(
            "--output",
            "-o",
            metavar="FILE",
            help="Write the schema to FILE (atomically) instead of printing it.",
        ),
    ] = None,
) -> None:
    """Print the JSON Schema (draft 2020-12) of one astpbx config file.

    Point yaml-language-server at it to get completion and validation while typing, e.g. a
    first line `# yaml-language-server: $schema=./astpbx.schema.json` in each config file.
    """
    text = schema_text()
    if output is None:
        typer.echo(text, nl=False)
        return
    try:
        write_atomically(output, text)
    except OSError as exc:
        raise UsageError(f"cannot write {output}: {exc.strerror or exc}") from exc


def register(app: typer.Typer) -> None:
    app.command()(schema)
