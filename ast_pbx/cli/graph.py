"""`astpbx graph`: the call flow of a configuration as mermaid, graphviz DOT or SVG."""

from __future__ import annotations

import enum
from typing import Annotated

import typer

from ast_pbx.cli.common import emit, load_valid
from ast_pbx.flowgraph import build, to_dot, to_mermaid
from ast_pbx.graphviz import render_svg


class Format(enum.StrEnum):
    mermaid = "mermaid"
    dot = "dot"
    svg = "svg"


def graph(
    config: Annotated[
        str,
        typer.Argument(
            metavar="CONFIG",
            help="The config directory (every *.yaml/*.yml below, merged) or a single file.",
        ),
    ],
    output_format: Annotated[
        Format,
        typer.Option(
            "--format",
            "-f",
            help="mermaid: a flowchart for Markdown (GitHub renders it); dot: graphviz source; "
            "svg: drawn by graphviz `dot`, which must be installed.",
        ),
    ] = Format.mermaid,
    output: Annotated[
        str | None,
        typer.Option(
            "--output",
            "-o",
            metavar="FILE",
            help="Write to FILE (atomically) instead of printing.",
        ),
    ] = None,
) -> None:
    """Draw the call flow of a configuration.

    Numbers are nodes (menus, queues, the phones and outside numbers some goto reaches,
    trunks, "hang up"); handlers are edges labelled with their key, digits or timeout.
    Dashed edges are taken only sometimes: rules, labelled with their condition, and the
    15 s hang-up of a menu without a timeout handler.

    Exit status: 0 drawn, 1 the configuration has errors, 2 usage error (a path that does
    not exist, graphviz missing for svg).
    """
    flow = build(load_valid(config))
    if output_format is Format.mermaid:
        text = to_mermaid(flow)
    else:
        text = to_dot(flow)
        if output_format is Format.svg:
            text = render_svg(text)
    emit(text, output)


def register(app: typer.Typer) -> None:
    app.command()(graph)
