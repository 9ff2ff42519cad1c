"""An executor and a dispatcher wired to the real SQLite store and the package's twins."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from runback.core.records import Attempt, Delivery, Run
from runback.core.retry import Random, RetryPolicy
from runback.core.urlpolicy import UrlPolicy
from runback.models import register_builtins
from runback.provider.dispatcher import Dispatcher
from runback.provider.executor import Executor
from runback.provider.outbox import Outbox
from runback.provider.registry import ModelRegistry
from runback.store import Store
from runback.testing import Handler, HandlerSender, ManualClock, respond
from support.factories import queued_run

FAST_POLICY = RetryPolicy(delays=(0.25, 0.5, 1.0), jitter=0.2)


@dataclass
class Harness:
    store: Store
    clock: ManualClock
    sender: HandlerSender
    outbox: Outbox
    executor: Executor
    dispatcher: Dispatcher
    organization_id: UUID

    async def submit(self, **fields: Any) -> Run:
        """Insert a queued run as the API would."""
        run = queued_run(organization_id=self.organization_id, now=self.clock.now(), **fields)
        await self.store.runs.insert(run)
        return run

    async def run(self, run_id: UUID) -> Run:
        found = await self.store.runs.get(run_id)
        assert found is not None
        return found

    async def deliveries(self, run_id: UUID) -> list[tuple[Delivery, list[Attempt]]]:
        return await self.store.deliveries.for_run(run_id, organization_id=self.organization_id)

    async def only_delivery(self, run_id: UUID) -> tuple[Delivery, list[Attempt]]:
        found = await self.deliveries(run_id)
        assert len(found) == 1, found
        return found[0]


async def make_harness(
    store: Store,
    clock: ManualClock,
    *,
    handler: Handler = lambda _request: respond(200),
    policy: RetryPolicy = FAST_POLICY,
    registry: ModelRegistry | None = None,
    url_policy: UrlPolicy | None = None,
    random: Random = lambda: 0.5,
    default_timeout: float = 30.0,
    max_concurrency: int = 16,
) -> Harness:
    organization, _ = await store.accounts.ensure_default_organization(now=clock.now())
    sender = HandlerSender(handler)
    dispatcher = Dispatcher(
        store=store,
        sender=sender,
        clock=clock,
        random=random,
        url_policy=url_policy or UrlPolicy(),
        worker_id="test-worker",
        max_in_flight=64,
        attempt_timeout=10.0,
        lease_seconds=60.0,
        poll_interval=1.0,
    )
    outbox = Outbox(store=store, clock=clock, retry_policy=policy, on_delivery=dispatcher.wake)
    executor = Executor(
        store=store,
        outbox=outbox,
        registry=registry or register_builtins(ModelRegistry()),
        clock=clock,
        worker_id="test-worker",
        max_concurrency=max_concurrency,
        default_timeout=default_timeout,
        poll_interval=1.0,
    )
    return Harness(store, clock, sender, outbox, executor, dispatcher, organization.id)
