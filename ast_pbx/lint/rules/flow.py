"""Rules about the call flow: what each menu, queue and trunk leads to."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ast_pbx.config.configuration import Config
from ast_pbx.config.loader import Loaded
from ast_pbx.config.model import INPUT_SCENARIOS, Handler
from ast_pbx.config.problems import Level
from ast_pbx.config.yamlread import LMap
from ast_pbx.lint.graph import Edge, edges
from ast_pbx.lint.registry import Finding, rule

MAX_SHOWN = 3


def _roots(config: Config, found: list[Edge]) -> set[str]:
    """Where calls come in: trunk inbound numbers and `entry: true` menus; when a config
    has neither (an internal-only IVR), the menus that nothing else sends calls to."""
    roots = {t.inbound for t in config.trunks if t.inbound is not None}
    roots |= {m.number for m in config.menus if m.entry}
    if not roots:
        targets = {e.target for e in found}
        roots = {m.number for m in config.menus if m.number not in targets}
    return roots


@rule("unreachable-menu", Level.WARNING, whole=True)
def unreachable_menu(loaded: Loaded) -> Iterator[Finding]:
    """
    No call can reach this menu from a trunk's `inbound` number or an `entry: true` menu,
    through handlers and rules.

    Usually a menu that lost its last `goto`. Internal callers can still dial it; mark a
    menu meant to be dialed directly with `entry: true`.
    """
    config = loaded.config
    found = edges(config)
    leaving: dict[str, list[str]] = {}
    for edge in found:
        leaving.setdefault(edge.source, []).append(edge.target)
    reached: set[str] = set()
    todo = list(_roots(config, found))
    while todo:
        number = todo.pop()
        if number not in reached:
            reached.add(number)
            todo.extend(leaving.get(number, ()))
    for menu in config.menus:
        if menu.number not in reached:
            yield (
                menu.at("number"),
                f"menu {menu.number} is not reached from any trunk or "
                "entry menu (add entry: true if callers dial it directly)",
            )


@rule("scenario-needs-input", Level.WARNING, whole=True)
def scenario_needs_input(loaded: Loaded) -> Iterator[Finding]:
    """
    A menu whose scenario works on the digits the caller entered (`case_status`,
    `dial_entered`, `echo_digits`) is reached by something other than a `digits` handler.

    Only a `digits` handler passes the digits it collected to its target; reached by a key,
    a timeout, a rule or a trunk, the scenario gets no input.
    """
    config = loaded.config
    needs = {
        m.number: m.prompt.value
        for m in config.menus
        if m.prompt is not None
        and m.prompt.kind == "scenario"
        and m.prompt.value in INPUT_SCENARIOS
    }
    for edge in edges(config):
        if edge.target in needs and edge.via != "digits":
            yield (
                edge.where,
                f"{edge.label} reaches menu {edge.target}, whose "
                f"scenario {needs[edge.target]} needs the digits entered; use a digits handler",
            )
    for menu in config.menus:
        if menu.number in needs and menu.entry:
            yield (
                menu.at("entry"),
                f"menu {menu.number} is an entry menu, but its scenario "
                f"{needs[menu.number]} needs digits entered before it",
            )


def _count(node: LMap, keys: tuple[str, ...]) -> list[str]:
    return [k for k in keys if k in node]


def _exactly_one(node: Any, keys: tuple[str, ...], what: str) -> Iterator[Finding]:
    if not isinstance(node, LMap):
        return
    present = _count(node, keys)
    if len(present) == 1:
        return
    wanted = ", ".join(keys)
    if not present:
        yield node.where, f"{what} needs one of {wanted}"
    else:
        yield (
            node.key_at[present[1]],
            f"{what} has {' and '.join(present)}; give exactly one of {wanted}",
        )


@rule("exactly-one", Level.ERROR)
def exactly_one(loaded: Loaded) -> Iterator[Finding]:
    """
    An item that must say one thing says none or several: a menu needs exactly one of
    `say`, `audio`, `scenario`; a handler exactly one of `key`, `digits`, `timeout`; a
    playlist item one of `audio`, `say`, `scenario`; a trunk either `host` or `endpoint`.
    """
    lists = loaded.lists
    for menu in lists.get("menus", []):
        label = f"menu {menu.get('number')}" if isinstance(menu, LMap) else "menu"
        yield from _exactly_one(menu, ("say", "audio", "scenario"), label)
        for handler in _handlers(menu):
            yield from _exactly_one(handler, ("key", "digits", "timeout"), f"handler of {label}")
    for queue in lists.get("queues", []):
        for handler in _handlers(queue):
            yield from _exactly_one(
                handler, ("key", "digits", "timeout"), f"handler of queue {queue.get('number')}"
            )
    for playlist in lists.get("playlists", []):
        items = playlist.get("items") if isinstance(playlist, LMap) else None
        for item in items if isinstance(items, list) else ():
            yield from _exactly_one(
                item, ("audio", "say", "scenario"), f"item of playlist {playlist.get('id')}"
            )
    for trunk in lists.get("trunks", []):
        yield from _exactly_one(
            trunk,
            ("host", "endpoint"),
            f"trunk {trunk.get('name') if isinstance(trunk, LMap) else ''}",
        )


def _handlers(owner: Any) -> list[Any]:
    handlers = owner.get("on") if isinstance(owner, LMap) else None
    return handlers if isinstance(handlers, list) else []


def _handler_key(handler: Handler) -> str:
    if handler.kind == "key":
        return f"key {handler.key}"
    if handler.kind == "digits" and handler.digits is not None:
        return f"digits '{handler.digits.source}'"
    return "timeout"


@rule("duplicate-handler", Level.WARNING)
def duplicate_handler(loaded: Loaded) -> Iterator[Finding]:
    """
    A menu or queue has two handlers for the same key, the same digits regex, or two
    timeouts. Only the first ever fires.
    """
    config = loaded.config
    for owner in config.handler_owners:
        seen: dict[str, Handler] = {}
        for handler in owner.handlers:
            key = _handler_key(handler)
            if key in seen:
                yield (
                    handler.where,
                    f"{owner.label} handles {key} twice; only the first "
                    f"(at line {seen[key].where.line}) fires",
                )
            else:
                seen[key] = handler


@rule("queue-without-members", Level.WARNING)
def queue_without_members(loaded: Loaded) -> Iterator[Finding]:
    """A queue has no members: its callers wait until a handler moves them on, or forever."""
    for queue in loaded.config.queues:
        if not queue.members and "members" in queue.fields:
            yield queue.at("members"), f"queue {queue.number} has no members"


@rule("trunk-shadows-internal", Level.WARNING)
def trunk_shadows_internal(loaded: Loaded) -> Iterator[Finding]:
    """
    A trunk's `match` also matches the number of a phone, menu or queue.

    Internal numbers are resolved first, so the call stays inside; but the pattern says
    such numbers leave through the trunk, which is either a mistake in the pattern or a
    number that callers meant for the outside can never reach.
    """
    config = loaded.config
    for trunk in config.trunks:
        if trunk.match is None or trunk.match.pattern is None:
            continue
        hits = [n for n in config.targets if trunk.match.fullmatch(n)]
        if hits:
            shown = ", ".join(hits[:MAX_SHOWN]) + (
                f" and {len(hits) - MAX_SHOWN} more" if len(hits) > MAX_SHOWN else ""
            )
            yield (
                trunk.match.where,
                f"trunk {trunk.name} match '{trunk.match.source}' also "
                f"matches internal number {shown}",
            )
