"""The call flow of a config as a graph, and its text forms (mermaid, graphviz DOT).

Pure: a `Config` in, text out. Numbers are nodes (menus, queues, the phones and outside
numbers some goto reaches, trunks, one "hang up" sink); handlers are labelled edges;
rules are dashed edges labelled with their condition, since they apply only sometimes.
Everything keeps config order so that the same config always draws the same picture.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Literal

from ast_pbx.config.configuration import Config
from ast_pbx.config.model import (
    DEFAULT_MENU_TIMEOUT,
    Handler,
    Menu,
    Phone,
    Prompt,
    Queue,
    Rule,
    Trunk,
)
from ast_pbx.config.timespec import DAYS

NodeKind = Literal["menu", "queue", "phone", "number", "trunk", "hangup"]

HANGUP = "hangup"
TEXT_LIMIT = 40  # characters of a prompt or a condition shown in a label
LIST_LIMIT = 4  # members or callers shown before "+N more"


@dataclass(frozen=True)
class Node:
    id: str  # a safe identifier in both mermaid and DOT
    kind: NodeKind
    lines: tuple[str, ...]  # the label: a title line, then details


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    label: str
    dashed: bool = False  # a rule or the implicit menu timeout: taken only sometimes


@dataclass(frozen=True)
class FlowGraph:
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]


# --- identifiers and label texts ------------------------------------------------------

_NUMBER_CHARS = {"+": "plus", "*": "star", "#": "hash"}


def _escaped(char: str) -> str:
    return f"_x{ord(char):x}_"


def number_id(number: str) -> str:
    """n_90000, n_plus79999999999; injective because letters only come from escapes."""
    return "n_" + "".join(
        c if c.isascii() and c.isdigit() else _NUMBER_CHARS.get(c) or _escaped(c) for c in number
    )


def trunk_id(name: str) -> str:
    """trunk_rt; any character but [a-z0-9] (the underscore included) is escaped."""
    return "trunk_" + "".join(
        c if c.isascii() and (c.isdigit() or c.islower()) else _escaped(c) for c in name
    )


def shorten(text: str, limit: int = TEXT_LIMIT) -> str:
    """One line of at most `limit` characters, cut at a word when there is one."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    if " " in cut[limit // 2 :]:
        cut = cut[: cut.rindex(" ")]
    return cut.rstrip(" ,.;:") + "…"


def _listed(items: Iterable[str]) -> str:
    items = list(items)
    shown = ", ".join(items[:LIST_LIMIT])
    more = len(items) - LIST_LIMIT
    return f"{shown} +{more} more" if more > 0 else shown


def _seconds(value: float) -> str:
    return f"{value:g} s"


def prompt_text(prompt: Prompt | None) -> str | None:
    if prompt is None:
        return None
    if prompt.kind == "say":
        return f"“{shorten(prompt.value, TEXT_LIMIT - 2)}”"
    return f"{prompt.kind} {prompt.value}"


def handler_label(handler: Handler) -> str:
    if handler.kind == "key":
        return f"key {handler.key}"
    if handler.kind == "digits":
        return shorten(f"digits {handler.digits.source if handler.digits else '?'}")
    seconds = DEFAULT_MENU_TIMEOUT if handler.timeout is None else handler.timeout
    return f"timeout {_seconds(seconds)}"


def _day_runs(days: Iterable[int]) -> Iterator[str]:
    ordered = sorted(days)
    start = 0
    while start < len(ordered):
        end = start
        while end + 1 < len(ordered) and ordered[end + 1] == ordered[end] + 1:
            end += 1
        if end - start >= 2:  # three days or more read better as a range
            yield f"{DAYS[ordered[start]]}-{DAYS[ordered[end]]}"
        else:
            yield from (DAYS[d] for d in ordered[start : end + 1])
        start = end + 1


def condition(rule: Rule) -> str:
    """'mon-fri 09:00-11:00, 15:00-18:00', 'callers +7918…': what makes the rule apply."""
    callers = [*sorted(rule.callers or ()), *(r.source for r in rule.caller_patterns or ())]
    parts = [f"callers {_listed(callers)}"] if callers else []
    if rule.days is not None:
        parts.append(", ".join(_day_runs(rule.days)))
    if rule.hours is not None:
        parts.append(", ".join(str(s) for s in sorted(rule.hours, key=lambda s: s.start)))
    return shorten(" ".join(parts)) if parts else "always"


# --- building the graph ---------------------------------------------------------------


def _target_id(goto: str | None) -> str:
    return HANGUP if goto is None else number_id(goto)


def _owner_edges(owner: Menu | Queue) -> list[Edge]:
    source = number_id(owner.number)
    found = [Edge(source, _target_id(h.goto), handler_label(h)) for h in owner.handlers]
    if isinstance(owner, Menu):
        if not owner.handlers:
            after = "scenario" if owner.prompt and owner.prompt.kind == "scenario" else "prompt"
            found.append(Edge(source, HANGUP, f"after {after}"))
        elif owner.timeout is None:
            found.append(Edge(source, HANGUP, f"timeout {_seconds(DEFAULT_MENU_TIMEOUT)}", True))
    return found


def _rule_edges(config: Config) -> list[Edge]:
    found = []
    for number, rules in config.rules_for.items():
        for index, rule in enumerate(rules, 1):
            prefix = f"rule {index}" if len(rules) > 1 else "rule"
            label = f"{prefix}: {condition(rule)}"
            found.append(Edge(number_id(number), _target_id(rule.goto), label, True))
    return found


def _referenced(config: Config) -> list[str]:
    """Every number some trunk, handler or rule names, in order of first mention."""
    numbers = [t.inbound for t in config.trunks]
    numbers += [h.goto for owner in config.handler_owners for h in owner.handlers]
    for rule in config.rules:
        numbers += [rule.number, rule.goto]
    return list(dict.fromkeys(n for n in numbers if n is not None))


def outbound_id(trunk: Trunk) -> str:
    """The node of calls leaving through the trunk.

    A trunk that also brings calls in gets a second node: with one, the arrows of outgoing
    calls would run into the trunk that feeds the inbound menu and read as a loop.
    """
    return trunk_id(trunk.name) + ("_out" if trunk.inbound else "")


def _outside_edges(config: Config, outside: list[str]) -> list[Edge]:
    """Where a number that is no phone, menu or queue goes when no rule applies."""
    found = []
    for number in outside:
        trunk = config.trunk_for(number)
        if trunk is not None:
            found.append(Edge(number_id(number), outbound_id(trunk), "outbound"))
        else:
            found.append(Edge(number_id(number), HANGUP, "unknown number"))
    return found


def _node(target: Menu | Queue | Phone) -> Node:
    if isinstance(target, Menu):
        details = (target.name, prompt_text(target.prompt))
        return Node(number_id(target.number), "menu", _lines(f"menu {target.number}", details))
    if isinstance(target, Queue):
        members = f"members {_listed(target.members)}" if target.members else "no members"
        lines = _lines(f"queue {target.number}", (target.name, members))
        return Node(number_id(target.number), "queue", lines)
    return Node(number_id(target.number), "phone", _lines(f"phone {target.number}", (target.name,)))


def _lines(title: str, details: Iterable[str | None]) -> tuple[str, ...]:
    return (title, *(shorten(d) for d in details if d))


def _unique(nodes: Iterable[Node]) -> tuple[Node, ...]:
    found: dict[str, Node] = {}
    for node in nodes:
        found.setdefault(node.id, node)  # duplicate numbers are a check error; first wins
    return tuple(found.values())


def build(config: Config) -> FlowGraph:
    """The call-flow graph of a config: nodes and edges in config order."""
    referenced = _referenced(config)
    outside = [n for n in referenced if n not in config.targets]
    edges = [
        *(
            Edge(trunk_id(t.name), number_id(t.inbound), "inbound")
            for t in config.trunks
            if t.inbound
        ),
        *(edge for owner in config.handler_owners for edge in _owner_edges(owner)),
        *_rule_edges(config),
        *_outside_edges(config, outside),
    ]
    nodes = [
        *(Node(trunk_id(t.name), "trunk", (f"trunk {t.name}",)) for t in config.trunks),
        *(_node(owner) for owner in config.handler_owners),
        *(_node(p) for p in config.phones if p.number in referenced),
        *(Node(number_id(n), "number", (f"number {n}",)) for n in outside),
    ]
    ends = {edge.target for edge in edges}
    nodes += [
        Node(outbound_id(t), "trunk", (f"trunk {t.name}",))
        for t in config.trunks
        if t.inbound and outbound_id(t) in ends
    ]
    if HANGUP in ends:
        nodes.append(Node(HANGUP, "hangup", ("hang up",)))
    return FlowGraph(_unique(nodes), tuple(edges))


# --- mermaid ----------------------------------------------------------------------------

# Mermaid entity codes: a quote would end the string, '#' starts an entity, the rest is HTML.
_MERMAID_ESCAPES = str.maketrans(
    {'"': "#quot;", "#": "#35;", "<": "#lt;", ">": "#gt;", "&": "#amp;", "|": "#124;", "`": "#96;"}
)
_MERMAID_SHAPES: dict[NodeKind, tuple[str, str]] = {
    "menu": ("[", "]"),
    "queue": ("[[", "]]"),
    "phone": ("([", "])"),
    "number": ("[/", "/]"),
    "trunk": ("{{", "}}"),
    "hangup": ("((", "))"),
}


def _mermaid_text(lines: Iterable[str]) -> str:
    return '"' + "<br/>".join(line.translate(_MERMAID_ESCAPES) for line in lines) + '"'


def to_mermaid(graph: FlowGraph) -> str:
    """A `flowchart LR` for GitHub and other mermaid renderers."""
    out = ["flowchart LR"]
    for node in graph.nodes:
        opening, closing = _MERMAID_SHAPES[node.kind]
        out.append(f"    {node.id}{opening}{_mermaid_text(node.lines)}{closing}")
    for edge in graph.edges:
        arrow = "-.->" if edge.dashed else "-->"
        out.append(f"    {edge.source} {arrow}|{_mermaid_text([edge.label])}| {edge.target}")
    return "\n".join(out) + "\n"


# --- graphviz DOT -----------------------------------------------------------------------

_DOT_SHAPES: dict[NodeKind, str] = {
    "menu": "shape=box, style=rounded",
    "queue": "shape=box3d",
    "phone": "shape=ellipse",
    "number": "shape=parallelogram",
    "trunk": "shape=hexagon",
    "hangup": "shape=octagon",
}


def dot_string(text: str) -> str:
    """A DOT quoted string; a backslash would otherwise start an escape such as \\n or \\N."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_dot(graph: FlowGraph) -> str:
    """A graphviz digraph, left to right; `dot -Tsvg` draws it."""
    out = [
        "digraph callflow {",
        "    rankdir=LR;",
        '    node [fontname="Helvetica,Arial,sans-serif", fontsize=10];',
        '    edge [fontname="Helvetica,Arial,sans-serif", fontsize=9];',
    ]
    for node in graph.nodes:
        label = dot_string("\n".join(node.lines)).replace("\n", "\\n")
        out.append(f"    {node.id} [{_DOT_SHAPES[node.kind]}, label={label}];")
    for edge in graph.edges:
        style = ", style=dashed" if edge.dashed else ""
        out.append(f"    {edge.source} -> {edge.target} [label={dot_string(edge.label)}{style}];")
    out.append("}")
    return "\n".join(out) + "\n"
