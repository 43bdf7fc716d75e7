"""The tables of the astpbx database, declared once for the ORM and for Alembic.

Migrations are written against plain `sqlalchemy` types (see
`migrations/versions/`); the models add behaviour on top, such as `UtcDateTime`.
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Named constraints and indexes: the same names on SQLite and PostgreSQL, so batch
# migrations on SQLite (which rebuild tables) and later ALTERs can refer to them.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Base of every model; its metadata is what Alembic compares against."""

    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)


class UtcDateTime(sa.TypeDecorator[datetime]):
    """A timestamp that goes in aware and comes back aware, in UTC, on every backend.

    PostgreSQL keeps the zone (`timestamptz`) but returns it in the session's zone;
    SQLite keeps none at all. Storing naive UTC text on SQLite keeps string order
    equal to time order, so range queries stay correct there too.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            # A naive time is ambiguous (host zone? config zone?); refuse it here
            # rather than log calls hours off.
            raise ValueError(f"naive datetime {value.isoformat()}: pass a timezone-aware one")
        utc = value.astimezone(UTC)
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Call(Base):
    """One call as the engine saw it: from the first event of its channel to hangup."""

    __tablename__ = "calls"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    # The Asterisk channel id of the incoming leg.
    channel_id: Mapped[str] = mapped_column(sa.String(64), unique=True)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    answered_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    caller: Mapped[str | None] = mapped_column(sa.String(64), index=True)
    called: Mapped[str] = mapped_column(sa.String(64), index=True)
    # The numbers visited, in order: ["90000", "91000", "92000", "1001"].
    path: Mapped[list[str]] = mapped_column(sa.JSON, default=list)
    # How the call ended, in the config language's terms: "hangup", "phone 1001",
    # "queue 92000", "trunk rt", "unknown-number".
    outcome: Mapped[str | None] = mapped_column(sa.String(64))
    # Why: "caller hung up", "menu without handlers", "rule-loop"…
    reason: Mapped[str | None] = mapped_column(sa.String(128))
    # The trunk the call came in on, if any.
    trunk: Mapped[str | None] = mapped_column(sa.String(64))
    external: Mapped[bool] = mapped_column(sa.Boolean, default=False, server_default=sa.false())
    # A hash of the config the call ran on, to explain old calls after a change.
    config_version: Mapped[str | None] = mapped_column(sa.String(64))
    # "Отметка" in the manual: a flag operators set on calls worth a second look.
    marked: Mapped[bool] = mapped_column(sa.Boolean, default=False, server_default=sa.false())
    recording: Mapped[str | None] = mapped_column(sa.String(512))
