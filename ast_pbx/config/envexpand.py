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


def expand_tree(data: Any, env: Mapping[str, str], unset_level: Level) -> list[Problem]:
    """Expand every string value in place; problems for unset variables."""
    problems: list[Problem] = []
    for container, key, text in list(walk_strings(data)):
        if "${" not in text:
            continue
        expanded, unset = expand_string(text, env)
        container[key] = expanded
        if isinstance(container, LMap) and isinstance(key, str):
            container.templated.add(key)
        where = position_of(container, key) or Where("?")
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
