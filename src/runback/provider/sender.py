"""The outbound HTTP seam: one POST per attempt, never a redirect, never a cookie.

``Sender`` is what the dispatcher needs; ``AiohttpSender`` is the real one and
``runback.testing.HandlerSender`` the twin. The URL goes out exactly as the user gave it
(receivers may authenticate by its query string), so it is passed on already encoded.
"""

from __future__ import annotations

import codecs
import time
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol, Self

import aiohttp
from yarl import URL

from runback.core.delivery import RESPONSE_BODY_LIMIT, SendError, SendResult


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


class AiohttpSender:
    """The real sender: one pooled aiohttp session for every destination."""

    def __init__(self, *, max_connections: int = 256, user_agent: str = "runback") -> None:
        self._max_connections = max_connections
        self._user_agent = user_agent
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Self:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self._max_connections, limit_per_host=0),
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
            async with self.session.post(
                URL(request.url, encoded=True),
                data=request.body,
                headers=request.headers,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=request.timeout),
            ) as response:
                return SendResult(
                    status=response.status,
                    body=await _head(response.content),
                    elapsed_ms=_elapsed_ms(started),
                )
        except TimeoutError:
            return SendResult(
                status=None,
                body=None,
                elapsed_ms=_elapsed_ms(started),
                error=SendError.TIMEOUT,
                error_message=f"no complete answer within {request.timeout:g} s",
            )
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            return SendResult(
                status=None,
                body=None,
                elapsed_ms=_elapsed_ms(started),
                error=SendError.CONNECTION_ERROR,
                error_message=f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__,
            )
