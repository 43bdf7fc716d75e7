"""The call-flow graph of a config: every place that sends a call to a number."""

from __future__ import annotations

from dataclasses import dataclass

from ast_pbx.config.configuration import Config
from ast_pbx.config.model import Handler
from ast_pbx.config.problems import Where


@dataclass(frozen=True)
class Edge:
    source: str  # the number the call leaves, or "trunk NAME" for an inbound call
    target: str
    via: str  # "key 1", "digits", "timeout", "rule", "inbound"
    where: Where  # where the target is written


def _handler_edges(source: str, handlers: tuple[Handler, ...]) -> list[Edge]:
    return [
        Edge(source, h.goto, f"key {h.key}" if h.kind == "key" else h.kind, h.at("goto"))
        for h in handlers
        if h.goto is not None
    ]


def edges(config: Config) -> list[Edge]:
    found = [
        Edge(f"trunk {t.name}", t.inbound, "inbound", t.at("inbound"))
        for t in config.trunks
        if t.inbound is not None
    ]
    for menu in config.menus:
        found += _handler_edges(menu.number, menu.handlers)
    for queue in config.queues:
        found += _handler_edges(queue.number, queue.handlers)
    found += [
        Edge(r.number, r.goto, "rule", r.at("goto")) for r in config.rules if r.goto is not None
    ]
    return found
