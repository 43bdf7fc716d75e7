"""`astpbx schema`: the JSON Schema of config files, for editors and other validators."""

from __future__ import annotations

from typing import Annotated

import typer

from ast_pbx.cli.common import emit
from ast_pbx.config.schema import schema_text


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
    emit(schema_text(), output)


def register(app: typer.Typer) -> None:
    app.command()(schema)
