"""What the loader and the linter report: a problem at a place in a file."""

from __future__ import annotations

import enum
from dataclasses import dataclass

# A value echoed in a message shows at most this many characters, a message at most
# MAX_MESSAGE: a value megabytes long must not make `check` print megabytes.
MAX_SHOWN = 80
MAX_MESSAGE = 1000


class Level(enum.Enum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, order=True)
class Where:
    """A position in a config file; line and column count from 1."""

    file: str
    line: int = 1
    col: int = 1

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


def shown(value: object, *, quote: str = "", limit: int = MAX_SHOWN) -> str:
    """`value` as a message echoes it, between `quote`s: cut past `limit` characters,
    with "…" and the full length noted after the closing quote: 'xxx…' (2000000 characters)."""
    text = value if isinstance(value, str) else str(value)
    if len(text) <= limit:
        return f"{quote}{text}{quote}"
    return f"{quote}{text[:limit]}…{quote} ({len(text)} characters)"


def quoted(value: object) -> str:
    """`'value'`, cut as `shown` cuts it."""
    return shown(value, quote="'")


@dataclass(frozen=True)
class Problem:
    where: Where
    level: Level
    rule: str
    message: str

    def __post_init__(self) -> None:
        # The last bound, for a value echoed somewhere without `shown`.
        if len(self.message) > MAX_MESSAGE:
            object.__setattr__(self, "message", shown(self.message, limit=MAX_MESSAGE))

    def sort_key(self) -> tuple[str, int, int, str, str]:
        return (self.where.file, self.where.line, self.where.col, self.rule, self.message)

    def __str__(self) -> str:
        return f"{self.where}: {self.level.value} [{self.rule}] {self.message}"


def error(where: Where, rule: str, message: str) -> Problem:
    return Problem(where, Level.ERROR, rule, message)


def warning(where: Where, rule: str, message: str) -> Problem:
    return Problem(where, Level.WARNING, rule, message)
