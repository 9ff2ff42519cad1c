"""The client's HTTP: timeouts, retries with backoff, and errors mapped from the envelope.

A call is retried only when sending it twice cannot do twice what it asks: reads, cancels,
updates, deletes, and creates that carry an ``Idempotency-Key`` (the server replays the
first answer). It is retried on a connection failure, a timeout, or a ``5xx`` (a ``503``'s
``Retry-After`` honoured), never on a ``4xx``: the same request would be refused again.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from runback.client.records import items_of
from runback.errors import ApiError, TransportError, UnexpectedAnswerError

Params = Mapping[str, str | list[str]]


@dataclass(frozen=True)
class Timeouts:
    """Seconds to connect, and to wait for each read of an answer (a stream's keepalive
    comes every 15 s, so a read timeout under that would cut a quiet stream)."""

    connect: float = 5.0
    read: float = 30.0

    def for_httpx(self) -> httpx.Timeout:
        return httpx.Timeout(self.read, connect=self.connect, pool=self.connect)


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with jitter: ``base * 2**n`` capped at ``cap``, times a random
    factor in ``[1 - jitter, 1]`` so that many clients do not come back at once."""

    base: float = 0.25
    cap: float = 8.0
    jitter: float = 0.5

    def delay(self, attempt: int, chance: float) -> float:
        """Seconds before retry ``attempt`` (0 for the first retry); ``chance`` in [0, 1)."""
        grown: float = self.base * 2**attempt
        return min(self.cap, grown) * (1 - self.jitter * chance)


RETRY_AFTER_CAP = 60.0
"""The longest ``Retry-After`` the client waits out before a retry."""


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After", "")
    try:
        return min(RETRY_AFTER_CAP, max(0.0, float(value)))
    except ValueError:
        return None  # an HTTP date, or nothing: our own backoff


def _decoded(response: httpx.Response) -> Any:
    """The answer's JSON; None for an empty body or one that is not JSON."""
    try:
        return json.loads(response.content) if response.content else None
    except ValueError:
        return None


def raise_for_answer(response: httpx.Response) -> None:
    """The API error an answer that is not a ``2xx`` stands for."""
    if not response.is_success:
        raise ApiError.from_answer(response.status_code, _decoded(response))


def _answer(response: httpx.Response) -> Any:
    raise_for_answer(response)
    decoded = _decoded(response)
    if decoded is None:
        raise UnexpectedAnswerError(
            f"HTTP {response.status_code} without a JSON body: is base_url runback's?"
        )
    return decoded


class Transport:
    """One kept-alive connection pool to the API, with the caller's key and organization."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeouts: Timeouts,
        retries: int,
        backoff: Backoff,
        organization_id: str | None = None,
        chance: Callable[[], float] = random.random,
        http: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}", "Accept": "application/json"}
        if organization_id is not None:
            headers["X-Organization-Id"] = organization_id
        self._http = httpx.AsyncClient(
            base_url=base_url, headers=headers, timeout=timeouts.for_httpx(), transport=http
        )
        self.retries = retries
        self.backoff = backoff
        self.chance = chance

    async def aclose(self) -> None:
        await self._http.aclose()

    async def call(
        self,
        method: str,
        path: str,
        *,
        body: object = None,
        params: Params | None = None,
        headers: Mapping[str, str] | None = None,
        retry: bool = True,
    ) -> Any:
        """Send one request (again on failure when ``retry``); its answer's JSON."""
        content = None if body is None else json.dumps(body).encode()
        sent = dict(headers or {})
        if content is not None:
            sent["Content-Type"] = "application/json"
        attempt = 0
        while True:
            last = not retry or attempt >= self.retries
            try:
                response = await self._http.request(
                    method, path, content=content, params=params, headers=sent
                )
            except httpx.TransportError as exc:
                if last:
                    raise _transport_error(method, path, exc) from exc
                await self.pause(attempt)
            else:
                if response.is_server_error and not last:
                    await self.pause(attempt, _retry_after(response))
                else:
                    return _answer(response)
            attempt += 1

    async def pause(self, attempt: int, at_least: float | None = None) -> None:
        """Wait before retry ``attempt``: the backoff, or the server's ``Retry-After``."""
        delay = self.backoff.delay(attempt, self.chance())
        await asyncio.sleep(delay if at_least is None else max(delay, at_least))

    async def pages(self, path: str, params: Params) -> AsyncIterator[Any]:
        """Every item of a listing, a page at a time, following ``next``."""
        cursor: str | None = None
        while True:
            page = await self.call("GET", path, params={**params, **_cursor(cursor)})
            for item in items_of(page):
                yield item
            cursor = page.get("next")
            if not isinstance(cursor, str):
                return

    @asynccontextmanager
    async def stream(
        self, path: str, headers: Mapping[str, str], params: Params | None = None
    ) -> AsyncIterator[httpx.Response]:
        """An answer read as it arrives (no retry here: the caller resumes it)."""
        try:
            async with self._http.stream("GET", path, headers=headers, params=params) as response:
                if not response.is_success:
                    await response.aread()
                    raise_for_answer(response)
                yield response
        except httpx.TransportError as exc:
            raise _transport_error("GET", path, exc) from exc


def _cursor(cursor: str | None) -> dict[str, str]:
    return {} if cursor is None else {"cursor": cursor}


def _transport_error(method: str, path: str, exc: httpx.TransportError) -> TransportError:
    kind = "timed out" if isinstance(exc, httpx.TimeoutException) else "failed"
    return TransportError(f"{method} {path} {kind}: {exc!r}")
