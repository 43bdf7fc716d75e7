"""Database fixtures of the storage tests: SQLite (a temporary file) and PostgreSQL (a
scratch database), each migrated or empty.

Import them into a test module:
`from tests.storage_fixtures import database_fixture, postgres_url_fixture, url_fixture`
(with `# noqa: F401`). The functions are named `…_fixture` and the fixtures by `name=`,
so a test's `database` parameter does not shadow an imported name (ruff F811).
PostgreSQL tests are marked `postgres` and skipped only if the server is not there.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from ast_pbx.storage.db import Database, open_database

ADMIN_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/test"


@pytest.fixture(scope="session", name="postgres_url")
def postgres_url_fixture() -> Iterator[str]:
    """A fresh database for the whole test session, dropped at the end."""
    admin = sa.create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"astpbx_test_{secrets.token_hex(6)}"
    try:
        with admin.connect() as connection:
            connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
            # Sessions far from UTC: times must still come back in UTC.
            zone = f"ALTER DATABASE \"{name}\" SET timezone TO 'Asia/Vladivostok'"
            connection.execute(sa.text(zone))
    except sa.exc.OperationalError as error:
        admin.dispose()
        pytest.skip(f"PostgreSQL unreachable at {ADMIN_URL}: {error.orig}")
    try:
        # The bare scheme, as in a config: astpbx must choose psycopg2 by itself.
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _empty_postgres(url: str) -> None:
    """Tests share the session's database: start each from an empty schema."""
    engine = sa.create_engine(
        sa.make_url(url).set(drivername="postgresql+psycopg2"), isolation_level="AUTOCOMMIT"
    )
    with engine.connect() as connection:
        connection.execute(sa.text("DROP SCHEMA public CASCADE"))
        connection.execute(sa.text("CREATE SCHEMA public"))
    engine.dispose()


@pytest.fixture(
    name="url", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def url_fixture(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database of each kind."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'astpbx.db'}"
    postgres: str = request.getfixturevalue("postgres_url")
    _empty_postgres(postgres)
    return postgres


@pytest.fixture(name="database")
def database_fixture(url: str) -> Iterator[Database]:
    """`url` opened and migrated to the package's head."""
    with open_database(url) as database:
        database.migrate()
        yield database
