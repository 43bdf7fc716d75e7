"""Opening the database: engine, sessions, migrations — the one module that talks to it.

`open_database(url)` connects once, so a wrong or unreachable `system.database` is
reported at start-up with the URL (password masked) rather than at the first call.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from importlib.resources import files
from pathlib import Path
from types import TracebackType
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import event, exc
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.orm import Session, sessionmaker

from ast_pbx.errors import EXIT_USAGE, AstPbxError

# Seconds before giving up on a PostgreSQL server that does not answer (a firewall
# dropping packets would otherwise hang start-up for minutes).
CONNECT_TIMEOUT = 10
# Any constant shared by all astpbx processes: the key of the advisory lock that keeps
# two engines starting at once from running the same migration twice.
MIGRATION_LOCK = 0x61737470  # "astp"


class StorageError(AstPbxError):
    """The database cannot be opened, reached or migrated, or refused a statement."""

    exit_code = EXIT_USAGE


def open_database(url: str) -> Database:
    """A `Database` for a SQLAlchemy URL, checked by connecting once.

    Raises StorageError naming the URL, password masked, when it cannot be used.
    """
    parsed = _parse(url)
    database = Database(_create_engine(parsed), shown_url=parsed)
    try:
        database.ping()
    except StorageError:
        database.dispose()
        raise
    return database


def migrations_dir() -> Path:
    """The Alembic scripts shipped inside the package, wherever it is installed."""
    location = files("ast_pbx.storage").joinpath("migrations")
    # Alembic reads scripts from the file system; a zipped install cannot migrate.
    if not isinstance(location, Path):
        raise StorageError(f"astpbx migrations are not on disk ({location}); install it unzipped")
    return location


class Database:
    """An engine with its sessions; `migrate()` brings the schema to the package's head."""

    def __init__(self, engine: Engine, *, shown_url: URL | None = None) -> None:
        self.engine = engine
        # Messages name the URL as the config wrote it, not as rewritten for the driver.
        self._shown_url = shown_url or engine.url
        # Objects stay readable after commit: repositories copy them out afterwards.
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    @property
    def url(self) -> str:
        """The URL with the password masked, fit for logs and error messages."""
        return self._shown_url.render_as_string(hide_password=True)

    def ping(self) -> None:
        """Connect once; StorageError if the database cannot be reached."""
        with self._errors("cannot connect"), self.engine.connect():
            pass

    def migrate(self) -> None:
        """Run Alembic `upgrade head`: create or update the tables. Idempotent."""
        with self._errors("migration failed"), self.engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(
                    sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK}
                )
            command.upgrade(self.alembic_config(connection), "head")

    def current_revision(self) -> str | None:
        """The migration the database is at (its alembic_version row); None if empty."""
        with self._errors("cannot read the schema version"), self.engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()

    def head_revision(self) -> str | None:
        """The newest migration shipped in this package."""
        return ScriptDirectory.from_config(self.alembic_config()).get_current_head()

    def alembic_config(self, connection: Connection | None = None) -> Config:
        """An Alembic config built in code; `migrations/env.py` uses `connection`."""
        config = Config()
        # The values go through ConfigParser interpolation: "%" must be doubled.
        config.set_main_option("script_location", str(migrations_dir()).replace("%", "%%"))
        config.set_main_option("path_separator", "os")
        # New migrations are named 0002_queue_stats.py, like 0001_calls.py.
        config.set_main_option("file_template", "%%(rev)s_%%(slug)s")
        # Drafts from `alembic revision --autogenerate` come out lint-clean (ruff is a dev
        # dependency; only developers draft migrations).
        config.set_section_option("post_write_hooks", "hooks", "ruff_fix, ruff_format")
        for hook, options in {"ruff_fix": "check --fix", "ruff_format": "format"}.items():
            config.set_section_option("post_write_hooks", f"{hook}.type", "module")
            config.set_section_option("post_write_hooks", f"{hook}.module", "ruff")
            config.set_section_option(
                "post_write_hooks", f"{hook}.options", f"{options} REVISION_SCRIPT_FILENAME"
            )
        if connection is not None:
            config.attributes["connection"] = connection
        return config

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session in one transaction: committed at the end, rolled back on error."""
        with self._errors("statement failed"), self._sessions.begin() as session:
            yield session

    @contextmanager
    def connection(self) -> Iterator[Connection]:
        """A connection in one transaction, for Core statements on a hot path: the ORM
        session's bulk-statement machinery cost the engine a third of its CPU per call
        for the two writes every call makes."""
        with self._errors("statement failed"), self.engine.begin() as connection:
            yield connection

    def dispose(self) -> None:
        """Close the pooled connections."""
        self.engine.dispose()

    def __enter__(self) -> Database:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.dispose()

    @contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        """Turn driver and Alembic errors into StorageError naming the masked URL."""
        try:
            yield
        except (exc.DBAPIError, CommandError) as error:
            reason = _reason(error, self.engine.url)
            raise StorageError(f"database {self.url}: {doing}: {reason}") from error


def _parse(url: str) -> URL:
    try:
        return sa.make_url(url)
    except exc.ArgumentError:
        # `from None`: SQLAlchemy's message quotes the URL, password included.
        raise StorageError(f"not a database URL: {_mask_unparsed(url)}") from None


def _create_engine(url: URL) -> Engine:
    if url.drivername == "postgresql":
        # The driver astpbx depends on; SQLAlchemy 2.1 would pick psycopg 3 instead.
        url = url.set(drivername="postgresql+psycopg2")
    options: dict[str, Any] = {}
    if url.get_backend_name() == "sqlite":
        _make_parent_dir(url)
    else:
        # A server restart leaves dead connections in the pool; test each before use.
        options["pool_pre_ping"] = True
    libpq = url.drivername in {"postgresql+psycopg2", "postgresql+psycopg"}
    if libpq and "connect_timeout" not in url.query:
        options["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT}
    try:
        engine = sa.create_engine(url, **options)
    except (exc.ArgumentError, exc.NoSuchModuleError, ImportError) as error:
        # A typo in the dialect, or its driver is not installed.
        masked = url.render_as_string(hide_password=True)
        raise StorageError(f"unsupported database URL {masked}: {_reason(error, url)}") from None
    if url.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _make_parent_dir(url: URL) -> None:
    """SQLite creates the file but not its directory (a fresh /var/lib/astpbx)."""
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    try:
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        masked = url.render_as_string(hide_password=True)
        raise StorageError(f"database {masked}: cannot create its directory: {error}") from error


def _sqlite_pragmas(connection: DBAPIConnection, _record: object) -> None:
    cursor = connection.cursor()
    try:
        # WAL: the web pages read while the engine writes, without "database is locked".
        cursor.execute("PRAGMA journal_mode=WAL")
        # With WAL this is still safe from corruption; a power cut may lose the last
        # commits, an acceptable price for not syncing the disk on every call-log write.
        cursor.execute("PRAGMA synchronous=NORMAL")
        # SQLite enforces foreign keys only when asked, per connection; later tables use them.
        cursor.execute("PRAGMA foreign_keys=ON")
    finally:
        cursor.close()


def _reason(error: BaseException, url: URL) -> str:
    """The driver's own message on one line, the password blanked if it slipped in."""
    cause = error.orig if isinstance(error, exc.DBAPIError) and error.orig else error
    text = " ".join(str(cause).split())
    if url.password:
        text = text.replace(str(url.password), "***")
    return text


def _mask_unparsed(url: str) -> str:
    """Best-effort masking for a string SQLAlchemy could not parse."""
    scheme, sep, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not (sep and at):
        return url
    user = credentials.partition(":")[0]
    return f"{scheme}://{user}:***@{host}"
