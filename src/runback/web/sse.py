"""Server-Sent Events: framing, and a stream that polls for news until it is done.

Polling keeps a stream independent of which process made what it shows: whatever a worker
commits, the API process streaming it reads from the store.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from fastapi import Request
from fastapi.responses import StreamingResponse

POLL_SECONDS = 0.25
"""How often a stream looks for news."""
KEEPALIVE_SECONDS = 15.0
"""A comment line this often keeps proxies from closing a quiet stream."""
RECONNECT_MS = 1000

Poll = Callable[[], Awaitable[tuple[list[bytes], bool]]]
"""Answers the messages that are new since its last call, and whether the stream is done."""

_MESSAGE = {
    "type": "object",
    "properties": {
        "event": {"type": "string"},
        "id": {"type": "string", "description": "resume after it with Last-Event-ID"},
        "data": {"type": "string", "contentMediaType": "application/json"},
    },
    "required": ["event", "id", "data"],
}
DOCUMENTED: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "Server-Sent Events, each `event:` its name, `id:` its cursor, `data:` "
        "one line of JSON",
        "content": {"text/event-stream": {"schema": _MESSAGE}},
    }
}
"""The ``responses`` of a streaming route, for the OpenAPI document."""


def sse_message(event: str, event_id: str | int, data: bytes) -> bytes:
    """One message. Compact JSON has no line breaks: ``data`` is one line."""
    return b"event: %s\nid: %s\ndata: %s\n\n" % (event.encode(), str(event_id).encode(), data)


def sse_response(poll: Poll, request: Request) -> StreamingResponse:
    """A ``text/event-stream`` answer of what ``poll`` finds, until it says it is done or
    the client goes away."""
    return StreamingResponse(
        _stream(poll, request),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _stream(poll: Poll, request: Request) -> AsyncIterator[bytes]:
    yield b"retry: %d\n\n" % RECONNECT_MS
    loop = asyncio.get_running_loop()
    quiet_since = loop.time()
    while True:
        messages, done = await poll()
        for message in messages:
            yield message
        if done:
            return
        if messages:
            quiet_since = loop.time()
            continue
        if await request.is_disconnected():
            return
        if loop.time() - quiet_since >= KEEPALIVE_SECONDS:
            quiet_since = loop.time()
            yield b": keepalive\n\n"
        await asyncio.sleep(POLL_SECONDS)
