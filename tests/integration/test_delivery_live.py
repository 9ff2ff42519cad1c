"""Delivery end to end in one process: real SQLite, real aiohttp sender, loopback receivers,
the executor and dispatcher running their own loops on the wall clock."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from aiohttp import web

from runback.config import DeliveryConfig
from runback.core.clock import SystemClock
from runback.core.destinations import destination_of
from runback.core.ids import new_id
from runback.core.records import Attempt, Delivery
from runback.core.retry import RetryPolicy
from runback.core.states import DeliveryStatus
from runback.core.urlpolicy import LOOPBACK_ALLOW, UrlPolicy
from runback.store import Store
from support.factories import queued_run
from support.live import live_runtime
from support.receivers import LoopbackReceiver, answer, block_until
from support.waiting import eventually

POLICY = RetryPolicy(delays=(0.25, 0.5, 1.0, 1.0, 1.0), jitter=0.2)


@dataclass
class Live:
    store: Store
    organization_id: UUID

    async def submit(self, callback_url: str) -> UUID:
        run = queued_run(
            organization_id=self.organization_id, now=SystemClock().now(), callback_url=callback_url
        )
        await self.store.runs.insert(run)
        return run.id

    async def delivery(self, run_id: UUID) -> tuple[Delivery, list[Attempt]] | None:
        found = await self.store.deliveries.for_run(run_id, organization_id=self.organization_id)
        return found[0] if found else None

    async def delivered(self, run_id: UUID) -> bool:
        found = await self.delivery(run_id)
        return found is not None and found[0].status is DeliveryStatus.SUCCEEDED


@asynccontextmanager
async def running(store: Store, *, attempt_timeout: float = 5.0) -> AsyncIterator[Live]:
    organization, _ = await store.accounts.ensure_default_organization(now=SystemClock().now())
    delivery = DeliveryConfig(
        retry=POLICY,
        url_policy=UrlPolicy.from_allow_list(LOOPBACK_ALLOW),
        attempt_timeout=attempt_timeout,
        max_in_flight=64,
    )
    async with live_runtime(store, delivery):
        yield Live(store, organization.id)


async def test_a_receiver_failing_three_times_gets_four_attempts_spaced_by_the_policy(
    store: Store,
) -> None:
    arrivals: list[float] = []
    statuses = iter([500, 502, 503, 200])

    async def flaky(_request: web.Request) -> web.StreamResponse:
        arrivals.append(time.monotonic())
        return web.Response(status=next(statuses))

    async with LoopbackReceiver(flaky) as receiver, running(store) as live:
        run_id = await live.submit(receiver.url_for("/hook"))
        await eventually(
            lambda: live.delivered(run_id), what="the fourth attempt succeeds", timeout=10
        )

        found = await live.delivery(run_id)
        assert found is not None
        delivery, attempts = found
    assert [a.status_code for a in attempts] == [500, 502, 503, 200]
    assert delivery.attempt_count == 4
    gaps = [later - earlier for earlier, later in itertools.pairwise(arrivals)]
    for gap, least in zip(gaps, POLICY.delays, strict=False):
        assert gap >= least, (gaps, POLICY.delays)


async def test_a_receiver_slower_than_the_timeout_is_retried_and_holds_up_no_one(
    store: Store,
) -> None:
    release = asyncio.Event()
    async with (
        LoopbackReceiver(block_until(release)) as slow,
        LoopbackReceiver(answer(200)) as healthy,
        running(store, attempt_timeout=0.3) as live,
    ):
        stuck = await live.submit(slow.url_for("/slow"))
        fine = [await live.submit(healthy.url_for(f"/ok/{n}")) for n in range(20)]

        async def all_healthy_delivered() -> bool:
            return all([await live.delivered(run_id) for run_id in fine])

        await eventually(all_healthy_delivered, what="every delivery to the healthy receiver")

        async def timed_out_and_retried() -> bool:
            found = await live.delivery(stuck)
            return found is not None and len(found[1]) >= 2

        await eventually(timed_out_and_retried, what="the slow delivery timed out twice")
        found = await live.delivery(stuck)
        assert found is not None
        delivery, attempts = found
        assert attempts[0].failure_reason_code == "timeout"
        assert attempts[0].status_code is None
        assert delivery.status in (DeliveryStatus.PENDING, DeliveryStatus.DELIVERING)
        release.set()


async def test_a_blackholed_destination_with_a_thousand_pending_holds_up_no_healthy_one(
    store: Store,
) -> None:
    never = asyncio.Event()
    async with (
        LoopbackReceiver(block_until(never)) as blackhole,
        LoopbackReceiver(answer(200)) as healthy,
        running(store, attempt_timeout=0.5) as live,
    ):
        try:
            now = SystemClock().now()
            for n in range(1000):  # a backlog to the dead receiver, due at once
                await store.outbox.add(_bare_delivery(live, blackhole.url_for(f"/{n}"), now))
            fine = [await live.submit(healthy.url_for(f"/ok/{n}")) for n in range(50)]

            async def all_healthy_delivered() -> bool:
                return all([await live.delivered(run_id) for run_id in fine])

            await eventually(all_healthy_delivered, timeout=30, what="every healthy delivery")
        finally:
            never.set()


def _bare_delivery(live: Live, url: str, now: datetime) -> Delivery:
    delivery_id = new_id()
    return Delivery(
        id=delivery_id,
        organization_id=live.organization_id,
        run_id=None,
        batch_id=None,
        callback_url=url,
        webhook_id=f"msg_{delivery_id.hex}",
        payload_bytes=b"{}",
        is_automatic=True,
        status=DeliveryStatus.PENDING,
        failure_reason_code=None,
        failure_detail=None,
        attempt_count=0,
        retry_policy=POLICY,
        next_attempt_at=now,
        signing_secret_id=None,
        created_at=now,
        updated_at=now,
        completed_at=None,
        destination=destination_of(url),
    )
