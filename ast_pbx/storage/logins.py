"""Failed sign-ins to the web pages, for the lock-out after repeated failures.

The policy (how many failures, how long a lock) is the web's (`web.auth`); this module
only keeps the failures: per login, with the moment and the client's address.

Sync and short, like `calls.CallLog`: each method is one transaction, safe to call from
threads. Times must be timezone-aware; they come back in UTC.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa

from ast_pbx.storage.db import Database
from ast_pbx.storage.models import LoginFailure
from ast_pbx.storage.values import Fit, aware

# Failures older than this are deleted as new ones come: the lock-out looks back
# minutes, and an attacker's attempts must not grow the table for ever.
KEEP = timedelta(days=1)


class LoginFailures:
    """Repository of the `login_failures` table over a `Database`."""

    def __init__(self, database: Database) -> None:
        self._database = database

    def record(self, login: str, at: datetime, address: str | None = None) -> None:
        """Note a failed sign-in of `login` (known or not) from `address`."""
        at = aware(at)
        insert = sa.insert(LoginFailure).values(
            login=_fit("login", login), at=at, address=_fit("address", address)
        )
        with self._database.session() as session:
            session.execute(sa.delete(LoginFailure).where(LoginFailure.at < at - KEEP))
            session.execute(insert)

    def latest(self, login: str, count: int) -> list[datetime]:
        """The moments of the login's last `count` failures, newest first."""
        query = (
            sa.select(LoginFailure.at)
            .where(LoginFailure.login == _fit("login", login))
            .order_by(LoginFailure.at.desc(), LoginFailure.id.desc())
            .limit(count)
        )
        with self._database.session() as session:
            return list(session.scalars(query))

    def clear(self, login: str) -> int:
        """Forget the login's failures (a successful sign-in); how many there were."""
        delete = sa.delete(LoginFailure).where(LoginFailure.login == _fit("login", login))
        with self._database.session() as session:
            return int(session.execute(delete).rowcount)  # type: ignore[attr-defined]


_fit = Fit(LoginFailure.__table__)
