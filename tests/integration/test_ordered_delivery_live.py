"""Ordered delivery end to end in one process: the real store (SQLite and PostgreSQL), the
real aiohttp sender, loopback receivers, the dispatcher on its own loop on the wall clock."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from aiohttp import web

from runback.config import DeliveryConfig
from runback.core.clock import SystemClock
from runback.core.delivery import FailureReason, pending_delivery
from runback.core.ids import new_id
from runback.core.records import Delivery
from runback.core.retry import RetryPolicy
from runback.core.states import DeliveryStatus
from runback.core.urlpolicy import LOOPBACK_ALLOW, UrlPolicy
from runback.provider.runtime import Runtime
from runback.store import Store
from support.live import live_runtime
from support.receivers import LoopbackReceiver
from support.waiting import eventually

SHORT = RetryPolicy(delays=(0.2, 0.2, 0.2, 0.2), jitter=0.1)
"""Five attempts a few tenths of a second apart."""
STUCK = RetryPolicy(delays=(30.0,), jitter=0.0)
"""A head that, once failed, waits long: only a release moves on in a test's time."""


@dataclass
class Live:
    store: Store
    runtime: Runtime
    organization_id: UUID
    policy: RetryPolicy

    async def add(self, url: str, label: str) -> Delivery:
        """Commit a callback to ``url`` whose body is ``label``."""
        delivery = pending_delivery(
            organization_id=self.organization_id,
            callback_url=url,
            webhook_id=f"msg_{label}",
            body=label.encode(),
            delivery_id=new_id(),
            now=SystemClock().now(),
            policy=self.runtime.outbox._retry_policy,
            is_automatic=True,
        )
        await self.store.outbox.add(delivery)
        self.runtime.dispatcher.wake()
        return delivery

    async def status(self, delivery: Delivery) -> Delivery:
        found = await self.store.deliveries.get(delivery.id, organization_id=self.organization_id)
        assert found is not None
        return found[0]

    async def all_succeeded(self, made: list[Delivery]) -> bool:
        return all([(await self.status(d)).status is DeliveryStatus.SUCCEEDED for d in made])


@asynccontextmanager
async def running(store: Store, policy: RetryPolicy) -> AsyncIterator[Live]:
    organization, _ = await store.accounts.ensure_default_organization(now=SystemClock().now())
    delivery = DeliveryConfig(
        retry=policy, url_policy=UrlPolicy.from_allow_list(LOOPBACK_ALLOW), max_in_flight=16
    )
    async with live_runtime(store, delivery, executor=False) as runtime:
        yield Live(store, runtime, organization.id, policy)


def _bodies(receiver: LoopbackReceiver, path: str) -> list[str]:
    return [r.body.decode() for r in receiver.requests if r.path == path]


async def test_a_receiver_failing_the_head_three_times_gets_every_callback_in_creation_order(
    store: Store,
) -> None:
    answered: list[tuple[str, int]] = []
    arrived: dict[str, datetime] = {}

    async def receiver(request: web.Request) -> web.StreamResponse:
        body = (await request.read()).decode()
        arrived.setdefault(body, SystemClock().now())
        status = 503 if body == "o0" and [b for b, _ in answered].count("o0") < 3 else 200
        answered.append((body, status))
        return web.Response(status=status)

    async with LoopbackReceiver(receiver) as server, running(store, SHORT) as live:
        url = server.url_for("/ordered")
        await live.runtime.api.ordering.switch_on(live.organization_id, url)
        made = [await live.add(url, f"o{n}") for n in range(5)]

        await eventually(lambda: live.all_succeeded(made), what="every callback delivered")
        stored = [await live.status(d) for d in made]

    assert answered == [("o0", 503)] * 3 + [(f"o{n}", 200) for n in range(5)]
    for previous, following in itertools.pairwise(stored):
        # Sent only once the one before it was recorded delivered.
        assert previous.completed_at is not None
        assert previous.completed_at <= arrived[following.payload_bytes.decode()]


async def test_a_released_head_lets_the_next_go_and_unordered_urls_are_never_held(
    store: Store,
) -> None:
    async def receiver(request: web.Request) -> web.StreamResponse:
        stuck = request.path == "/ordered" and await request.read() == b"o0"
        return web.Response(status=500 if stuck else 200)

    async with LoopbackReceiver(receiver) as server, running(store, STUCK) as live:
        ordered, free = server.url_for("/ordered"), server.url_for("/free")
        await live.runtime.api.ordering.switch_on(live.organization_id, ordered)
        head, *rest = [await live.add(ordered, f"o{n}") for n in range(3)]
        unordered = [await live.add(free, f"f{n}") for n in range(3)]

        await eventually(lambda: live.all_succeeded(unordered), what="the unordered ones")
        assert _bodies(server, "/ordered") == ["o0"]  # the head failed and holds the rest

        released = await live.runtime.api.ordering.release(live.organization_id, ordered)
        await eventually(lambda: live.all_succeeded(rest), what="those behind the head")

    assert released.id == head.id
    assert (await live.status(head)).failure_reason_code == FailureReason.RELEASED.value
    assert _bodies(server, "/ordered") == ["o0", "o1", "o2"]
