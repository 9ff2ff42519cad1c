"""Assembling the serving half from its settings groups and seams: the parts, wired.

``runback serve`` (through ``runback.process``) and the tests that need the whole machine
build it here, so the wiring is written once. Seams (store, sender, fetcher, blobs, clock,
random) come in as arguments.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from runback.blobs import BlobStore
from runback.config import DeliveryConfig, ExecutionConfig
from runback.core.clock import Clock
from runback.core.retry import Random
from runback.outbound.sender import Sender
from runback.provider.api.deps import ApiDeps
from runback.provider.context import Fetcher
from runback.provider.dispatcher import Dispatcher
from runback.provider.executor import Executor
from runback.provider.operations import Operations
from runback.provider.ordering import Ordering
from runback.provider.outbox import Outbox
from runback.provider.outputs import Outputs
from runback.provider.payloads import Payloads
from runback.provider.registry import ModelRegistry
from runback.store import DELIVERIES, RUNS, Store
from runback.tracing import Tracing

log = logging.getLogger(__name__)


FILES_KEY = "files"
"""The name of the signing key of ``/files`` URLs in the ``signing_keys`` table."""


class Hints:
    """New work, told to this process's workers at once and, coalesced, to other processes
    by NOTIFY (PostgreSQL): a latency hint only, polling stays the safety net.

    However many runs arrive, at most one NOTIFY per kind is under way: those arriving
    meanwhile ride on the next one.
    """

    def __init__(self, store: Store, *, notify_others: bool) -> None:
        self._database = store.database
        self._notify_others = notify_others and not store.database.is_sqlite
        self._pending: set[str] = set()
        self._sender: asyncio.Task[None] | None = None
        self.local: dict[str, Callable[[], None]] = {}

    def send(self, kind: str) -> None:
        wake = self.local.get(kind)
        if wake is not None:
            wake()
        if not self._notify_others:
            return
        self._pending.add(kind)
        if self._sender is None:
            self._sender = asyncio.create_task(self._send(), name="hints")

    async def _send(self) -> None:
        try:
            while self._pending:
                kinds, self._pending = self._pending, set()
                try:
                    await self._database.notify(kinds)
                except Exception as exc:
                    log.warning("a work hint was lost (polling will find the work): %s", exc)
        finally:
            self._sender = None

    async def aclose(self) -> None:
        """Send what is pending, then stop."""
        if self._sender is not None:
            await asyncio.gather(self._sender, return_exceptions=True)

    async def listen(self) -> None:
        """Wake this process's workers on other processes' hints, until cancelled."""
        await self._database.listen(self.local)


@dataclass(frozen=True, slots=True)
class Runtime:
    """The parts of a serving process, wired together."""

    outputs: Outputs
    outbox: Outbox
    executor: Executor
    dispatcher: Dispatcher
    api: ApiDeps
    hints: Hints


async def assemble(
    *,
    delivery: DeliveryConfig,
    execution: ExecutionConfig,
    max_body_bytes: int,
    store: Store,
    sender: Sender,
    fetcher: Fetcher,
    blobs: BlobStore,
    registry: ModelRegistry,
    clock: Clock,
    random: Random,
    public_url: str,
    notify_others: bool = False,
    tracing: Tracing | None = None,
) -> Runtime:
    """Wire the executor, dispatcher, outbox, outputs and API over the given seams."""
    worker = f"{socket.gethostname()}:{os.getpid()}"
    tracing = tracing or Tracing.off()
    file_secret = await store.outputs.signing_key(FILES_KEY, now=clock.now())
    hints = Hints(store, notify_others=notify_others)
    dispatcher = Dispatcher(
        store=store,
        sender=sender,
        clock=clock,
        random=random,
        worker_id=worker,
        config=delivery,
        tracing=tracing,
    )

    def model_ttl(name: str) -> float | None:
        model = registry.get(name)
        return None if model is None else model.url_ttl

    outputs = Outputs(
        store=store,
        blobs=blobs,
        clock=clock,
        public_url=public_url,
        file_secret=file_secret,
        retry_policy=delivery.retry,
        deployment_ttl=execution.output_url_ttl,
        model_ttl=model_ttl,
        max_bytes=execution.max_output_bytes,
    )
    if delivery.operations_url is not None:
        dispatcher.operations = Operations(
            store=store,
            clock=clock,
            url=delivery.operations_url,
            policy=delivery.retry,
            on_delivery=lambda: hints.send(DELIVERIES),
        )
    ordering = Ordering(store=store, clock=clock, on_delivery=lambda: hints.send(DELIVERIES))
    outbox = Outbox(
        store=store,
        outputs=outputs,
        payloads=Payloads(blobs=blobs, outputs=outputs, max_bytes=delivery.callback_max_bytes),
        clock=clock,
        retry_policy=delivery.retry,
        on_delivery=lambda: hints.send(DELIVERIES),
        take=dispatcher.take,
        model_of=registry.get,
        ordering=ordering,
        tracing=tracing,
    )
    executor = Executor(
        store=store,
        outbox=outbox,
        outputs=outputs,
        fetcher=fetcher,
        registry=registry,
        clock=clock,
        worker_id=worker,
        config=execution,
        tracing=tracing,
    )
    api = ApiDeps(
        store=store,
        outbox=outbox,
        outputs=outputs,
        blobs=blobs,
        file_secret=file_secret,
        registry=registry,
        clock=clock,
        url_policy=delivery.url_policy,
        sender=sender,
        max_body_bytes=max_body_bytes,
        on_run_created=lambda: hints.send(RUNS),
        cancel_running=executor.cancel,
        ordering=ordering,
        worker_lease=timedelta(seconds=execution.lease_seconds),
        unserved_after=timedelta(seconds=execution.unserved_after),
        ping_timeout=delivery.test_timeout,
        tracing=tracing,
    )
    hints.local.update({RUNS: executor.wake, DELIVERIES: dispatcher.wake})
    return Runtime(outputs, outbox, executor, dispatcher, api, hints)
