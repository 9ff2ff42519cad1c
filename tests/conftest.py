"""Fixtures shared by every tier: a real store (an SQLite file, and a PostgreSQL schema of
its own), a manual clock.

PostgreSQL runs at ``RUNBACK_TEST_POSTGRES`` (default: the local server, database ``test``).
When it cannot be reached, the tests that need it fail: they never skip.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import pytest

from runback.store import Store, open_store, sqlite_url
from runback.testing import ManualClock

POSTGRES_URL = os.environ.get("RUNBACK_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
BACKENDS = ("sqlite", "postgresql")


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@asynccontextmanager
async def postgres_schema() -> AsyncIterator[str]:
    """A fresh, empty PostgreSQL schema, dropped afterwards."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(POSTGRES_URL)
    try:
        await admin.execute(f"CREATE SCHEMA {schema}")
        yield schema
    finally:
        await admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await admin.close()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    backend: str = request.param
    return backend


@pytest.fixture
async def store(backend: str, tmp_path: Path) -> AsyncIterator[Store]:
    if backend == "sqlite":
        async with open_store(sqlite_url(tmp_path / "runback.db")) as opened:
            yield opened
        return
    async with (
        postgres_schema() as schema,
        open_store(POSTGRES_URL, schema=schema, pool_size=5) as opened,
    ):
        yield opened


@pytest.fixture
async def store_pair(backend: str, tmp_path: Path) -> AsyncIterator[tuple[Store, Store]]:
    """Two stores over one database, each with its own connections: two processes."""
    if backend == "sqlite":
        url = sqlite_url(tmp_path / "runback.db")
        async with open_store(url) as first, open_store(url) as second:
            yield first, second
        return
    async with (
        postgres_schema() as schema,
        open_store(POSTGRES_URL, schema=schema, pool_size=5) as first,
        open_store(POSTGRES_URL, schema=schema, pool_size=5) as second,
    ):
        yield first, second
