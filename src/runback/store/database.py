"""Connections and transactions, for SQLite (WAL) now and PostgreSQL later.

SQLite allows one writer at a time. Rather than let connections fight over the lock (and
retry on ``SQLITE_BUSY``), every write in this process goes through one connection, queued on
an asyncio lock, and begins with ``BEGIN IMMEDIATE`` so a transaction never has to upgrade a
read lock into a write lock. Reads use their own small pool and see WAL snapshots, never
waiting for the writer. Another process (``runback keys create`` beside ``serve``) waits up
to the busy timeout.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Literal

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import AsyncAdaptedQueuePool

from runback.errors import StoreError

SqliteSync = Literal["normal", "full"]
_BUSY_TIMEOUT_MS = 10_000
_READ_POOL_SIZE = 4


class Database:
    """A writer and a reader engine over one database URL."""

    def __init__(self, url: str, *, sqlite_synchronous: SqliteSync = "normal") -> None:
        self.url: URL = make_url(url)
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        if not self.is_sqlite:
            raise StoreError(
                f"database {self.url.render_as_string(hide_password=True)} is not supported "
                "yet: use an SQLite file"
            )
        self._writer = self._engine(pool_size=1, begin="BEGIN IMMEDIATE", sync=sqlite_synchronous)
        self._reader = self._engine(pool_size=_READ_POOL_SIZE, begin="BEGIN", sync=None)
        self._write_lock = asyncio.Lock()

    def _engine(self, *, pool_size: int, begin: str, sync: SqliteSync | None) -> AsyncEngine:
        engine = create_async_engine(
            self.url, poolclass=AsyncAdaptedQueuePool, pool_size=pool_size, max_overflow=0
        )

        @event.listens_for(engine.sync_engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            # Take transaction control from the driver so BEGIN is ours to choose.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA foreign_keys = ON")
            if sync is not None:
                cursor.execute("PRAGMA journal_mode = WAL")
                # NORMAL in WAL mode survives any process crash; FULL also power loss.
                cursor.execute(f"PRAGMA synchronous = {sync.upper()}")
            cursor.close()

        @event.listens_for(engine.sync_engine, "begin")
        def _on_begin(connection: Any) -> None:
            connection.exec_driver_sql(begin)

        return engine

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction: committed when the block ends, rolled back on error."""
        async with self._write_lock, self._writer.begin() as connection:
            yield connection

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A read-only snapshot."""
        async with self._reader.connect() as connection, connection.begin():
            yield connection

    async def close(self) -> None:
        await self._writer.dispose()
        await self._reader.dispose()
