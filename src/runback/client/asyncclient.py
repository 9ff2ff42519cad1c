"""``AsyncClient``: the client itself; ``Client`` is its synchronous facade."""

from __future__ import annotations

import random
from collections.abc import Callable
from types import TracebackType
from typing import Self

import httpx

from runback.client.resources import Batches, Deliveries, Models, Secrets
from runback.client.runs import Runs
from runback.client.transport import Backoff, Timeouts, Transport

DEFAULT_RETRIES = 3
"""Retries after a first attempt fails, for the calls that may be retried."""


class AsyncClient:
    """runback's API from asyncio: ``runs``, ``batches``, ``deliveries``, ``secrets`` and
    ``models``. Use it as an async context manager, or ``await client.aclose()``.

    ``timeout`` is seconds for both connecting and each read, or a ``Timeouts``;
    ``retries`` bounds the retries of a safe call; ``organization_id`` acts for another
    organization of the key. ``http`` replaces the network (an ``httpx`` transport).
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float | Timeouts = Timeouts(),
        retries: int = DEFAULT_RETRIES,
        backoff: Backoff = Backoff(),
        organization_id: str | None = None,
        chance: Callable[[], float] = random.random,
        http: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        timeouts = timeout if isinstance(timeout, Timeouts) else Timeouts(timeout, timeout)
        self._transport = Transport(
            base_url,
            api_key,
            timeouts=timeouts,
            retries=retries,
            backoff=backoff,
            organization_id=organization_id,
            chance=chance,
            http=http,
        )
        self.runs = Runs(self._transport)
        self.batches = Batches(self._transport)
        self.deliveries = Deliveries(self._transport)
        self.secrets = Secrets(self._transport)
        self.models = Models(self._transport)

    async def aclose(self) -> None:
        """Close the connections."""
        await self._transport.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()
