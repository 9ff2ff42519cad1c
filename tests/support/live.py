"""The provider's runtime live: a real sender on the wall clock, its loops running."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from runback.blobs import BlobStore
from runback.config import DeliveryConfig, ExecutionConfig
from runback.core.clock import SystemClock
from runback.models import register_builtins
from runback.outbound.sender import AiohttpSender
from runback.provider.registry import ModelRegistry
from runback.provider.runtime import Runtime, assemble
from runback.store import Store
from runback.testing import MapFetcher
from runback.tracing import Tracing

PUBLIC_URL = "http://runback.test"


@asynccontextmanager
async def live_runtime(
    store: Store,
    delivery: DeliveryConfig,
    *,
    executor: bool = True,
    tracing: Tracing | None = None,
) -> AsyncIterator[Runtime]:
    """The runtime over ``store`` with the built-in models, sending over HTTP; its
    dispatcher (and, with ``executor``, its executor) on loops of their own until the end."""
    async with AiohttpSender() as sender:
        runtime = await assemble(
            delivery=delivery,
            execution=ExecutionConfig(),
            max_body_bytes=64 * 1024,
            store=store,
            sender=sender,
            fetcher=MapFetcher(),
            blobs=BlobStore.memory(),
            registry=register_builtins(ModelRegistry()),
            clock=SystemClock(),
            random=random.random,
            public_url=PUBLIC_URL,
            tracing=tracing,
        )
        loops = [asyncio.create_task(runtime.dispatcher.run_forever())]
        if executor:
            loops.append(asyncio.create_task(runtime.executor.run_forever()))
        try:
            yield runtime
        finally:
            for loop in loops:
                loop.cancel()
            await asyncio.gather(*loops, return_exceptions=True)
