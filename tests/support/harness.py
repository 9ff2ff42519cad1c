"""The serving half wired as ``runback serve`` wires it, over the real SQLite store and the
package's twins (sender, fetcher, memory blobs, manual clock)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from uuid import UUID

from runback.blobs import BlobStore
from runback.config import DeliveryConfig, ExecutionConfig
from runback.core.destinations import BreakerPolicy
from runback.core.records import Attempt, Delivery, Run
from runback.core.retry import Random, RetryPolicy
from runback.core.thin import DEFAULT_MAX_CALLBACK_BYTES
from runback.core.urlpolicy import UrlPolicy
from runback.models import register_builtins
from runback.provider.dispatcher import Dispatcher
from runback.provider.executor import Executor
from runback.provider.outbox import Outbox
from runback.provider.registry import ModelRegistry
from runback.provider.runtime import Runtime, assemble
from runback.store import Store
from runback.testing import Handler, HandlerSender, ManualClock, MapFetcher, respond
from support.factories import queued_run

FAST_POLICY = RetryPolicy(delays=(0.25, 0.5, 1.0), jitter=0.2)
PUBLIC_URL = "http://runback.test"


@dataclass
class Harness:
    store: Store
    clock: ManualClock
    sender: HandlerSender
    fetcher: MapFetcher
    blobs: BlobStore
    runtime: Runtime
    organization_id: UUID

    @property
    def executor(self) -> Executor:
        return self.runtime.executor

    @property
    def dispatcher(self) -> Dispatcher:
        return self.runtime.dispatcher

    @property
    def outbox(self) -> Outbox:
        return self.runtime.outbox

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
    callback_allow: tuple[str, ...] = (),
    random: Random = lambda: 0.5,
    default_timeout: float = 30.0,
    max_concurrency: int = 16,
    blobs: BlobStore | None = None,
    breaker_threshold: int = 1000,
    breaker_window: float = 0.0,
    per_destination: int = 16,
    disable_after: float = 24 * 3600.0,
    operations_url: str | None = None,
    callback_max_bytes: int = DEFAULT_MAX_CALLBACK_BYTES,
    event_interval: float = 0.5,
) -> Harness:
    """The serving half over twins. The circuit breaker is out of the way unless a test
    asks for it (``breaker_threshold``; it then opens at once unless ``breaker_window``
    says otherwise): most tests are about one delivery's own retries."""
    organization, _ = await store.accounts.ensure_default_organization(now=clock.now())
    sender = HandlerSender(handler)
    fetcher = MapFetcher()
    blobs = blobs or BlobStore.memory()
    delivery = DeliveryConfig(
        retry=policy,
        breaker=BreakerPolicy(
            threshold=breaker_threshold,
            window=timedelta(seconds=breaker_window),
            disable_after=timedelta(seconds=disable_after),
        ),
        url_policy=UrlPolicy.from_allow_list(callback_allow),
        max_in_flight=64,
        per_destination=per_destination,
        operations_url=operations_url,
        callback_max_bytes=callback_max_bytes,
    )
    runtime = await assemble(
        delivery=delivery,
        execution=ExecutionConfig(
            max_concurrent_runs=max_concurrency,
            model_timeout=default_timeout,
            event_interval=event_interval,
        ),
        max_body_bytes=64 * 1024,
        store=store,
        sender=sender,
        fetcher=fetcher,
        blobs=blobs,
        registry=registry or register_builtins(ModelRegistry()),
        clock=clock,
        random=random,
        public_url=PUBLIC_URL,
    )
    return Harness(store, clock, sender, fetcher, blobs, runtime, organization.id)


def another_worker(h: Harness, sender: HandlerSender, *, poll_interval: float = 1.0) -> Dispatcher:
    """The dispatcher of another worker (``other``) on the same database and clock."""
    return Dispatcher(
        store=h.store,
        sender=sender,
        clock=h.clock,
        random=lambda: 0.5,
        worker_id="other",
        config=DeliveryConfig(max_in_flight=64, poll_interval=poll_interval),
    )
