"""Twins of runback's seams, for runback's tests and its users'.

* ``ManualClock``: time that moves only when told.
* ``HandlerSender``: an outbound sender that hands each request to a function.
* ``respond``: a ``SendResult`` in one call.
* ``MapFetcher``: input URLs answered from a dict.
* ``StaticResolver``: host names resolved from a dict (or a function), without any DNS.

The store has no twin: tests use the real SQLite store on a temporary file.
"""

from __future__ import annotations

import inspect
import ipaddress
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta

from runback.core.delivery import SendResult
from runback.core.urlpolicy import IPAddress
from runback.errors import ModelError
from runback.outbound.resolver import ResolutionError
from runback.outbound.sender import OutboundRequest

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


Answers = Mapping[str, Sequence[str | IPAddress]] | Callable[[str], Sequence[str | IPAddress]]


class StaticResolver:
    """Resolves names from ``answers`` and keeps each name asked in ``lookups``.

    ``answers`` maps a name to its addresses, or is a function of the name (in lower case,
    without a trailing dot) that returns them or raises ``ResolutionError``; a name the
    mapping lacks does not resolve. Give it to ``AiohttpSender(resolver=...)``.
    """

    def __init__(self, answers: Answers) -> None:
        self._answers = answers if callable(answers) else {_name(k): v for k, v in answers.items()}
        self.lookups: list[str] = []

    async def resolve(self, host: str, port: int) -> list[IPAddress]:
        self.lookups.append(host)
        name = _name(host)
        if callable(self._answers):
            found = self._answers(name)
        elif name in self._answers:
            found = self._answers[name]
        else:
            raise ResolutionError(host, "StaticResolver has no answer for it")
        return [ipaddress.ip_address(a) if isinstance(a, str) else a for a in found]


def _name(host: str) -> str:
    return host.lower().rstrip(".")
