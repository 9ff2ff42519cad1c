"""Twins of runback's seams, for runback's tests and its users'.

* ``ManualClock``: time that moves only when told.
* ``HandlerSender``: an outbound sender that hands each request to a function.
* ``respond``: a ``SendResult`` in one call.
* ``MapFetcher``: input URLs answered from a dict.

The store has no twin: tests use the real SQLite store on a temporary file.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from runback.core.delivery import SendResult
from runback.errors import ModelError
from runback.provider.sender import OutboundRequest

Handler = Callable[[OutboundRequest], SendResult | Awaitable[SendResult]]


class ManualClock:
    """A clock that stands still until ``advance`` or ``set`` moves it."""

    def __init__(self, start: datetime = datetime(2026, 1, 1, tzinfo=UTC)) -> None:
        self._now = start

    def now(self) -> datetime:
        return self._now

    def advance(self, seconds: float) -> datetime:
        self._now += timedelta(seconds=seconds)
        return self._now

    def set(self, moment: datetime) -> None:
        self._now = moment


def respond(status: int = 200, body: str = "", *, elapsed_ms: int = 1) -> SendResult:
    """What a receiver answering ``status`` looks like to the dispatcher."""
    return SendResult(status=status, body=body, elapsed_ms=elapsed_ms)


class HandlerSender:
    """Sends nothing: gives each request to ``handler`` and keeps it in ``requests``."""

    def __init__(self, handler: Handler = lambda _request: respond(200)) -> None:
        self._handler = handler
        self.requests: list[OutboundRequest] = []

    async def send(self, request: OutboundRequest) -> SendResult:
        self.requests.append(request)
        result = self._handler(request)
        if inspect.isawaitable(result):
            return await result
        return result


class MapFetcher:
    """Answers input fetches from ``pages`` (URL to bytes); other URLs fail as a fetch would."""

    def __init__(self, pages: dict[str, bytes] | None = None) -> None:
        self.pages = dict(pages or {})
        self.fetched: list[str] = []

    async def fetch(self, url: str, *, max_bytes: int, seconds: float) -> bytes:
        self.fetched.append(url)
        if url not in self.pages:
            raise ModelError(f"fetching {url} answered HTTP 404", code="fetch_failed")
        body = self.pages[url]
        if len(body) > max_bytes:
            raise ModelError(f"{url} is over the limit of {max_bytes} bytes", code="fetch_failed")
        return body
