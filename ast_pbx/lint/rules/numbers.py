"""Rules about numbers and ids: unique, not reserved, written as strings."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any

from ast_pbx.config.loader import Loaded
from ast_pbx.config.model import Located
from ast_pbx.config.problems import Level
from ast_pbx.config.yamlread import LMap, LSeq
from ast_pbx.lint.registry import Finding, rule

# Keys whose values are telephone numbers (or digit strings such as SIP user names and
# personnel numbers, where YAML would drop leading zeros), and keys whose lists hold numbers.
NUMBER_KEYS = frozenset({"number", "goto", "inbound", "to", "from", "username", "login"})
NUMBER_LIST_KEYS = frozenset({"members", "callers", "visits"})
# Of those, the keys whose values are digit strings of the number pattern (not the SIP user
# names and logins): a negative integer there has no quoted form, the schema refuses it.
_NEVER_NEGATIVE = (NUMBER_KEYS | NUMBER_LIST_KEYS) - {"username", "login"}
# An operator binds a phone to themselves by dialing 1*NNNNN (the manual's "Привязать").
BIND_CODE = re.compile(r"1\*[0-9]*")


def _first_seen(items: Iterable[tuple[str, str, Located]], field: str) -> Iterator[Finding]:
    """The second and later items with a key already seen, naming the first."""
    seen: dict[str, tuple[str, Located]] = {}
    for key, what, item in items:
        if key not in seen:
            seen[key] = (what, item)
            continue
        first_what, first = seen[key]
        yield (
            item.at(field),
            f"{what} {key} is already defined as {first_what} {key} at {first.at(field)}",
        )


@rule("duplicate-number", Level.ERROR)
def duplicate_number(loaded: Loaded) -> Iterator[Finding]:
    """
    Two phones, menus or queues have the same number, or a phone and a menu collide.

    A number names exactly one thing that a call can reach; the second definition would
    never be reached. Reported at the second one, naming the first.
    """
    config = loaded.config
    yield from _first_seen(
        [(p.number, "phone", p) for p in config.phones]
        + [(m.number, "menu", m) for m in config.menus]
        + [(q.number, "queue", q) for q in config.queues],
        "number",
    )


@rule("duplicate-id", Level.ERROR)
def duplicate_id(loaded: Loaded) -> Iterator[Finding]:
    """
    Two trunks, audio recordings, playlists, users or tests share a name, id or login.
    """
    config = loaded.config
    yield from _first_seen([(t.name, "trunk", t) for t in config.trunks], "name")
    yield from _first_seen([(a.id, "audio", a) for a in config.audio], "id")
    yield from _first_seen([(p.id, "playlist", p) for p in config.playlists], "id")
    yield from _first_seen([(u.login, "user", u) for u in config.users], "login")
    yield from _first_seen([(t.name, "test", t) for t in config.tests], "name")


@rule("reserved-number", Level.ERROR)
def reserved_number(loaded: Loaded) -> Iterator[Finding]:
    """
    A phone, menu or queue number starts with `1*`, which operators dial to bind a phone
    to themselves (`1*NNNNN`, shown on their page). Calls to it would never reach the item.
    """
    config = loaded.config
    for item in config.numbered:
        if BIND_CODE.fullmatch(item.number):
            yield (
                item.at("number"),
                f"number {item.number} is reserved: 1*… binds an operator's phone",
            )


@rule("number-not-quoted", Level.WARNING)
def number_not_quoted(loaded: Loaded) -> Iterator[Finding]:
    """
    A telephone number is written as a YAML integer instead of a quoted string.

    YAML reads `number: 0123` as 123 and `callers: [+7918...]` as an integer without the
    `+`: the number astpbx sees is not the one written. Quote numbers: `number: "0123"`.
    (A negative integer is no number at all: an error, `schema`.)
    """
    for parsed in loaded.parsed:
        yield from _unquoted(parsed.data)


def _unquoted(node: Any) -> Iterator[Finding]:
    if isinstance(node, LMap):
        for key, value in node.items():
            if key in NUMBER_KEYS and _quotable(key, value):
                yield node.value_at[key], _quote_hint(value)
            elif key in NUMBER_LIST_KEYS and isinstance(value, LSeq):
                yield from (
                    (w, _quote_hint(v))
                    for v, w in zip(value, value.item_at, strict=True)
                    if _quotable(key, v)
                )
            else:
                yield from _unquoted(value)
    elif isinstance(node, LSeq):
        for item in node:
            yield from _unquoted(item)


def _quotable(key: str, value: Any) -> bool:
    """An integer that quoting makes a valid value of `key`."""
    if not isinstance(value, int) or isinstance(value, bool):
        return False
    return value >= 0 or key not in _NEVER_NEGATIVE


def _quote_hint(value: int) -> str:
    return f"number {value} is not quoted: write \"{value}\" (YAML drops a leading '+' or '0')"
