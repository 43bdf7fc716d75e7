"""The call-flow graph of a config: every place that sends a call to a number."""

from __future__ import annotations

from dataclasses import dataclass

from ast_pbx.config.configuration import Config
from ast_pbx.config.model import Menu, Queue
from ast_pbx.config.problems import Where


@dataclass(frozen=True)
class Edge:
    source: str  # the number the call leaves, or "trunk NAME" for an inbound call
    target: str
    via: str  # "key 1", "digits", "timeout", "rule", "inbound"
    where: Where  # where the target is written
    label: str  # for messages: "key 1 of menu 90000", "the rule for 92000"


def _handler_edges(owner: Menu | Queue) -> list[Edge]:
    found = []
    for handler in owner.handlers:
        if handler.goto is None:
            continue
        via = f"key {handler.key}" if handler.kind == "key" else handler.kind
        found.append(
            Edge(owner.number, handler.goto, via, handler.at("goto"), f"{via} of {owner.label}")
        )
    return found


def edges(config: Config) -> list[Edge]:
    found = [
        Edge(f"trunk {t.name}", t.inbound, "inbound", t.at("inbound"), f"inbound of trunk {t.name}")
        for t in config.trunks
        if t.inbound is not None
    ]
    for owner in config.handler_owners:
        found += _handler_edges(owner)
    found += [
        Edge(r.number, r.goto, "rule", r.at("goto"), f"the rule for {r.number}")
        for r in config.rules
        if r.goto is not None
    ]
    return found
