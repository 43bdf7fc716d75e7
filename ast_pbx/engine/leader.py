"""One engine acts for a site at a time; another may stand by to take over.

The site is the database and the Stasis application together. On PostgreSQL the
leader holds a session-level advisory lock (`pg_try_advisory_lock`) on a connection of
its own: when the leader dies (SIGKILL, a lost host) its connection closes and
PostgreSQL frees the lock at once; a standby, polling every POLL seconds, takes it and
only then connects to ARI. The leader checks its lock connection every POLL seconds and
stops acting the moment it fails: two engines never act on one call. On SQLite (one
machine) an exclusive `flock` on a file beside the database does the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import logging
import os
from typing import IO, Any

import sqlalchemy as sa

log = logging.getLogger("astpbx.leader")

POLL = 0.5  # seconds between a standby's tries and the leader's checks


def lock_key(app: str) -> int:
    """The advisory lock's number for a site: stable across processes and versions."""
    digest = hashlib.sha256(f"astpbx-leader:{app}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class Leadership:
    """`acquire()` returns once this engine leads; `lost()` returns when it no longer does."""

    def __init__(self, engine: sa.Engine, app: str) -> None:
        self._engine = engine
        self._key = lock_key(app)
        self._connection: Any = None
        self._file: IO[str] | None = None
        self.shared = engine.dialect.name == "postgresql"  # a standby can exist

    async def acquire(self) -> None:
        announced = False
        while not await asyncio.to_thread(self._try):
            if not announced:
                log.info("standing by: another engine leads this site")
                announced = True
            await asyncio.sleep(POLL)
        log.info("this engine leads the site")

    def _try(self) -> bool:
        if self.shared:
            return self._try_postgresql()
        return self._try_file()

    def _try_postgresql(self) -> bool:
        if self._connection is None:
            self._connection = self._engine.raw_connection()
        try:
            with self._connection.cursor() as cursor:
                cursor.execute("SELECT pg_try_advisory_lock(%s)", (self._key,))
                held = bool(cursor.fetchone()[0])
            self._connection.commit()
        except Exception:  # the database is away: try again with a new connection
            log.warning("leader lock: the database does not answer", exc_info=True)
            self._drop()
            return False
        return held

    def _try_file(self) -> bool:
        database = self._engine.url.database or ""
        path = f"{database}.leader" if database and database != ":memory:" else ""
        if not path:
            return True  # an in-memory database: no other engine can share it
        if self._file is None:
            self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115 - held while leading
        try:
            fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        self._file.seek(0)
        self._file.truncate()
        self._file.write(f"{os.getpid()}\n")
        self._file.flush()
        return True

    async def lost(self) -> None:
        """Return when this engine stops leading (its lock connection failed)."""
        if not self.shared:
            await asyncio.Event().wait()  # a file lock is held until the process ends
        while await asyncio.to_thread(self._still_held):
            await asyncio.sleep(POLL)
        log.error("leader lock lost: this engine stops acting")

    def _still_held(self) -> bool:
        try:
            with self._connection.cursor() as cursor:
                cursor.execute("SELECT 1")
                cursor.fetchone()
            self._connection.commit()
        except Exception:
            self._drop()
            return False
        return True

    def _drop(self) -> None:
        with contextlib.suppress(Exception):
            self._connection.close()
        self._connection = None

    def release(self) -> None:
        if self._connection is not None:
            self._drop()  # closing the session frees the advisory lock
        if self._file is not None:
            self._file.close()  # and closing the file the flock
            self._file = None
