"""Assembling the serving half from settings and seams: one place that wires the parts.

``runback serve`` and the tests that need the whole machine build it here, so the wiring is
written once. Seams (store, sender, fetcher, blobs, clock, random) come in as arguments.
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
from runback.core.clock import Clock
from runback.core.destinations import BreakerPolicy
from runback.core.retry import DEFAULT_RETRY_POLICY, Random, RetryPolicy
from runback.core.urlpolicy import UrlPolicy
from runback.outbound.sender import Sender
from runback.provider.api.deps import ApiDeps
from runback.provider.context import Fetcher
from runback.provider.dispatcher import Dispatcher
from runback.provider.executor import Executor
from runback.provider.operations import Operations
from runback.provider.outbox import Outbox
from runback.provider.outputs import Outputs
from runback.provider.registry import ModelRegistry
from runback.settings import Settings
from runback.store import DELIVERIES, RUNS, Store

log = logging.getLogger(__name__)


FILES_KEY = "files"
"""The name of the signing key of ``/files`` URLs in the ``signing_keys`` table."""


def blob_store(settings: Settings) -> BlobStore:
    """The blob store the settings name: an S3-compatible bucket, or ``<data dir>/files``."""
    if settings.s3_bucket is not None:
        return BlobStore.s3(
            bucket=settings.s3_bucket,
            endpoint=settings.s3_endpoint,
            region=settings.s3_region,
            access_key_id=settings.s3_access_key_id,
            secret_access_key=settings.s3_secret_access_key,
            presign=settings.s3_presign,
        )
    return BlobStore.local(settings.data_dir / "files")


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
    settings: Settings,
    *,
    store: Store,
    sender: Sender,
    fetcher: Fetcher,
    blobs: BlobStore,
    registry: ModelRegistry,
    clock: Clock,
    random: Random,
    public_url: str,
    retry_policy: RetryPolicy = DEFAULT_RETRY_POLICY,
    notify_others: bool = False,
) -> Runtime:
    """Wire the executor, dispatcher, outbox, outputs and API over the given seams."""
    worker = f"{socket.gethostname()}:{os.getpid()}"
    url_policy = UrlPolicy.from_allow_list(settings.callback_allow)
    file_secret = await store.outputs.signing_key(FILES_KEY, now=clock.now())
    hints = Hints(store, notify_others=notify_others)
    dispatcher = Dispatcher(
        store=store,
        sender=sender,
        clock=clock,
        random=random,
        url_policy=url_policy,
        worker_id=worker,
        max_in_flight=settings.max_in_flight_deliveries,
        attempt_timeout=settings.attempt_timeout,
        lease_seconds=settings.lease_seconds,
        poll_interval=settings.poll_interval,
        per_destination=settings.max_in_flight_per_destination,
        breaker=BreakerPolicy(
            threshold=settings.breaker_threshold,
            window=timedelta(seconds=settings.breaker_window_seconds),
            first_open=timedelta(seconds=settings.breaker_open_seconds),
            disable_after=timedelta(seconds=settings.destination_disable_after),
        ),
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
        retry_policy=retry_policy,
        deployment_ttl=settings.output_url_ttl,
        model_ttl=model_ttl,
        max_bytes=settings.max_output_bytes,
    )
    if settings.operations_callback_url is not None:
        dispatcher.operations = Operations(
            store=store,
            clock=clock,
            url=settings.operations_callback_url,
            policy=retry_policy,
            on_delivery=lambda: hints.send(DELIVERIES),
        )
    outbox = Outbox(
        store=store,
        outputs=outputs,
        clock=clock,
        retry_policy=retry_policy,
        on_delivery=lambda: hints.send(DELIVERIES),
        take=dispatcher.take,
    )
    executor = Executor(
        store=store,
        outbox=outbox,
        outputs=outputs,
        fetcher=fetcher,
        registry=registry,
        clock=clock,
        worker_id=worker,
        max_concurrency=settings.max_concurrent_runs,
        default_timeout=settings.model_timeout,
        poll_interval=settings.poll_interval,
        lease_seconds=settings.lease_seconds,
        max_executions=settings.run_max_executions,
        threads=settings.model_threads,
        unserved_after=settings.unserved_run_timeout,
    )
    api = ApiDeps(
        store=store,
        outbox=outbox,
        outputs=outputs,
        blobs=blobs,
        file_secret=file_secret,
        registry=registry,
        clock=clock,
        url_policy=url_policy,
        max_body_bytes=settings.max_body_bytes,
        on_run_created=lambda: hints.send(RUNS),
        cancel_running=executor.cancel,
        worker_lease=timedelta(seconds=settings.lease_seconds),
        unserved_after=timedelta(seconds=settings.unserved_run_timeout),
    )
    hints.local.update({RUNS: executor.wake, DELIVERIES: dispatcher.wake})
    return Runtime(outputs, outbox, executor, dispatcher, api, hints)
