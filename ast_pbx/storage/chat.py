"""The chat of the web pages: personal messages between users and broadcasts to all.

A personal message has a `recipient` and is read when its `read_at` is set; a broadcast
(`recipient` NULL) is read by a user once their `chat_reads.last_broadcast_id` reaches
it — one row per user rather than one per user and message. A user's own messages are
never unread to them.

Sync and short, like `calls.CallLog`: each method is one transaction, safe to call from
threads. Callers get frozen `ChatRecord`s. Times must be timezone-aware; they come back
in UTC.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Session

from ast_pbx.storage.db import Database, StorageError
from ast_pbx.storage.models import ChatMessage, ChatRead
from ast_pbx.storage.values import Fit, aware

HISTORY = 200  # messages a conversation shows at most, the newest


@dataclass(frozen=True)
class ChatRecord:
    """A message; see `models.ChatMessage` for what each field means."""

    id: int
    sender: str
    recipient: str | None  # None: a broadcast
    text: str
    sent_at: datetime
    read_at: datetime | None

    @property
    def broadcast(self) -> bool:
        return self.recipient is None

    @classmethod
    def of(cls, message: ChatMessage) -> ChatRecord:
        return cls(
            id=message.id,
            sender=message.sender,
            recipient=message.recipient,
            text=message.text,
            sent_at=message.sent_at,
            read_at=message.read_at,
        )


@dataclass(frozen=True)
class Unread:
    """What a user has not read: personal messages by sender, and broadcasts."""

    personal: Mapping[str, int] = field(default_factory=dict)
    broadcasts: int = 0

    @property
    def total(self) -> int:
        return sum(self.personal.values()) + self.broadcasts


class ChatStore:
    """Repository of the `chat_messages` and `chat_reads` tables over a `Database`."""

    def __init__(self, database: Database) -> None:
        self._database = database

    def send(self, sender: str, recipient: str | None, text: str, at: datetime) -> ChatRecord:
        """Store a message to `recipient`, or to everyone when it is None."""
        message = ChatMessage(
            sender=_login(sender),
            recipient=None if recipient is None else _login(recipient),
            text=text,
            sent_at=aware(at),
        )
        with self._database.session() as session:
            session.add(message)
            session.flush()
            return ChatRecord.of(message)

    def history(
        self, login: str, other: str | None, *, limit: int = HISTORY, before: int | None = None
    ) -> list[ChatRecord]:
        """The conversation of `login` with `other` (both ways), or the broadcasts when
        `other` is None: the newest `limit` messages (older than id `before`), oldest
        first."""
        if other is None:
            query = sa.select(ChatMessage).where(ChatMessage.recipient.is_(None))
        else:
            pair = sa.or_(
                sa.and_(ChatMessage.sender == login, ChatMessage.recipient == other),
                sa.and_(ChatMessage.sender == other, ChatMessage.recipient == login),
            )
            query = sa.select(ChatMessage).where(pair)
        if before is not None:
            query = query.where(ChatMessage.id < before)
        query = query.order_by(ChatMessage.id.desc()).limit(limit)
        with self._database.session() as session:
            found = [ChatRecord.of(message) for message in session.scalars(query)]
        return found[::-1]

    def unread(self, login: str) -> Unread:
        """What `login` has not read yet."""
        personal = (
            sa.select(ChatMessage.sender, sa.func.count())
            .where(ChatMessage.recipient == login, ChatMessage.read_at.is_(None))
            .group_by(ChatMessage.sender)
        )
        seen = sa.select(ChatRead.last_broadcast_id).where(ChatRead.login == login)
        broadcasts = sa.select(sa.func.count()).where(
            ChatMessage.recipient.is_(None),
            ChatMessage.sender != login,
            ChatMessage.id > sa.func.coalesce(seen.scalar_subquery(), 0),
        )
        with self._database.session() as session:
            by_sender = {str(sender): int(count) for sender, count in session.execute(personal)}
            return Unread(by_sender, int(session.scalar(broadcasts) or 0))

    def mark_read(
        self, login: str, other: str | None, at: datetime, *, up_to: int | None = None
    ) -> int:
        """`login` has read the conversation with `other` (None: the broadcasts), up to
        the message `up_to` (default: all of it); how many personal messages that read."""
        at = aware(at)
        if other is None:
            self._read_broadcasts(login, up_to)
            return 0
        update = sa.update(ChatMessage).where(
            ChatMessage.recipient == login,
            ChatMessage.sender == other,
            ChatMessage.read_at.is_(None),
        )
        if up_to is not None:
            update = update.where(ChatMessage.id <= up_to)
        with self._database.session() as session:
            result: CursorResult[Any] = session.execute(update.values(read_at=at))  # type: ignore[assignment]
            return int(result.rowcount)

    def _read_broadcasts(self, login: str, up_to: int | None) -> None:
        login = _login(login)
        for attempt in range(3):
            try:
                with self._database.session() as session:
                    _advance(session, login, up_to)
                return
            except StorageError as error:
                # Two pages of one user created the row at once: the second retries.
                if attempt == 2 or not isinstance(error.__cause__, sa.exc.IntegrityError):
                    raise


def _advance(session: Session, login: str, up_to: int | None) -> None:
    newest = sa.select(sa.func.max(ChatMessage.id)).where(ChatMessage.recipient.is_(None))
    last = session.scalar(newest) or 0
    if up_to is not None:
        last = min(last, up_to)
    row = session.get(ChatRead, login, with_for_update=True)
    if row is None:
        session.add(ChatRead(login=login, last_broadcast_id=last))
    elif last > row.last_broadcast_id:
        row.last_broadcast_id = last  # never back: a stale page must not unread anything


def _login(login: str) -> str:
    # A login is an identity: cutting it could send a message to someone else.
    if not login or len(login) > _LENGTHS["sender"]:
        raise ValueError(f"chat login must be 1 to {_LENGTHS['sender']} characters: {login!r}")
    return login


_LENGTHS = Fit(ChatMessage.__table__).lengths
