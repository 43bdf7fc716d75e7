"""The directory port over SQL: the configured queries of `directory:` against the
information system's database, with named bound parameters only."""

from __future__ import annotations

import asyncio

import sqlalchemy as sa

from ast_pbx.config.model import Directory
from ast_pbx.core.scenarios import Answer

# The parameter each lookup binds: the case number entered, or the caller's number.
_PARAMETER = {"case_status": "case", "cases_in_work": "phone", "caller_name": "phone"}


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

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
