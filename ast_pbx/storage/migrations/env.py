"""Alembic environment of astpbx: run by `Database.migrate()`, never by an alembic.ini.

The caller passes an open connection in `config.attributes["connection"]`, so the
migration runs in the caller's transaction (and under its PostgreSQL advisory lock).
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from ast_pbx.storage.models import Base


def run_migrations(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        # SQLite cannot ALTER most things; batch mode rebuilds the table instead,
        # so later migrations can change columns on both backends alike.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if context.is_offline_mode() or not isinstance(connection, Connection):
    raise RuntimeError(
        "astpbx migrations run online with a connection: use ast_pbx.storage.db.Database"
    )
run_migrations(connection)
