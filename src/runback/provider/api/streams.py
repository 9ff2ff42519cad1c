"""``GET /v1/runs/{run_id}/stream``: a run's events as Server-Sent Events, until it ends.

Each message is one event: ``event:`` its name, ``id:`` its sequence, ``data:`` the JSON its
callback carries. The events are read from the store, so the API process streams what a
worker process makes; a client that reconnects with ``Last-Event-ID`` gets what came after.
A run that asked for no events has one: its end (id 1), in its callback's shape.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Request
from fastapi.responses import StreamingResponse

from runback.core.payload import callback_event
from runback.core.records import Run
from runback.errors import ValidationFailedError
from runback.provider.api.deps import ApiDeps, CurrentCaller, Deps
from runback.provider.api.runs import run_of
from runback.web.schemas import CALLER_ERRORS, errors
from runback.web.sse import DOCUMENTED, sse_message, sse_response

router = APIRouter(prefix="/v1", tags=["runs"])

PAGE = 100


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
    responses=DOCUMENTED | errors((*CALLER_ERRORS, 404, 422)),
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
    return sse_response(
        _RunEvents(deps, await run_of(deps, caller, run_id), _resume_after(last_event_id)),
        request,
    )


class _RunEvents:
    """What is new on a run's stream, each time it is asked."""

    def __init__(self, deps: ApiDeps, run: Run, after: int) -> None:
        self._deps = deps
        self._run = run
        self._after = after

    async def __call__(self) -> tuple[list[bytes], bool]:
        # The run first: its end commits with its last event, so once it reads ended,
        # the events read next include that one.
        run = await self._deps.store.runs.get(self._run.id) or self._run
        if run.events is None:  # one event: its end, in its callback's shape
            if not run.status.is_terminal or self._after >= 1:
                return [], run.status.is_terminal
            self._after = 1
            body = await self._deps.outbox.end_body(run)
            return [sse_message(callback_event(run.status), 1, body)], True
        found = await self._deps.store.events.after(run.id, self._after, limit=PAGE)
        if found:
            self._after = found[-1].sequence
        done = run.status.is_terminal and self._after >= run.event_sequence
        return [sse_message(e.event, e.sequence, e.body) for e in found], done
