"""Rules about secrets written into the config."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ast_pbx.config.loader import Loaded
from ast_pbx.config.problems import Level
from ast_pbx.config.yamlread import LMap
from ast_pbx.lint.registry import Finding, rule

MIN_SECRET_LENGTH = 10


def _password_nodes(loaded: Loaded) -> Iterator[tuple[str, LMap, str | None]]:
    """(what, mapping holding `password`, a value the password must not equal)."""
    for item in loaded.lists.get("phones", []):
        if isinstance(item, LMap):
            yield f"phone {item.get('number')}", item, _text(item.get("number"))
    for item in loaded.lists.get("trunks", []):
        if isinstance(item, LMap):
            yield f"trunk {item.get('name')}", item, _text(item.get("username"))
    system = loaded.maps.get("system")
    for section in ("ari", "api"):
        node = system.get(section) if system is not None else None
        if isinstance(node, LMap):
            yield f"system.{section}", node, _text(node.get("username"))


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


@rule("weak-secret", Level.WARNING)
def weak_secret(loaded: Loaded) -> Iterator[Finding]:
    """
    A password written literally in the config is shorter than 10 characters or equals the
    phone number or user name it protects.

    SIP scanners on the internet try such passwords first. Passwords that come from the
    environment (`${SIP_1001}`) are not checked: keep secrets out of git that way.
    """
    for what, node, name in _password_nodes(loaded):
        password = node.get("password")
        if not isinstance(password, str) or "password" in node.templated:
            continue
        if len(password) < MIN_SECRET_LENGTH:
            yield (
                node.value_at["password"],
                f"{what}: password is shorter than {MIN_SECRET_LENGTH} characters",
            )
        elif password == name:
            yield node.value_at["password"], f"{what}: password equals the name it protects"
