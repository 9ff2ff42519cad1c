"""The outbound HTTP seam: one POST per attempt, never a redirect, never a cookie.

``Sender`` is what the dispatcher needs; ``AiohttpSender`` is the real one and
``runback.testing.HandlerSender`` the twin. The URL goes out exactly as the user gave it
(receivers may authenticate by its query string), so it is passed on already encoded.

Given a ``UrlPolicy``, the sender's session resolves names through a ``GuardedResolver``: every
connection made with it (callbacks, and the input fetches and output copies that share the
session) goes only to addresses the policy admits. ``classify`` turns what a request raised
into a ``SendError`` and a message, for every caller of the session.
"""

from __future__ import annotations

import codecs
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Protocol, Self

import aiohttp
from yarl import URL

from runback.core.delivery import (
    RESPONSE_BODY_LIMIT,
    SendError,
    SendResult,
    retry_after_seconds,
)
from runback.core.urlpolicy import UrlPolicy
from runback.errors import UrlRefusedError
from runback.outbound.resolver import (
    BlockedAddressError,
    GuardedResolver,
    ResolutionError,
    Resolver,
    ResolverAdapter,
    SystemResolver,
)


@dataclass(frozen=True, slots=True)
class OutboundRequest:
    """One POST of an attempt."""

    url: str
    body: bytes
    headers: Mapping[str, str]
    timeout: float


class Sender(Protocol):
    """Sends one request and reports what came back; never raises for network trouble."""

    async def send(self, request: OutboundRequest) -> SendResult: ...


async def _head(content: aiohttp.StreamReader) -> str:
    """The first ``RESPONSE_BODY_LIMIT`` bytes of an answer, as text of at most that size.

    ``read(n)`` answers what is buffered, so it is called until the limit or the end; a
    character cut by the limit is dropped rather than replaced (a replacement would be
    longer than what it replaces).
    """
    head = bytearray()
    while len(head) < RESPONSE_BODY_LIMIT:
        chunk = await content.read(RESPONSE_BODY_LIMIT - len(head))
        if not chunk:
            break
        head += chunk
    return codecs.getincrementaldecoder("utf-8")("replace").decode(bytes(head), final=False)


def _elapsed_ms(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)


def classify(exc: BaseException) -> tuple[SendError, str]:
    """What kind of failure a request raised, and a one-line account of it."""
    cause = exc.os_error if isinstance(exc, aiohttp.ClientConnectorError) else exc
    if isinstance(cause, BlockedAddressError):
        return SendError.BLOCKED_URL, str(cause.strerror)
    if isinstance(cause, ResolutionError):
        return SendError.DNS_ERROR, str(cause.strerror)
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return SendError.DNS_ERROR, f"DNS lookup failed: {exc}"
    tls = aiohttp.ClientSSLError | aiohttp.ServerFingerprintMismatch | ssl.SSLError
    if isinstance(exc, tls) or isinstance(cause, ssl.SSLError):
        return SendError.TLS_ERROR, f"TLS failed: {_text(exc)}"
    if isinstance(exc, TimeoutError):
        return SendError.TIMEOUT, f"timed out: {_text(exc)}"
    return SendError.CONNECTION_ERROR, _text(exc)


def _text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


class AiohttpSender:
    """The real sender: one pooled aiohttp session for every destination."""

    def __init__(
        self,
        *,
        max_connections: int = 256,
        user_agent: str = "runback",
        resolver: Resolver | None = None,
        url_policy: UrlPolicy | None = None,
    ) -> None:
        """``url_policy`` guards every request and every resolved address (see the module);
        ``resolver`` replaces the system's (tests use ``runback.testing.StaticResolver``)."""
        self._max_connections = max_connections
        self._user_agent = user_agent
        self._resolver = resolver
        self._url_policy = url_policy
        self._session: aiohttp.ClientSession | None = None

    def _aiohttp_resolver(self) -> ResolverAdapter | None:
        if self._url_policy is not None:
            return GuardedResolver(self._resolver or SystemResolver(), self._url_policy)
        return ResolverAdapter(self._resolver) if self._resolver is not None else None

    async def __aenter__(self) -> Self:
        connector = aiohttp.TCPConnector(
            limit=self._max_connections, limit_per_host=0, resolver=self._aiohttp_resolver()
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),
            headers={"User-Agent": self._user_agent},
            auto_decompress=False,
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        """The pooled session, to share with other outbound callers (input fetches)."""
        if self._session is None:
            raise RuntimeError("AiohttpSender is used outside its 'async with' block")
        return self._session

    async def send(self, request: OutboundRequest) -> SendResult:
        started = time.perf_counter()
        try:
            if self._url_policy is not None:  # literal addresses never reach the resolver
                self._url_policy.check(request.url)
            async with self.session.post(
                URL(request.url, encoded=True),
                data=request.body,
                headers=request.headers,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=request.timeout),
            ) as response:
                waited = None
                if response.status in (429, 503):
                    waited = retry_after_seconds(
                        response.headers.get("Retry-After"), now=datetime.now(UTC)
                    )
                return SendResult(
                    status=response.status,
                    body=await _head(response.content),
                    elapsed_ms=_elapsed_ms(started),
                    retry_after=waited,
                )
        except UrlRefusedError as exc:
            error, message = SendError.BLOCKED_URL, str(exc)
        except TimeoutError:
            error, message = SendError.TIMEOUT, f"no complete answer within {request.timeout:g} s"
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            error, message = classify(exc)
        return SendResult(
            status=None,
            body=None,
            elapsed_ms=_elapsed_ms(started),
            error=error,
            error_message=message,
        )
