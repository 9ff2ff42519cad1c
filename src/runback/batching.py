"""Group commit: many tasks' writes, as few transactions as the database needs.

While one transaction commits, new items queue; the next transaction takes them all. Under
light load every item commits alone at once (no added latency); under heavy load the batch
grows and the commit rate stops bounding throughput.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class GroupCommit(Generic[T, R]):
    """Feeds items to ``commit`` in batches; ``submit`` returns once its item is committed,
    with what ``commit`` answered for it (``commit`` answers one result per item, or None
    when items have no result)."""

    def __init__(
        self,
        commit: Callable[[list[T]], Awaitable[Sequence[R] | None]],
        *,
        max_batch: int = 500,
    ) -> None:
        self._commit = commit
        self._max_batch = max_batch
        self._queue: list[tuple[T, asyncio.Future[Any]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def submit(self, item: T) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        try:
            while self._queue:
                batch = self._queue[: self._max_batch]
                del self._queue[: self._max_batch]
                if len(batch) > 1:
                    try:
                        await self._settle(batch)
                        continue
                    except Exception:
                        pass  # one bad item must not fail its neighbours: commit each alone
                for entry in batch:
                    try:
                        await self._settle([entry])
                    except Exception as exc:
                        if not entry[1].done():
                            entry[1].set_exception(exc)
        finally:
            self._flusher = None

    async def _settle(self, batch: list[tuple[T, asyncio.Future[Any]]]) -> None:
        results = await self._commit([item for item, _ in batch])
        for index, (_, future) in enumerate(batch):
            if not future.done():
                future.set_result(None if results is None else results[index])
