"""Connections and transactions, on SQLite (the embedded default) or PostgreSQL.

Statements run on the drivers' own connections (``runback.store.sql``): the standard
library's ``sqlite3``, and asyncpg.

SQLite allows one writer at a time. Rather than let connections fight over the lock (and
retry on ``SQLITE_BUSY``), every write in this process goes through one connection, queued on
an asyncio lock, and begins with ``BEGIN IMMEDIATE`` so a transaction never has to upgrade a
read lock into a write lock. Reads use connections of their own and see WAL snapshots, never
waiting for the writer. Calls are made on the event loop's thread: SQLite answers from its
page cache in microseconds, where a hop to a thread and back costs more than the statement.
What that costs the loop: a commit with ``synchronous=NORMAL`` writes to the WAL without
waiting for the disk; with ``FULL`` it waits, so that commit runs in a thread; a slow disk
otherwise shows as page-cache misses (a read from disk blocks the loop for its duration);
and another process holding the write lock (``runback keys create`` beside ``serve``: a few
milliseconds) pauses this one's loop for as long, up to the busy timeout.

PostgreSQL takes concurrent writers itself: one asyncpg pool serves reads and writes, each
transaction at READ COMMITTED, each statement prepared once per connection; claims use
``FOR UPDATE SKIP LOCKED`` so workers never wait for each other's rows. A connection the
server dropped (a restart, ``pg_terminate_backend``) fails the one transaction using it and
is replaced; workers retry their round, API clients their request (with an
``Idempotency-Key``, safely). Checking every connection before use would halve the
throughput of every query.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Collection,
    Iterator,
    Mapping,
)
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from typing import Any, TypeVar

import asyncpg
from sqlalchemy import event
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.dialects.sqlite import dialect as sqlite_dialect
from sqlalchemy.engine import URL, Dialect, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from runback.config import SqliteSync
from runback.errors import DatabaseUnavailableError, StoreError
from runback.store.sql import (
    Connection,
    IntegrityError,
    PostgresConnection,
    SqliteConnection,
    Tracer,
)

log = logging.getLogger(__name__)

T = TypeVar("T")
_LISTEN_RETRY_SECONDS = 2.0
_BUSY_TIMEOUT_MS = 10_000
_IDLE_READERS = 4
_STATEMENT_CACHE = 512
"""Statements asyncpg keeps prepared per connection: the hot ones, and room for others."""
_CLOSE_SECONDS = 10.0
RUNS, DELIVERIES = "runs", "deliveries"
"""Kinds of new work: what writes notify and workers listen for."""

_DRIVERS = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg"}


def database_url(url: str) -> URL:
    """``url`` with runback's async driver for its database (``postgresql://`` gets asyncpg)."""
    try:
        parsed = make_url(url)
    except Exception as exc:
        raise StoreError(f"the database URL is malformed: {exc}") from None
    backend = parsed.get_backend_name()
    if backend not in _DRIVERS:
        raise StoreError(
            f"database {parsed.render_as_string(hide_password=True)} is not supported: "
            "use sqlite:///<file> or postgresql://user@host/database"
        )
    return parsed.set(drivername=_DRIVERS[backend])


class _PooledConnection(asyncpg.Connection):  # type: ignore[misc]
    """A pooled connection handed back as it is: runback's transactions leave no session
    state behind (no advisory locks, cursors, LISTEN or SET; listening has a connection of
    its own), so asyncpg's reset query would be one more round trip per transaction."""

    def get_reset_query(self) -> str:
        return ""


class Database:
    """Connections to one database: for SQLite a writer and idle readers, for PostgreSQL an
    asyncpg pool. ``write()`` and ``read()`` give a ``Connection`` inside a transaction."""

    def __init__(
        self,
        url: str,
        *,
        sqlite_synchronous: SqliteSync = "normal",
        pool_size: int = 20,
        schema: str | None = None,
    ) -> None:
        self.url: URL = database_url(url)
        self._schema = schema
        self._sync = sqlite_synchronous
        self._pool_size = pool_size
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        self.dialect: Dialect = (
            sqlite_dialect(paramstyle="qmark") if self.is_sqlite else asyncpg_dialect()  # type: ignore[no-untyped-call]
        )
        self._tracers: list[Tracer] = []
        self._write_lock = asyncio.Lock()
        self._writer: sqlite3.Connection | None = None
        self._readers: list[sqlite3.Connection] = []
        self._pool: asyncpg.Pool | None = None
        self._pool_lock = asyncio.Lock()

    # -- SQLite ------------------------------------------------------------------------

    def _sqlite(self, *, writer: bool) -> sqlite3.Connection:
        # Used only from the loop's thread, but a FULL commit runs in a worker thread (while
        # the write lock keeps everyone else off the connection).
        conn = sqlite3.connect(
            self.url.database or ":memory:", isolation_level=None, check_same_thread=False
        )
        conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA foreign_keys = ON")
        if writer:
            conn.execute("PRAGMA journal_mode = WAL")
            # NORMAL in WAL mode survives any process crash; FULL also power loss.
            conn.execute(f"PRAGMA synchronous = {self._sync.upper()}")
        return conn

    @asynccontextmanager
    async def _sqlite_write(self) -> AsyncIterator[Connection]:
        async with self._write_lock:
            if self._writer is None:
                self._writer = self._sqlite(writer=True)
            raw = self._writer
            raw.execute("BEGIN IMMEDIATE")
            try:
                yield SqliteConnection(raw, self.dialect, self._tracers)
                if self._sync == "full":
                    await asyncio.to_thread(raw.execute, "COMMIT")
                else:
                    raw.execute("COMMIT")
            except BaseException:
                if raw.in_transaction:
                    raw.execute("ROLLBACK")
                raise

    @asynccontextmanager
    async def _sqlite_read(self) -> AsyncIterator[Connection]:
        raw = self._readers.pop() if self._readers else self._sqlite(writer=False)
        try:
            raw.execute("BEGIN")
            yield SqliteConnection(raw, self.dialect, self._tracers)
        finally:
            if raw.in_transaction:
                raw.execute("ROLLBACK")  # read only: nothing to keep
            if len(self._readers) < _IDLE_READERS:
                self._readers.append(raw)
            else:
                raw.close()

    # -- PostgreSQL --------------------------------------------------------------------

    def _dsn(self) -> str:
        return self.url.set(drivername="postgresql").render_as_string(hide_password=False)

    async def _postgres(self) -> asyncpg.Pool:
        if self._pool is None:
            async with self._pool_lock:
                if self._pool is None:
                    self._pool = await asyncpg.create_pool(
                        self._dsn(),
                        # Connections stay open while used at all: a new backend per burst
                        # costs the server more CPU than the statements.
                        min_size=0,
                        max_size=self._pool_size,
                        statement_cache_size=_STATEMENT_CACHE,
                        server_settings=self._server_settings(),
                        connection_class=_PooledConnection,
                    )
        return self._pool

    @asynccontextmanager
    async def _postgres_transaction(self) -> AsyncIterator[Connection]:
        with _unavailable_as_error():
            pool = await self._postgres()
            async with pool.acquire() as raw, _dropped_when_gone(raw), raw.transaction():
                yield PostgresConnection(raw, self.dialect, self._tracers)

    @asynccontextmanager
    async def _postgres_read(self) -> AsyncIterator[Connection]:
        # At READ COMMITTED every statement sees its own snapshot, in a transaction or not:
        # BEGIN and COMMIT would be two round trips that buy a read nothing.
        with _unavailable_as_error():
            pool = await self._postgres()
            async with pool.acquire() as raw, _dropped_when_gone(raw):
                yield PostgresConnection(raw, self.dialect, self._tracers)

    # -- both --------------------------------------------------------------------------

    def write(self) -> AbstractAsyncContextManager[Connection]:
        """A write transaction: committed when the block ends, rolled back on error."""
        return self._sqlite_write() if self.is_sqlite else self._postgres_transaction()

    def read(self) -> AbstractAsyncContextManager[Connection]:
        """Reads: one snapshot on SQLite; on PostgreSQL each statement sees what was
        committed when it began (READ COMMITTED, no transaction around them)."""
        return self._sqlite_read() if self.is_sqlite else self._postgres_read()

    @contextmanager
    def tracing(self) -> Iterator[list[tuple[str, Any]]]:
        """Every statement run meanwhile, as the driver got it, with its parameters."""
        seen: list[tuple[str, Any]] = []

        def trace(sql: str, arguments: Any) -> None:
            seen.append((sql, arguments))

        self._tracers.append(trace)
        try:
            yield seen
        finally:
            self._tracers.remove(trace)

    def migration_engine(self) -> AsyncEngine:
        """An SQLAlchemy engine for Alembic (migrations and schema checks), to dispose after:
        one transaction at a time, with the same connection settings as the store's."""
        if not self.is_sqlite:
            return create_async_engine(
                self.url,
                poolclass=NullPool,
                connect_args={"server_settings": self._server_settings()},
            )
        engine = create_async_engine(self.url, poolclass=NullPool)

        @event.listens_for(engine.sync_engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None  # BEGIN is ours to choose
            cursor = dbapi_connection.cursor()
            cursor.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA foreign_keys = ON")
            cursor.execute("PRAGMA journal_mode = WAL")  # kept by the file from then on
            cursor.close()

        @event.listens_for(engine.sync_engine, "begin")
        def _on_begin(connection: Any) -> None:
            # Processes that start together take turns: the check and the upgrade are one.
            connection.exec_driver_sql("BEGIN IMMEDIATE")

        return engine

    def _server_settings(self) -> dict[str, str]:
        # The application name lets operators (and tests) find runback's connections.
        settings = {"application_name": f"runback:{self._schema or 'public'}"}
        if self._schema is not None:
            settings["search_path"] = self._schema
        return settings

    def _channel(self, name: str) -> str:
        return f"runback_{self._schema or 'public'}_{name}"

    async def notify(self, names: Collection[str]) -> None:
        """Tell listening processes there is new work of these kinds (PostgreSQL only).

        Never inside the work's own transaction: a transaction that notifies takes a lock
        all notifying commits share, which would serialise every submission's commit.
        """
        if self.is_sqlite or not names:
            return
        pool = await self._postgres()
        async with pool.acquire() as raw:
            for name in sorted(names):
                await raw.execute("SELECT pg_notify($1, '')", self._channel(name))

    async def listen(self, callbacks: Mapping[str, Callable[[], None]]) -> None:
        """Call ``callbacks[name]`` whenever work of kind ``name`` is notified; run until
        cancelled, reconnecting when the connection drops. Returns at once on SQLite."""
        if self.is_sqlite:
            return
        while True:
            try:
                await self._listen_once(callbacks)
            except (OSError, asyncpg.PostgresError) as exc:
                log.warning("listening for work stopped (%s); reconnecting", exc)
                await asyncio.sleep(_LISTEN_RETRY_SECONDS)

    async def _listen_once(self, callbacks: Mapping[str, Callable[[], None]]) -> None:
        """Listen on one connection until it closes."""
        conn = await asyncpg.connect(self._dsn(), server_settings=self._server_settings())
        closed = asyncio.Event()
        conn.add_termination_listener(lambda _conn: closed.set())
        try:
            for name, callback in callbacks.items():
                await conn.add_listener(self._channel(name), lambda *_args, wake=callback: wake())
            await closed.wait()
        finally:
            await conn.close(timeout=1)

    async def close(self) -> None:
        async with self._write_lock:
            if self._writer is not None:
                self._writer.close()
                self._writer = None
        while self._readers:
            self._readers.pop().close()
        if self._pool is not None:
            pool, self._pool = self._pool, None
            try:
                await asyncio.wait_for(pool.close(), timeout=_CLOSE_SECONDS)
            except TimeoutError:
                pool.terminate()


async def retrying_conflicts(
    work: Callable[[], Awaitable[T]], *, constraints: Collection[str]
) -> T:
    """Run a write transaction once more when it lost a race on one of ``constraints``.

    Two PostgreSQL transactions that check for a row, find none and insert it both reach the
    unique index; the later one fails there once the first commits, and its retry then sees
    the committed row. (SQLite serialises writes, so it never gets here.)
    """
    try:
        return await work()
    except IntegrityError as exc:
        if not any(name in str(exc) for name in constraints):
            raise
    return await work()


_GONE = (
    ConnectionError,  # refused, reset: the server is down or restarting
    asyncpg.PostgresConnectionError,  # the connection was lost
    asyncpg.InterfaceError,  # ...and found closed when next used
    asyncpg.exceptions.AdminShutdownError,  # the server is shutting down
    asyncpg.exceptions.CannotConnectNowError,  # ...or still starting
    asyncpg.exceptions.CrashShutdownError,
    # A connection the server dropped while it sat in the pool, used again: its protocol
    # state is broken ("cannot switch to state ...; another operation is in progress").
    asyncpg.exceptions.InternalClientError,
)


@asynccontextmanager
async def _dropped_when_gone(raw: asyncpg.Connection) -> AsyncIterator[None]:
    """Close a connection that failed as a lost one, so the pool opens a new one rather
    than hand it out again."""
    try:
        yield
    except _GONE:
        raw.terminate()
        raise


@contextmanager
def _unavailable_as_error() -> Iterator[None]:
    """A lost or refused connection as ``DatabaseUnavailableError``: callers (the API's
    ``503``, a worker's next round) need not know the driver's many ways to say it."""
    try:
        yield
    except _GONE as exc:
        raise DatabaseUnavailableError(f"the database is unavailable: {exc}") from exc
