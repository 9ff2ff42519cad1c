"""Backlog gauges: global views of the store, read when ``/metrics`` is scraped.

Queue depth and how overdue its most overdue item is are facts of the shared database, not of a
process: every process that has a store reports the same values, so a dashboard takes their
``max``, never their ``sum``. They are read at scrape time (nothing on the hot path pays for
them) by bounded queries on partial indexes (``runback.store.backlog``), and kept for
``ttl`` seconds so that several scrapers, or a scraper per process, cost one read.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Collection, Iterator
from enum import StrEnum

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric

from runback.core.clock import Clock
from runback.errors import StoreError
from runback.store import Backlog, Store

log = logging.getLogger(__name__)

CACHE_SECONDS = 2.0
"""How long one read of the backlogs serves scrapes."""


class Queue(StrEnum):
    """A backlog, as its ``queue`` label says."""

    RUNS = "runs"
    """Runs queued for an executor."""
    DELIVERIES = "deliveries"
    """Callbacks due and not yet sent."""
    COPIES = "copies"
    """Output files ``runback receive`` has still to copy, due now."""


PROVIDER_QUEUES = (Queue.RUNS, Queue.DELIVERIES)
RECEIVER_QUEUES = (Queue.COPIES,)


class Backlogs:
    """The backlog gauges of ``queues``, over ``store``; one per app."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        *,
        queues: Collection[Queue],
        ttl: float = CACHE_SECONDS,
    ) -> None:
        self._store = store
        self._clock = clock
        self._queues = tuple(queues)
        self._ttl = ttl
        self._text = b""
        self._read_at: float | None = None
        self._lock = asyncio.Lock()

    async def exposition(self) -> bytes:
        """The gauges in Prometheus' text format, read at most once per ``ttl``."""
        async with self._lock:
            if self._read_at is None or time.monotonic() - self._read_at >= self._ttl:
                try:
                    self._text = await self._read()
                except StoreError as exc:  # the process's own metrics are still worth serving
                    log.warning("backlog metrics not read: %s", exc)
                self._read_at = time.monotonic()
        return self._text

    async def _read(self) -> bytes:
        now = self._clock.now()
        reads = {
            Queue.RUNS: self._store.backlog.runs,
            Queue.DELIVERIES: self._store.backlog.deliveries,
            Queue.COPIES: self._store.backlog.copies,
        }
        sampled: dict[Queue, Backlog] = {queue: await reads[queue]() for queue in self._queues}
        depth = GaugeMetricFamily(
            "runback_queue_depth",
            "Items waiting, due or not yet, by queue: a global view of the store (take max, "
            "not sum).",
            labels=["queue"],
        )
        age = GaugeMetricFamily(
            "runback_queue_oldest_due_age_seconds",
            "Age of the oldest item due and waiting, by queue (0 when none): a global view "
            "of the store (take max, not sum).",
            labels=["queue"],
        )
        for queue, backlog in sampled.items():
            depth.add_metric([queue.value], backlog.depth)
            late = 0.0 if backlog.first_due is None else (now - backlog.first_due).total_seconds()
            age.add_metric([queue.value], max(late, 0.0))
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Fixed([depth, age]))
        return generate_latest(registry)


class _Fixed:
    """A collector of families already read."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)
