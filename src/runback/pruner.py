"""The pruner: forgets what has outlived the retention period, in the background.

At start and then every few minutes it prunes batch after batch (one short transaction
each, see ``runback.store.retention``) until a batch comes back short, deleting each batch's
blobs once its rows are gone and giving other writers their turn in between. A blob that
fails to delete is logged and left behind: nothing points at it any more.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Literal

from runback.blobs import BlobError, BlobStore
from runback.config import RetentionConfig
from runback.core.clock import Clock
from runback.store import Store
from runback.store.retention import Pruned
from runback.work_loop import WorkLoop

log = logging.getLogger(__name__)

PRUNE_INTERVAL = 300.0
"""Seconds between pruning rounds."""
_BLOB_CONCURRENCY = 16

Prune = Callable[[datetime], Awaitable[Pruned]]


class Pruner(WorkLoop):
    """Prunes ended runs (``what="runs"``: ``runback serve`` and ``worker``) or inbox events
    (``what="inbox"``: ``runback receive``) older than ``retention``, ``batch`` at a time."""

    def __init__(
        self,
        *,
        store: Store,
        blobs: BlobStore,
        clock: Clock,
        retention: timedelta,
        batch: int,
        what: Literal["runs", "inbox"] = "runs",
        interval: float = PRUNE_INTERVAL,
    ) -> None:
        super().__init__(capacity=1, poll_interval=interval)
        self._blobs = blobs
        self._clock = clock
        self._retention = retention
        self._interval = interval
        kept = store.retention
        self._steps: list[tuple[str, Prune]] = (
            [
                ("runs", lambda before: kept.prune_runs(before, limit=batch)),
                ("deliveries", lambda before: kept.prune_deliveries(before, limit=batch)),
                ("batches", lambda before: kept.prune_batches(before, limit=batch)),
            ]
            if what == "runs"
            else [("inbox rows", lambda before: kept.prune_inbox(before, limit=batch))]
        )
        self._batch = batch

    async def _round(self) -> float:
        await self.prune()
        return self._interval

    async def prune(self, on_batch: Callable[[str, int], None] | None = None) -> dict[str, int]:
        """Prune everything older than the retention period now; answers how many rows of
        each kind went (a stop request ends it between batches). ``on_batch`` is told of
        each batch: its kind and how many rows went."""
        before = self._clock.now() - self._retention
        counts: dict[str, int] = {}
        for name, step in self._steps:
            counts[name] = 0
            while self.room > 0:
                pruned = await step(before)
                counts[name] += pruned.rows
                await self._delete(pruned.blob_keys)
                if on_batch is not None:
                    on_batch(name, pruned.rows)
                if pruned.rows < self._batch:
                    break
                await asyncio.sleep(0)  # let other work in between batches
        if any(counts.values()):
            done = ", ".join(f"{count} {name}" for name, count in counts.items())
            log.info("pruned %s older than %s", done, before.isoformat(timespec="seconds"))
        return counts

    async def _delete(self, keys: Sequence[str]) -> None:
        for start in range(0, len(keys), _BLOB_CONCURRENCY):
            chunk = keys[start : start + _BLOB_CONCURRENCY]
            results = await asyncio.gather(
                *(self._blobs.delete(key) for key in chunk), return_exceptions=True
            )
            for result in results:
                if isinstance(result, BlobError):
                    log.warning("a pruned file stays behind: %s", result)
                elif isinstance(result, BaseException):
                    raise result


def pruners(
    config: RetentionConfig,
    *,
    store: Store,
    blobs: BlobStore,
    clock: Clock,
    what: Literal["runs", "inbox"] = "runs",
) -> list[Pruner]:
    """The pruner the retention settings ask for: none when they keep everything."""
    if config.keep is None:
        return []
    return [
        Pruner(
            store=store,
            blobs=blobs,
            clock=clock,
            retention=config.keep,
            batch=config.batch,
            what=what,
        )
    ]
