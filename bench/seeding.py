"""Filling a runback database with work, faster than the API would: finished runs and their
pending callback deliveries, written through the store's own tables in large batches.

The records come from runback's own constructors (``new_run``, ``end_run``,
``new_delivery``), so the bytes a dispatcher sends are exactly those of a real run's callback.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from uuid import UUID

import orjson
from sqlalchemy import func, select, update

from runback.core.delivery import new_delivery
from runback.core.ids import new_id
from runback.core.records import Delivery, Run
from runback.core.retry import DEFAULT_RETRY_POLICY
from runback.core.runs import Ending, end_run, new_run
from runback.core.signing import new_callback_secret
from runback.core.states import DeliveryStatus, RunStatus
from runback.store import Store
from runback.store.outbox import delivery_row
from runback.store.runs import run_row
from runback.store.schema import deliveries, delivery_attempts, runs

_BATCH = 2_000


async def organization_with_secret(store: Store, *, now: datetime) -> UUID:
    """The default organization, with a current callback secret so every attempt is signed
    (``Runflow-Signature`` and ``webhook-signature``)."""
    organization, _ = await store.accounts.ensure_default_organization(now=now)
    await store.secrets.create(new_callback_secret(organization.id, label="bench", now=now))
    return organization.id


def finished_run(organization_id: UUID, *, n: int, callback_url: str, now: datetime) -> Run:
    """A ``runback/echo`` run that succeeded ``now``, with a callback to ``callback_url``."""
    text = orjson.dumps({"prompt": "a cat on a bench, in the rain", "seed": n}).decode()
    run = new_run(
        run_id=new_id(),
        organization_id=organization_id,
        model="runback/echo",
        input=text,
        now=now,
        callback_url=callback_url,
        metadata='{"order":"A-17"}',
    )
    running = replace(run, status=RunStatus.RUNNING, started_at=now, execution_count=1)
    return end_run(running, Ending(RunStatus.SUCCEEDED, output=text), now=now)


def callback_delivery(run: Run, *, now: datetime) -> Delivery:
    return new_delivery(
        run, delivery_id=new_id(), now=now, policy=DEFAULT_RETRY_POLICY, is_automatic=True
    )


async def seed_deliveries(
    store: Store,
    *,
    organization_id: UUID,
    count: int,
    callback_url: str,
    now: datetime,
    due: datetime,
) -> list[bytes]:
    """Commit ``count`` succeeded runs, each with a pending delivery due at ``due``; answers
    the callback bodies, in order."""
    bodies: list[bytes] = []
    for start in range(0, count, _BATCH):
        batch = [
            finished_run(organization_id, n=n, callback_url=callback_url, now=now)
            for n in range(start, min(start + _BATCH, count))
        ]
        made = [callback_delivery(run, now=now) for run in batch]
        async with store.database.write() as conn:
            await conn.execute(runs.insert(), [run_row(run) for run in batch])
            await conn.execute(
                deliveries.insert(),
                [delivery_row(replace(d, next_attempt_at=due)) for d in made],
            )
        bodies.extend(d.payload_bytes for d in made)
    return bodies


async def backlog(
    store: Store, *, count: int, callback_urls: Sequence[str], due_in: timedelta = timedelta(days=1)
) -> tuple[UUID, list[bytes]]:
    """``count`` succeeded runs of the default organization (``organization_with_secret``),
    their pending deliveries shared out among ``callback_urls`` and due ``due_in`` from now
    (by default not yet: ``make_due`` releases them); answers the organization's id and the
    callback bodies, in order."""
    now = datetime.now(UTC)
    organization = await organization_with_secret(store, now=now)
    share = -(-count // len(callback_urls))
    bodies: list[bytes] = []
    for index, url in enumerate(callback_urls):
        bodies += await seed_deliveries(
            store,
            organization_id=organization,
            count=min(share, count - index * share),
            callback_url=url,
            now=now,
            due=now + due_in,
        )
    return organization, bodies


async def make_due(store: Store, *, at: datetime) -> None:
    """Make every pending delivery due at ``at``."""
    async with store.database.write() as conn:
        await conn.execute(
            update(deliveries)
            .where(deliveries.c.status == DeliveryStatus.PENDING.value)
            .values(next_attempt_at=at)
        )


async def unfinished(store: Store) -> int:
    """How many deliveries are still pending or being delivered."""
    open_ = (DeliveryStatus.PENDING.value, DeliveryStatus.DELIVERING.value)
    async with store.database.read() as conn:
        found = await conn.execute(
            select(func.count()).select_from(deliveries).where(deliveries.c.status.in_(open_))
        )
        return int(found.scalar_one())


async def attempts_recorded(store: Store) -> int:
    """How many attempts the database holds."""
    async with store.database.read() as conn:
        found = await conn.execute(select(func.count()).select_from(delivery_attempts))
        return int(found.scalar_one())
