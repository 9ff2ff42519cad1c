"""The SQLite store: migrations, pragmas, and the rules the schema itself enforces."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest

from runback.core.delivery import new_delivery
from runback.core.ids import new_id
from runback.core.records import Delivery, Run
from runback.core.retry import DEFAULT_RETRY_POLICY
from runback.core.states import RunStatus
from runback.errors import SchemaTooNewError
from runback.store import Store, head_revision, open_store, sqlite_url
from runback.store.outbox import delivery_row
from runback.store.schema import deliveries
from runback.store.sql import IntegrityError
from runback.testing import ManualClock
from support.factories import queued_run


def _revision(path: Path) -> str:
    with sqlite3.connect(path) as conn:
        [(revision,)] = conn.execute("SELECT version_num FROM alembic_version").fetchall()
    return str(revision)


async def test_a_new_database_is_migrated_to_the_head(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    async with open_store(sqlite_url(path)):
        pass
    assert _revision(path) == head_revision()


async def test_reopening_a_current_database_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "db.db"
    async with open_store(sqlite_url(path)) as store:
        await store.accounts.ensure_default_organization(now=ManualClock().now())
    async with open_store(sqlite_url(path)) as store:
        _, created = await store.accounts.ensure_default_organization(now=ManualClock().now())
    assert not created


async def test_a_database_from_a_newer_runback_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "newer.db"
    async with open_store(sqlite_url(path)):
        pass
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999'")

    with pytest.raises(SchemaTooNewError, match=r"9999.*upgrade runback"):
        async with open_store(sqlite_url(path)):
            pass


async def test_the_database_is_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "wal.db"
    async with open_store(sqlite_url(path)):
        pass
    with sqlite3.connect(path) as conn:
        [(mode,)] = conn.execute("PRAGMA journal_mode").fetchall()
    assert mode == "wal"


async def _finished_run(store: Store, clock: ManualClock) -> Run:
    """A run finished with its automatic delivery pending."""
    organization, _ = await store.accounts.ensure_default_organization(now=clock.now())
    run = queued_run(organization_id=organization.id, now=clock.now())
    await store.runs.insert(run)
    [running] = await store.runs.claim_queued(
        models=["runback/echo"], worker="w", limit=1, now=clock.now(), lease_until=clock.now()
    )
    done = replace(running, status=RunStatus.SUCCEEDED, output="{}", completed_at=clock.now())
    assert await store.outbox.end(running, done, _delivery(done, clock)) is None
    return done


def _delivery(run: Run, clock: ManualClock) -> Delivery:
    return new_delivery(
        run, delivery_id=new_id(), now=clock.now(), policy=DEFAULT_RETRY_POLICY, is_automatic=True
    )


async def test_at_most_one_delivery_per_run_is_in_flight(store: Store, clock: ManualClock) -> None:
    done = await _finished_run(store, clock)

    with pytest.raises(IntegrityError):
        async with store.database.write() as conn:
            await conn.execute(deliveries.insert(), [delivery_row(_delivery(done, clock))])


async def test_next_due_at_is_an_aware_utc_datetime(store: Store, clock: ManualClock) -> None:
    await _finished_run(store, clock)

    assert await store.deliveries.next_due_at() == clock.now()


async def test_an_api_key_is_stored_only_as_its_hash(store: Store, clock: ManualClock) -> None:
    organization, _ = await store.accounts.ensure_default_organization(now=clock.now())
    token = await store.accounts.create_api_key([organization.id], now=clock.now())

    async with store.database.read() as conn:
        rows = await conn.sql("SELECT * FROM api_keys")
    assert token not in repr(rows)
    assert await store.accounts.organizations_of(token) == [organization.id]
