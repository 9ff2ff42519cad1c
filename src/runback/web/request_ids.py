"""Request ids: every request gets one, on each of its log lines and in its answer.

A caller's ``X-Request-Id`` is kept when it is sane (up to 128 of ``A-Za-z0-9._:-``), so a
proxy's or client's id ties their logs to ours; anything else is replaced by a new id rather
than trusted into log lines. The answer echoes the id in ``X-Request-Id``.
"""

from __future__ import annotations

import re
import uuid
from typing import Final

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from runback import logs

HEADER: Final = b"x-request-id"
_SANE: Final = re.compile(rb"^[A-Za-z0-9._:-]{1,128}$")


def request_id_of(headers: list[tuple[bytes, bytes]]) -> str:
    """The caller's request id when sane, else a new one."""
    for name, value in headers:
        if name == HEADER and _SANE.match(value):
            return value.decode("ascii")
    return uuid.uuid4().hex


class RequestIds:
    """ASGI middleware binding ``request_id`` for the request and echoing it back."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_of(scope["headers"])
        echoed = (b"X-Request-Id", request_id.encode("ascii"))

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), echoed]
            await send(message)

        with logs.bound(request_id=request_id):
            await self.app(scope, receive, send_with_id)
