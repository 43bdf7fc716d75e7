"""What the loader and the linter report: a problem at a place in a file."""

from __future__ import annotations

import enum
from dataclasses import dataclass


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


@dataclass(frozen=True)
class Problem:
    where: Where
    level: Level
    rule: str
    message: str

    def sort_key(self) -> tuple[str, int, int, str, str]:
        return (self.where.file, self.where.line, self.where.col, self.rule, self.message)

    def __str__(self) -> str:
        return f"{self.where}: {self.level.value} [{self.rule}] {self.message}"


def error(where: Where, rule: str, message: str) -> Problem:
    return Problem(where, Level.ERROR, rule, message)


def warning(where: Where, rule: str, message: str) -> Problem:
    return Problem(where, Level.WARNING, rule, message)
