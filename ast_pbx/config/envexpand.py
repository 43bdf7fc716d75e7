"""`${VAR}` and `${VAR:-default}` in config strings, expanded from the environment.

`$${` writes a literal `${`. An unset variable without a default is kept as
written (so the rest of the value is still checked) and reported: a warning
for `check`, which runs in CI without secrets, an error for commands that
would use the value.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ast_pbx.config.problems import Level, Problem, Where
from ast_pbx.config.yamlread import LMap, position_of, walk_strings

_REFERENCE = re.compile(r"\$(\$?)\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def expand_string(text: str, env: Mapping[str, str]) -> tuple[str, list[str]]:
    """The expanded text and the names of the variables that were unset."""
    unset: list[str] = []

    def replace(match: re.Match[str]) -> str:
        escaped, name, default = match.groups()
        if escaped:
            return match.group(0)[1:]
        if name in env:
            return env[name]
        if default is not None:
            return default
        unset.append(name)
        return match.group(0)

    return _REFERENCE.sub(replace, text), unset


def expand_tree(
    data: Any,
    env: Mapping[str, str],
    unset_level: Level,
    expansions: dict[Where, tuple[str, str]] | None = None,
) -> list[Problem]:
    """Expand every string value in place; problems for unset variables.

    Each expanded value's container remembers it as written (`written_text`), and
    `expansions` gets its place: (the value expanded, the value as written). A message
    about the value shows it as written: what came from the environment may be a secret.
    """
    problems: list[Problem] = []
    for container, key, text in list(walk_strings(data)):
        if "${" not in text:
            continue
        expanded, unset = expand_string(text, env)
        container[key] = expanded
        container.written[key] = text
        if isinstance(container, LMap) and isinstance(key, str):
            container.templated.add(key)
        where = position_of(container, key) or Where("?")
        if expansions is not None and expanded != text:
            expansions[where] = (expanded, text)
        problems.extend(
            Problem(
                where,
                unset_level,
                "env-unset",
                f"environment variable {name} is not set and has no default "
                f"(write ${{{name}:-default}} to give one)",
            )
            for name in unset
        )
    return problems
