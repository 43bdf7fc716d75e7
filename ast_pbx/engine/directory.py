"""The directory port over SQL: the configured queries of `directory:` against the
information system's database, with named bound parameters only.

`lookup` answers the call scenarios (a status, a name, a list of cases); `rows` and
`execute` serve the operator's form (applicants, their card and cases, a case, binding
a number to an applicant), each query optional: `has(name)` says whether it is there.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa

from ast_pbx.config.model import Directory
from ast_pbx.core.scenarios import Answer
from ast_pbx.errors import AstPbxError

log = logging.getLogger("astpbx.directory")

# The parameter each lookup binds: the case number entered, or the caller's number.
_PARAMETER = {"case_status": "case", "cases_in_work": "phone", "caller_name": "phone"}

# The queries of the operator's form and the parameters each binds.
FORM_QUERIES: dict[str, tuple[str, ...]] = {
    "applicants_by_phone": ("phone",),
    "applicants_by_name": ("name",),
    "applicant": ("id",),
    "applicant_cases": ("id",),
    "case_by_number": ("case",),
    "bind_phone": ("id", "phone"),
}

MAX_ROWS = 100  # rows a form query shows at most

# A row of a form query: column name → value as text ('' for NULL).
Row = dict[str, str]


class DirectoryError(AstPbxError):
    """A configured query failed: the database is unreachable or the SQL is wrong."""


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def _reason(error: sa.exc.SQLAlchemyError) -> str:
    """The first line of what the database said, without the SQL and its parameters."""
    orig = getattr(error, "orig", None)
    text = str(orig if orig is not None else error).strip()
    return text.splitlines()[0][:200] if text else type(error).__name__


class SqlDirectory:
    def __init__(self, directory: Directory) -> None:
        self.queries = dict(directory.queries)
        url = directory.url
        self._engine = sa.create_engine(url, pool_pre_ping=True) if url else None

    def lookup(self, scenario: str, key: str) -> Answer:
        sql = self.queries.get(scenario)
        parameter = _PARAMETER.get(scenario)
        if self._engine is None or sql is None or parameter is None:
            return None  # not configured: nothing is found
        with self._engine.connect() as connection:
            rows = connection.execute(sa.text(sql), {parameter: key}).fetchall()
        values = [str(row[0]) for row in rows if row and row[0] is not None]
        if scenario == "cases_in_work":
            return values
        return values[0] if len(values) == 1 else None  # exactly one, as the manual says

    async def lookup_async(self, scenario: str, key: str) -> Answer:
        return await asyncio.to_thread(self.lookup, scenario, key)

    # The operator's form

    def has(self, name: str) -> bool:
        """Whether query `name` is configured (with a database to run it on)."""
        return self._engine is not None and bool(self.queries.get(name))

    def rows(
        self, name: str, parameters: Mapping[str, Any], limit: int = MAX_ROWS
    ) -> list[Row] | None:
        """The rows of query `name` with `parameters` bound, at most `limit`; None when
        the query is not configured. Raises DirectoryError when it fails."""
        sql = self.queries.get(name)
        if self._engine is None or not sql:
            return None
        try:
            with self._engine.connect() as connection:
                result = connection.execute(sa.text(sql), dict(parameters))
                columns = list(map(str, result.keys()))
                found = result.fetchmany(limit)
        except sa.exc.SQLAlchemyError as error:
            log.error("directory query %s failed: %s", name, error)
            raise DirectoryError(f"запрос {name} не выполнен: {_reason(error)}") from error
        return [dict(zip(columns, map(_text, row), strict=False)) for row in found]

    def execute(self, name: str, parameters: Mapping[str, Any]) -> int | None:
        """Run statement `name` (an UPDATE or INSERT) in a transaction of its own; the
        rows it changed (-1 if the driver cannot tell), or None when not configured.
        Raises DirectoryError when it fails."""
        sql = self.queries.get(name)
        if self._engine is None or not sql:
            return None
        try:
            with self._engine.begin() as connection:
                result = connection.execute(sa.text(sql), dict(parameters))
                return int(result.rowcount)
        except sa.exc.SQLAlchemyError as error:
            log.error("directory statement %s failed: %s", name, error)
            raise DirectoryError(f"запрос {name} не выполнен: {_reason(error)}") from error

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
