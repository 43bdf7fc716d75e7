"""Operators as queue members: which phone each sits at, and whether they take calls.

An operator binds to a phone by dialling, from it, a short code the web page showed
them (`new_code`, then `bind` when the engine hears the code). A phone serves one
operator at a time: binding it takes it from whoever had it.

Sync and short, like `calls.CallLog`: each method is one transaction, safe to call from
threads. Callers get frozen `OperatorRecord`s. Times must be timezone-aware.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Session

from ast_pbx.storage.db import Database, StorageError
from ast_pbx.storage.models import Operator
from ast_pbx.storage.values import Fit, aware

CODE_TTL = timedelta(minutes=10)
CODE_DIGITS = 5
# Transactions run again when a concurrent one took the same unique value first (a
# code, a phone, a new login's row); more than a couple of such races in a row means
# something else is wrong.
_ATTEMPTS = 5

T = TypeVar("T")


@dataclass(frozen=True)
class OperatorRecord:
    """An operator's row; see `models.Operator` for what each field means."""

    login: str
    phone: str | None
    accepting: bool
    bind_code: str | None
    code_expires_at: datetime | None
    bound_at: datetime | None

    @classmethod
    def of(cls, operator: Operator) -> OperatorRecord:
        return cls(
            login=operator.login,
            phone=operator.phone,
            accepting=operator.accepting,
            bind_code=operator.bind_code,
            code_expires_at=operator.code_expires_at,
            bound_at=operator.bound_at,
        )


class OperatorStore:
    """Repository of the `operators` table over a `Database`."""

    def __init__(self, database: Database) -> None:
        self._database = database

    def all(self) -> list[OperatorRecord]:
        """Every operator, by login."""
        with self._database.session() as session:
            query = sa.select(Operator).order_by(Operator.login)
            return [OperatorRecord.of(operator) for operator in session.scalars(query)]

    def get(self, login: str) -> OperatorRecord | None:
        """The operator of a login, or None."""
        with self._database.session() as session:
            operator = session.get(Operator, login)
            return None if operator is None else OperatorRecord.of(operator)

    def new_code(self, login: str, now: datetime, ttl: timedelta = CODE_TTL) -> str:
        """A fresh bind code for `login`, live until `now + ttl`; it replaces the
        login's previous code. The operator's row is created if missing."""
        login, now = _login(login), _aware(now)
        if ttl <= timedelta(0):
            raise ValueError(f"bind code lifetime must be positive, not {ttl}")
        return _retrying(lambda: self._new_code(login, now, now + ttl))

    def bind(self, code: str, phone: str, now: datetime) -> str | None:
        """Bind the operator whose live code this is to `phone`; their login, or None if
        no live code matches. Whoever had the phone loses it; the code is used up."""
        phone, now = _phone(phone), _aware(now)
        return _retrying(lambda: self._bind(code, phone, now))

    def unbind(self, login: str) -> bool:
        """Free the operator's phone. False if there is no such operator."""
        update = (
            sa.update(Operator)
            .where(Operator.login == login)
            .values(phone=None, bound_at=None)
            .execution_options(synchronize_session=False)
        )
        with self._database.session() as session:
            result: CursorResult[Any] = session.execute(update)  # type: ignore[assignment]
            return bool(result.rowcount)

    def set_accepting(self, login: str, accepting: bool) -> bool:
        """Flip the "accept queue calls" switch; the row is created if missing.

        Always True: a bool like the other setters, though no login is unknown here.
        """
        login = _login(login)

        def change() -> bool:
            with self._database.session() as session:
                _row(session, login).accepting = accepting
            return True

        return _retrying(change)

    def login_of_phone(self, phone: str) -> str | None:
        """The operator bound to a phone now, or None."""
        query = sa.select(Operator.login).where(Operator.phone == _phone(phone))
        with self._database.session() as session:
            return session.scalar(query)

    def _new_code(self, login: str, now: datetime, expires: datetime) -> str:
        with self._database.session() as session:
            # Expired codes still hold their value in the unique column: free them first.
            session.execute(_clear_expired(now))
            live = set(session.scalars(sa.select(Operator.bind_code)))
            code = _fresh_code(live)
            operator = _row(session, login)
            operator.bind_code = code
            operator.code_expires_at = expires
            return code

    def _bind(self, code: str, phone: str, now: datetime) -> str | None:
        with self._database.session() as session:
            session.execute(_clear_expired(now))
            query = sa.select(Operator.login).where(Operator.bind_code == code).with_for_update()
            login = session.scalar(query)
            if login is None:
                return None
            # The previous holder loses the phone first: `phone` is unique, checked per
            # statement, so two rows may not hold it even for a moment.
            session.execute(
                sa.update(Operator)
                .where(Operator.phone == phone, Operator.login != login)
                .values(phone=None, bound_at=None)
                .execution_options(synchronize_session=False)
            )
            session.execute(
                sa.update(Operator)
                .where(Operator.login == login)
                .values(phone=phone, bind_code=None, code_expires_at=None, bound_at=now)
                .execution_options(synchronize_session=False)
            )
            return login


def _row(session: Session, login: str) -> Operator:
    """The operator's row, locked, created (unflushed) if missing."""
    operator = session.get(Operator, login, with_for_update=True)
    if operator is None:
        operator = Operator(login=login, accepting=True)
        session.add(operator)
    return operator


def _clear_expired(now: datetime) -> sa.Update:
    return (
        sa.update(Operator)
        .where(Operator.code_expires_at <= now)
        .values(bind_code=None, code_expires_at=None)
        .execution_options(synchronize_session=False)
    )


def _fresh_code(taken: set[str | None]) -> str:
    """A random code not in `taken`: `secrets`, since a guessed code binds a phone."""
    space = 10**CODE_DIGITS
    if len(taken - {None}) >= space:
        raise StorageError(f"all {space} bind codes are in use")
    while True:
        code = f"{secrets.randbelow(space):0{CODE_DIGITS}d}"
        if code not in taken:
            return code


def _retrying(transaction: Callable[[], T]) -> T:
    """Run `transaction` again when it lost a race for a unique value (a concurrent
    transaction took the same code, phone or new login first), a few times at most."""
    for _ in range(_ATTEMPTS - 1):
        try:
            return transaction()
        except StorageError as error:
            if not isinstance(error.__cause__, sa.exc.IntegrityError):
                raise
    return transaction()


def _login(login: str) -> str:
    # Unlike a phone number, a login is an identity: cutting it could merge two users.
    if not login or len(login) > _LENGTHS["login"]:
        raise ValueError(f"operator login must be 1 to {_LENGTHS['login']} characters: {login!r}")
    return login


_aware = aware
_LENGTHS = Fit(Operator.__table__).lengths


def _phone(phone: str) -> str:
    """Cut to the column's length: PostgreSQL rejects longer text, and a phone number
    from Asterisk is whatever the dialplan passed."""
    return phone[: _LENGTHS["phone"]]
