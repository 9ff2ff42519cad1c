"""Persistence: one ``Store`` over SQLite now (PostgreSQL later), migrated on open."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

from runback.config import DatabaseConfig, SqliteSync
from runback.core.sealing import MasterKeys
from runback.store.accounts import AccountStore
from runback.store.arrivals import CopyDraft, EventDraft
from runback.store.backlog import Backlog, BacklogStore
from runback.store.batches import BatchStore
from runback.store.database import DELIVERIES, RUNS, Database
from runback.store.deliveries import AttemptOutcome, DeliveryStore, Recorded
from runback.store.destinations import DestinationStore
from runback.store.dispatch import DispatchStore, Round
from runback.store.events import EventStore
from runback.store.expected import ExpectedStore
from runback.store.feed import DeliveryFeed
from runback.store.idempotency import Idempotency
from runback.store.inbox import InboxFilter, InboxStore
from runback.store.migrate import MigrationProgress, check_schema, head_revision, migrate
from runback.store.moves import Refusal
from runback.store.ordering import OrderedUrl, OrderingStore
from runback.store.outbox import OutboxStore
from runback.store.outputs import OutputStore
from runback.store.retention import Retention
from runback.store.runs import RunFilter, RunStore
from runback.store.secrets import SecretStore
from runback.store.sessions import Session, SessionStore
from runback.store.workers import WorkerStore


class Store:
    """Every table of runback, grouped by concept, over one ``Database``."""

    def __init__(self, database: Database, *, master_keys: MasterKeys | None = None) -> None:
        self.database = database
        self.accounts = AccountStore(database)
        self.runs = RunStore(database)
        self.batches = BatchStore(database)
        self.deliveries = DeliveryStore(database)
        self.outbox = OutboxStore(database)
        self.destinations = DestinationStore(database)
        self.ordering = OrderingStore(database)
        self.secrets = SecretStore(database, master_keys)
        self.dispatch = DispatchStore(database, self.secrets)
        self.outputs = OutputStore(database)
        self.events = EventStore(database)
        self.feed = DeliveryFeed(database)
        self.inbox = InboxStore(database)
        self.expected = ExpectedStore(database)
        self.retention = Retention(database)
        self.workers = WorkerStore(database)
        self.sessions = SessionStore(database)
        self.backlog = BacklogStore(database)


DATABASE_FILE = "runback.db"
"""The SQLite file of a data directory, when no database URL is given."""


def sqlite_url(path: Path) -> str:
    """The database URL of an SQLite file."""
    return f"sqlite+aiosqlite:///{path}"


@asynccontextmanager
async def open_store(
    url: str,
    *,
    sqlite_synchronous: SqliteSync = "normal",
    pool_size: int = 20,
    schema: str | None = None,
    auto_migrate: bool = True,
    master_keys: MasterKeys | None = None,
    progress: MigrationProgress | None = None,
) -> AsyncIterator[Store]:
    """Open the database, migrate it to this runback's schema (or, without ``auto_migrate``,
    check that it is there), and close it afterwards. With ``master_keys``, callback
    secrets are sealed at rest."""
    database = Database(
        url, sqlite_synchronous=sqlite_synchronous, pool_size=pool_size, schema=schema
    )
    try:
        await (migrate(database, progress) if auto_migrate else check_schema(database))
        yield Store(database, master_keys=master_keys)
    finally:
        await database.close()


def open_database(
    config: DatabaseConfig, *, progress: MigrationProgress | None = None
) -> AbstractAsyncContextManager[Store]:
    """The store a process's database settings name, opened as ``open_store`` opens it."""
    return open_store(
        config.url,
        sqlite_synchronous=config.sqlite_synchronous,
        pool_size=config.pool_size,
        schema=config.schema,
        auto_migrate=config.auto_migrate,
        master_keys=config.master_keys,
        progress=progress,
    )


__all__ = [
    "DATABASE_FILE",
    "DELIVERIES",
    "RUNS",
    "AttemptOutcome",
    "Backlog",
    "CopyDraft",
    "Database",
    "EventDraft",
    "Idempotency",
    "InboxFilter",
    "MigrationProgress",
    "OrderedUrl",
    "Recorded",
    "Refusal",
    "Round",
    "RunFilter",
    "Session",
    "Store",
    "check_schema",
    "head_revision",
    "migrate",
    "open_database",
    "open_store",
    "sqlite_url",
]
