"""Signing in to the web pages: whose password, checked how, and the lock-out.

A user signs in with the login and password of the external information system: the
hash comes from `directory.queries.authenticate` (SQL with `:login` whose first row's
first column is the hash) when the directory has the login, else from the user's own
`password_hash` in `users:`. Either way the login must be in `users:`, which gives the
role. Hashes are argon2 (`$argon2…`) or bcrypt (`$2a$`, `$2b$`, `$2y$`); any other
hash refuses the user (and logs why, naming the login, never the hash).

After `LOCK_AFTER` failures of a login within `LOCK_WINDOW` its sign-in is refused for
`LOCK_FOR`, whatever the password; a success clears the login's failures. Unknown
logins count failures too, and are checked against a dummy hash, so that neither the
answer nor its time tells which logins exist.

`Authenticator.sign_in` is blocking (hashing, databases): call it in a worker thread.
"""

from __future__ import annotations

import functools
import logging
import math
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import bcrypt
import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from ast_pbx.config.configuration import Config
from ast_pbx.config.model import User
from ast_pbx.storage.db import Database
from ast_pbx.storage.logins import LoginFailures

log = logging.getLogger("astpbx.web.auth")

LOCK_AFTER = 5
LOCK_WINDOW = timedelta(minutes=15)
LOCK_FOR = timedelta(minutes=15)
MAX_PASSWORD = 1024  # characters: longer is not a password, and hashing it costs
QUERY = "authenticate"  # the name of the directory query giving a login's hash
BCRYPT_PREFIXES = ("$2a$", "$2b$", "$2y$")
BCRYPT_MAX = 72  # bytes bcrypt reads; older libraries silently cut the rest

WRONG = "Неверный логин или пароль."
EMPTY = "Введите логин и пароль."

_hasher = PasswordHasher()


def hash_password(text: str) -> str:
    """An argon2 hash of `text`, for `password_hash` in `users:`."""
    return _hasher.hash(text)


def verify_password(stored: str, password: str, login: str) -> bool:
    """Whether `password` matches the `stored` hash; False for a hash of an unknown
    kind (logged, naming `login`)."""
    if stored.startswith("$argon2"):
        try:
            return _hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return False
    if stored.startswith(BCRYPT_PREFIXES):
        try:
            return bcrypt.checkpw(password.encode()[:BCRYPT_MAX], stored.encode())
        except ValueError:  # a malformed bcrypt hash
            log.warning("user %s: the bcrypt password hash is malformed", login)
            return False
    log.warning("user %s: the password hash is neither argon2 nor bcrypt: refused", login)
    return False


@functools.cache
def _dummy_hash() -> str:
    return hash_password(secrets.token_hex(16))


@dataclass(frozen=True)
class SignIn:
    """The answer to a sign-in: the user, or why not (Russian, for the page)."""

    user: User | None
    message: str | None = None
    locked_until: datetime | None = None


class Authenticator:
    """Checks sign-ins against the directory and `users:`, and keeps the failures."""

    def __init__(self, database: Database, config: Callable[[], Config]) -> None:
        self.failures = LoginFailures(database)
        self.config = config
        self._directory: tuple[str, sa.Engine] | None = None
        self._lock = threading.Lock()

    def sign_in(self, login: str, password: str, *, now: datetime, address: str | None) -> SignIn:
        login = login.strip()
        if not login or not password:
            return SignIn(None, EMPTY)
        locked = self.locked_until(login, now)
        if locked is not None:
            minutes = max(1, math.ceil((locked - now).total_seconds() / 60))
            message = (
                f"Вход заблокирован на {_minutes(LOCK_FOR)} после {LOCK_AFTER} неудачных "
                f"попыток. Попробуйте снова через {minutes} мин."
            )
            return SignIn(None, message, locked)
        user = self._check(login, password)
        if user is None:
            self.failures.record(login, now, address)
            log.info("sign-in of %s from %s failed", login, address or "?")
            return SignIn(None, WRONG)
        self.failures.clear(login)
        log.info("%s signed in from %s", login, address or "?")
        return SignIn(user)

    def locked_until(self, login: str, now: datetime) -> datetime | None:
        """The end of the login's lock-out, if it is locked out now."""
        latest = self.failures.latest(login, LOCK_AFTER)
        if len(latest) < LOCK_AFTER or latest[0] - latest[-1] > LOCK_WINDOW:
            return None
        until = latest[0] + LOCK_FOR
        return until if now < until else None

    def close(self) -> None:
        with self._lock:
            if self._directory is not None:
                self._directory[1].dispose()
                self._directory = None

    def _check(self, login: str, password: str) -> User | None:
        config = self.config()
        user = next((u for u in config.users if u.login == login), None)
        stored = None if user is None else self._hash_of(config, user)
        if len(password) > MAX_PASSWORD or user is None or stored is None:
            verify_password(_dummy_hash(), password, login)  # the same time as a real check
            return None
        return user if verify_password(stored, password, login) else None

    def _hash_of(self, config: Config, user: User) -> str | None:
        """The directory's hash of the user, else their own `password_hash`."""
        sql = config.directory.queries.get(QUERY)
        if config.directory.url and sql:
            try:
                found = self._directory_hash(config.directory.url, sql, user.login)
            except Exception as error:
                # The information system is down: users with a local hash still get in.
                log.warning("directory query %s for %s failed: %s", QUERY, user.login, error)
            else:
                if found is not None:
                    return found
        return user.password_hash

    def _directory_hash(self, url: str, sql: str, login: str) -> str | None:
        with self._engine(url).connect() as connection:
            row = connection.execute(sa.text(sql), {"login": login}).first()
        if row is None or row[0] is None:
            return None
        value = row[0]
        return (
            bytes(value).decode()
            if isinstance(value, bytes | bytearray | memoryview)
            else str(value)
        )

    def _engine(self, url: str) -> sa.Engine:
        """One pooled engine for the directory's URL (a new one when the config's changes)."""
        with self._lock:
            if self._directory is None or self._directory[0] != url:
                if self._directory is not None:
                    self._directory[1].dispose()
                self._directory = (url, sa.create_engine(url, pool_pre_ping=True))
            return self._directory[1]


def _minutes(span: timedelta) -> str:
    return f"{int(span.total_seconds() // 60)} минут"
