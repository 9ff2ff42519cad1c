"""``GET /v1/runs/{run_id}/stream``: a run's events as Server-Sent Events, until it ends.

Each message is one event: ``event:`` its name, ``id:`` its sequence, ``data:`` the JSON its
callback carries. The events are read from the store, so the API process streams what a
worker process makes; a client that reconnects with ``Last-Event-ID`` gets what came after.
A run that asked for no events has one: its end (id 1), in its callback's shape.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, Request
from fastapi.responses import StreamingResponse

from runback.core.payload import callback_event
from runback.core.records import Run
from runback.errors import ValidationFailedError
from runback.provider.api.deps import ApiDeps, CurrentCaller, Deps
from runback.provider.api.runs import run_of

router = APIRouter(prefix="/v1", tags=["runs"])

POLL_SECONDS = 0.25
"""How often a stream looks for new events."""
KEEPALIVE_SECONDS = 15.0
"""A comment line this often keeps proxies from closing a quiet stream."""
RECONNECT_MS = 1000
PAGE = 100


def sse_message(event: str, sequence: int, data: bytes) -> bytes:
    """One Server-Sent Events message. Compact JSON has no line breaks: one ``data`` line."""
    return b"event: %s\nid: %d\ndata: %s\n\n" % (event.encode(), sequence, data)


def _resume_after(value: str | None) -> int:
    if value is None:
        return 0
    if not value.isdigit() or len(value) > 18:
        raise ValidationFailedError.for_field(
            "Last-Event-ID", f"'{value[:40]}' is not the id of one of this run's events"
        )
    return int(value)


@router.get(
    "/runs/{run_id}/stream",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def stream_run(
    run_id: str,
    request: Request,
    deps: Deps,
    caller: CurrentCaller,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> StreamingResponse:
    """The run's events as Server-Sent Events, until its terminal event; reconnect with
    ``Last-Event-ID`` to go on after the last one received."""
    run = await run_of(deps, caller, run_id)
    after = _resume_after(last_event_id)
    return StreamingResponse(
        _messages(deps, run, after, request),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _messages(deps: ApiDeps, run: Run, after: int, request: Request) -> AsyncIterator[bytes]:
    yield b"retry: %d\n\n" % RECONNECT_MS
    loop = asyncio.get_running_loop()
    quiet_since = loop.time()
    while True:
        # The run first: its end commits with its last event, so once it reads ended,
        # the events read next include that one.
        current = await deps.store.runs.get(run.id) or run
        sent = 0
        async for message in _new_messages(deps, current, after):
            after, chunk = message
            sent += 1
            yield chunk
        if current.status.is_terminal and after >= _last(current):
            return
        if sent:
            quiet_since = loop.time()
            continue
        if await request.is_disconnected():
            return
        if loop.time() - quiet_since >= KEEPALIVE_SECONDS:
            quiet_since = loop.time()
            yield b": keepalive\n\n"
        await asyncio.sleep(POLL_SECONDS)


def _last(run: Run) -> int:
    """The sequence of an ended run's last event (a run without events has its end, 1)."""
    return run.event_sequence if run.events is not None else 1


async def _new_messages(deps: ApiDeps, run: Run, after: int) -> AsyncIterator[tuple[int, bytes]]:
    if run.events is None:
        if run.status.is_terminal and after < 1:
            body = await deps.outbox.end_body(run)
            yield 1, sse_message(callback_event(run.status), 1, body)
        return
    for event in await deps.store.events.after(run.id, after, limit=PAGE):
        yield event.sequence, sse_message(event.event, event.sequence, event.body)
