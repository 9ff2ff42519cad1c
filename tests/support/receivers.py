"""A real HTTP receiver on loopback, for tests of whatever sends runback's callbacks.

``LoopbackReceiver`` runs an aiohttp server on ``127.0.0.1`` with an ephemeral port, records
every request as it arrives (before its handler runs, so a handler that blocks still leaves a
trace) and answers with ``handler``, which a test may swap at any time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Self

from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class ReceivedRequest:
    """One request exactly as the receiver saw it."""

    method: str
    raw_path: str  # path and query string, byte for byte as sent
    headers: CIMultiDictProxy[str]
    body: bytes

    @property
    def path(self) -> str:
        return self.raw_path.partition("?")[0]

    @property
    def query_string(self) -> str:
        return self.raw_path.partition("?")[2]


def answer(
    status: int = 200, body: str | bytes = "", headers: Mapping[str, str] | None = None
) -> Handler:
    """A handler that always gives the same answer."""

    async def handle(_request: web.Request) -> web.StreamResponse:
        payload = body.encode() if isinstance(body, str) else body
        return web.Response(status=status, body=payload, headers=headers)

    return handle


def block_until(release: asyncio.Event, then: Handler | None = None) -> Handler:
    """A handler that holds each request until ``release`` is set, then answers with ``then``."""
    after = then if then is not None else answer()

    async def handle(request: web.Request) -> web.StreamResponse:
        await release.wait()
        return await after(request)

    return handle


class LoopbackReceiver:
    """An aiohttp server on 127.0.0.1:<ephemeral>, as an async context manager."""

    def __init__(self, handler: Handler | None = None, *, shutdown_timeout: float = 2.0) -> None:
        self.handler: Handler = handler if handler is not None else answer()
        self.requests: list[ReceivedRequest] = []
        self._shutdown_timeout = shutdown_timeout
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("LoopbackReceiver is used outside its 'async with' block")
        return self._port

    @property
    def url(self) -> str:
        """The base URL, without a trailing slash."""
        return f"http://127.0.0.1:{self.port}"

    def url_for(self, path_and_query: str) -> str:
        """``url`` followed by ``path_and_query`` (which starts with ``/``), left as given."""
        return self.url + path_and_query

    async def __aenter__(self) -> Self:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        runner = web.AppRunner(app, shutdown_timeout=self._shutdown_timeout, access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, "127.0.0.1", 0).start()
            port = runner.addresses[0][1]
        except BaseException:
            await runner.cleanup()
            raise
        self._runner, self._port = runner, int(port)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()  # cached: the handler may read it again
        self.requests.append(
            ReceivedRequest(
                method=request.method,
                raw_path=request.raw_path,
                headers=CIMultiDictProxy(CIMultiDict(request.headers)),
                body=body,
            )
        )
        return await self.handler(request)
