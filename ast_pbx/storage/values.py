"""Checks every repository applies to what it stores."""

from __future__ import annotations

from datetime import datetime
from typing import Any, overload

import sqlalchemy as sa


def aware(at: datetime) -> datetime:
    """`at`, refused when naive: a naive time is ambiguous (host zone? config zone?)."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"naive datetime {at.isoformat()}: pass a timezone-aware one")
    return at


class Fit:
    """Cuts text to its column's length: PostgreSQL rejects longer text, and an odd
    caller id from a trunk must not cost a call its row."""

    def __init__(self, table: Any) -> None:
        self.lengths: dict[str, int] = {
            column.name: column.type.length
            for column in table.columns
            if isinstance(column.type, sa.String) and column.type.length
        }

    @overload
    def __call__(self, column: str, value: str) -> str: ...
    @overload
    def __call__(self, column: str, value: None) -> None: ...
    @overload
    def __call__(self, column: str, value: str | None) -> str | None: ...
    def __call__(self, column: str, value: str | None) -> str | None:
        return None if value is None else value[: self.lengths[column]]
