"""The API-key check of every request: a kept key against one counter read, beside reading
the key and its memberships each time (what runback did before), in the same run.

    .venv/bin/python bench/key_check.py            # 3,000 checks per figure, both databases

Prints CPU microseconds per check (``time.process_time``, this process only; on PostgreSQL
the server's share is not counted) and their ratio.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

from runback.core.ids import hash_api_key
from runback.store import Store
from runback.store.accounts import _organizations_of
from support import Database, fresh_schema

CHECKS = 3_000


async def _cpu_us(check: Callable[[], Awaitable[object]]) -> float:
    for _ in range(100):  # warm: prepared statements, page cache
        await check()
    started = time.process_time()
    for _ in range(CHECKS):
        await check()
    return (time.process_time() - started) / CHECKS * 1e6


async def _measure(name: str, store: Store) -> None:
    organization, _ = await store.accounts.ensure_default_organization(now=datetime.now(UTC))
    token = await store.accounts.create_api_key([organization.id], now=datetime.now(UTC))
    key_hash = hash_api_key(token)

    async def read_each_time() -> object:
        async with store.database.read() as conn:
            return await _organizations_of(conn, key_hash)

    kept = await _cpu_us(lambda: store.accounts.organizations_of(token))
    read = await _cpu_us(read_each_time)
    print(f"{name}: kept key {kept:.0f} µs, read each time {read:.0f} µs, ratio {kept / read:.2f}")


async def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        async with Database.sqlite(Path(folder)).open() as store:
            await _measure("SQLite", store)
    async with fresh_schema() as database, database.open(pool_size=2) as store:
        await _measure("PostgreSQL", store)


if __name__ == "__main__":
    asyncio.run(main())
