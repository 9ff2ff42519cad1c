"""Connections and transactions, on SQLite (the embedded default) or PostgreSQL.

SQLite allows one writer at a time. Rather than let connections fight over the lock (and
retry on ``SQLITE_BUSY``), every write in this process goes through one connection, queued on
an asyncio lock, and begins with ``BEGIN IMMEDIATE`` so a transaction never has to upgrade a
read lock into a write lock. Reads use their own small pool and see WAL snapshots, never
waiting for the writer. Calls are made on the event loop's thread (``_InlineSqlite``), so
another process holding the write lock (``runback keys create`` beside ``serve``: a few
milliseconds) pauses this one's loop for as long, up to the busy timeout.

PostgreSQL takes concurrent writers itself: one pool (asyncpg) serves reads and writes, each
transaction at READ COMMITTED; claims use ``FOR UPDATE SKIP LOCKED`` so workers never wait for
each other's rows. A connection the server dropped (a restart, ``pg_terminate_backend``) fails
the one transaction using it and is replaced; workers retry their round, API clients their
request (with an ``Idempotency-Key``, safely). Checking every connection before use would
halve the throughput of every query.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from functools import partial
from typing import Any, Literal, TypeVar
from uuid import UUID

import aiosqlite
import asyncpg
from sqlalchemy import CTE, Select, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import AsyncAdaptedQueuePool

from runback.errors import StoreError

log = logging.getLogger(__name__)

T = TypeVar("T")
_LISTEN_RETRY_SECONDS = 2.0
SqliteSync = Literal["normal", "full"]
_BUSY_TIMEOUT_MS = 10_000
_READ_POOL_SIZE = 4
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


class _AtOnce:
    """Stands in for aiosqlite's queue to its thread: runs each call as it is queued."""

    def put_nowait(self, item: tuple[asyncio.Future[Any] | None, Callable[[], Any]]) -> None:
        future, function = item
        try:
            result = function()
        except BaseException as exc:
            if future is not None and not future.done():
                future.set_exception(exc)
            return
        if future is not None and not future.done():
            future.set_result(result)


class _InlineSqlite(aiosqlite.Connection):
    """An aiosqlite connection that makes each call on the event loop's own thread.

    aiosqlite hands every call (cursor, execute, fetch, close, commit) to a thread and back:
    two thread switches per call, several calls per statement, which cost more than the
    statements themselves (measured: a trivial read transaction takes about half the CPU
    inline). SQLite answers from its page cache in microseconds, and in WAL mode readers
    never wait for the writer, so blocking the loop that briefly is cheaper than the hops.
    The writer uses it too unless commits must reach the disk (``synchronous=FULL``).
    """

    def __init__(self, connector: Callable[[], sqlite3.Connection]) -> None:
        super().__init__(connector, iter_chunk_size=64)
        self._tx = _AtOnce()  # type: ignore[assignment]  # some callers queue directly

    def __await__(self) -> Any:
        return self._connect().__await__()

    async def _connect(self) -> aiosqlite.Connection:
        if self._connection is None:
            self._connection = self._connector()
        return self

    async def _execute(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        if not self._running or not self._connection:
            raise ValueError("Connection closed")
        return fn(*args, **kwargs)

    def stop(self) -> None:
        self._running = False
        if self._connection is not None:
            self._connection.close()
            self._connection = None


class Database:
    """Engines over one database URL: for SQLite a writer and a reader, for PostgreSQL one."""

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
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        self._write_lock: asyncio.Lock | None
        if self.is_sqlite:
            self._writer = self._sqlite(
                pool_size=1, begin="BEGIN IMMEDIATE", sync=sqlite_synchronous
            )
            self._reader = self._sqlite(pool_size=_READ_POOL_SIZE, begin="BEGIN", sync=None)
            self._write_lock = asyncio.Lock()
        else:
            settings = self._server_settings()
            self._writer = self._reader = create_async_engine(
                self.url,
                # A fixed pool: overflow connections are closed as soon as they are
                # returned, and a new backend per burst costs the server more CPU than
                # the statements (seen: hundreds of backends for a few thousand runs).
                pool_size=pool_size,
                max_overflow=0,
                connect_args={"server_settings": settings},
            )
            self._write_lock = None

    def _sqlite(self, *, pool_size: int, begin: str, sync: SqliteSync | None) -> AsyncEngine:
        # The connection is only ever used from the loop's thread, but the pool may close
        # it from another (at interpreter exit): allow that.
        connect = partial(sqlite3.connect, self.url.database or ":memory:", check_same_thread=False)
        inline = sync != "full"
        engine = create_async_engine(
            self.url,
            async_creator=(lambda: _InlineSqlite(connect)) if inline else None,
            poolclass=AsyncAdaptedQueuePool,
            pool_size=pool_size,
            max_overflow=0,
            # Every transaction ends in its own COMMIT or ROLLBACK (the context managers
            # below): a reset on check-in would be one more driver call each time.
            pool_reset_on_return=None,
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
        lock: AbstractAsyncContextManager[Any] = self._write_lock or nullcontext()
        async with lock, self._writer.begin() as connection:
            yield connection

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A read-only snapshot."""
        async with self._reader.connect() as connection, connection.begin():
            yield connection

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
        async with self._writer.connect() as conn:
            for name in sorted(names):
                await conn.execute(
                    text("SELECT pg_notify(:channel, '')"), {"channel": self._channel(name)}
                )
            await conn.commit()

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
        dsn = self.url.set(drivername="postgresql").render_as_string(hide_password=False)
        conn = await asyncpg.connect(dsn, server_settings=self._server_settings())
        closed = asyncio.Event()
        conn.add_termination_listener(lambda _conn: closed.set())
        try:
            for name, callback in callbacks.items():
                await conn.add_listener(self._channel(name), lambda *_args, wake=callback: wake())
            await closed.wait()
        finally:
            await conn.close(timeout=1)

    async def close(self) -> None:
        await self._writer.dispose()
        if self._reader is not self._writer:
            await self._reader.dispose()


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
        if not any(name in str(exc.orig) for name in constraints):
            raise
    return await work()


def claimable(rows: Select[Any]) -> CTE:
    """The rows a claim takes, as a CTE an ``UPDATE ... FROM`` joins.

    ``FOR UPDATE SKIP LOCKED`` lets workers claim side by side without waiting on each
    other's rows. It must sit in a CTE, which PostgreSQL runs once: in an ``IN (subquery)``
    it may run again for each row and claim past the ``LIMIT``. (SQLite ignores the lock
    clause: its writes are serialised anyway.)
    """
    return rows.with_for_update(skip_locked=True).cte()


MAX_SCAN = 1000
"""The most candidate rows one claim reads (ids and what their room goes by)."""


def fitting(
    candidates: Sequence[Any],
    *,
    limit: int,
    room: Callable[[str], int] | None,
    key: Callable[[Any], str],
) -> list[UUID]:
    """The ids to claim of ``candidates`` (earliest first): up to ``limit``, and at most
    ``room(key(row))`` of each group (a destination, a model) when ``room`` is given."""
    if room is None:
        return [row.id for row in candidates[:limit]]
    chosen: list[UUID] = []
    left: dict[str, int] = {}
    for row in candidates:
        group = key(row)
        if group not in left:
            left[group] = room(group)
        if left[group] > 0:
            left[group] -= 1
            chosen.append(row.id)
            if len(chosen) == limit:
                break
    return chosen
