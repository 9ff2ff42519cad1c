"""``/v1/expected``: the runs the receiver is told to expect, and how each stands.

``POST`` makes an expectation (``201``) or answers the one there already (``200``): the
sender's caller may repeat it freely. Only a source the reconciler can poll (its
``sender_url`` and key in the receive config) may be expected, so an expectation never
waits for a poll that cannot happen.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from runback.core.clock import isoformat
from runback.core.expected import ExpectedRun, ExpectedState
from runback.errors import BadRequestError, ValidationFailedError
from runback.receiver.config import SOURCE_NAME
from runback.receiving import schemas
from runback.receiving.deps import Authorized, Deps
from runback.web.bodies import documented_body, read_json
from runback.web.pages import DEFAULT_LIMIT, Limit
from runback.web.responses import json_response
from runback.web.schemas import BODY_ERRORS, Page, documented

_AUTHORIZED = (400, 401, 503)

expected = APIRouter(prefix="/v1", tags=["expected"])

_MAX_BODY = 16 * 1024
Position = tuple[datetime, str, str]


class ExpectRun(BaseModel):
    """A run whose end the receiver is to expect."""

    model_config = ConfigDict(extra="forbid")

    source: str = Field(pattern=SOURCE_NAME.pattern, description="the source it calls back to")
    run_id: str = Field(min_length=1, max_length=200, description="the run's id at its sender")
    expected_by: AwareDatetime | None = Field(
        default=None, description="poll the run if no callback came by then"
    )


def expected_view(item: ExpectedRun) -> dict[str, Any]:
    return {
        "source": item.source,
        "run_id": item.run_id,
        "state": item.state.value,
        "expected_by": isoformat(item.expected_by),
        "next_poll_at": isoformat(item.next_poll_at),
        "attempts": item.attempts,
        "last_error": item.last_error,
        "event_id": None if item.event_id is None else str(item.event_id),
        "created_at": isoformat(item.created_at),
        "updated_at": isoformat(item.updated_at),
        "settled_at": isoformat(item.settled_at),
    }


@expected.post(
    "/expected",
    status_code=201,
    openapi_extra=documented_body(ExpectRun),
    responses=documented(schemas.Expected, 201, also=(200,), fails=(*_AUTHORIZED, *BODY_ERRORS)),
)
async def expect(request: Request, deps: Deps, _: Authorized) -> Response:
    """Expect a run's end from a source; polled from its sender if no callback comes."""
    body = await read_json(request, ExpectRun, limit=_MAX_BODY)
    source = deps.config.source(body.source)
    if source.sender is None:
        raise ValidationFailedError.for_field(
            "source",
            f"{body.source} has no sender_url and key in the receive config: "
            "nothing could poll its runs",
        )
    now = deps.clock.now()
    after = deps.reconcile_after
    if source.reconcile_after is not None:
        after = timedelta(seconds=source.reconcile_after)
    by = now + after if body.expected_by is None else _utc(body.expected_by)
    found, created = await deps.store.expected.expect(
        body.source, body.run_id, expected_by=by, now=now
    )
    if created:
        deps.on_expected()
    return json_response(expected_view(found), 201 if created else 200)


@expected.get("/expected", responses=documented(Page[schemas.Expected], fails=_AUTHORIZED))
async def list_expected(
    deps: Deps,
    _: Authorized,
    state: Annotated[ExpectedState | None, Query(description="only this state")] = None,
    source: str | None = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Annotated[str | None, Query(description="the `next` of the previous page")] = None,
) -> Response:
    """Expected runs, newest first, a page at a time."""
    found, after = await deps.store.expected.page(
        state=state, source=source, after=decode_position(cursor), limit=limit
    )
    return json_response(
        {"items": [expected_view(e) for e in found], "next": encode_position(after)}
    )


def _utc(moment: datetime) -> datetime:
    try:
        return moment.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00:00+01:00 has no UTC instant
        raise ValidationFailedError.for_field(
            "expected_by", "is outside the years 1 to 9999 once in UTC"
        ) from None


def encode_position(position: Position | None) -> str | None:
    """An expectations page's cursor: its last item's ``(created_at, source, run_id)``."""
    if position is None:
        return None
    created_at, source, run_id = position
    text = f"{isoformat(created_at)}|{source}|{run_id}"
    return base64.urlsafe_b64encode(text.encode()).decode()


def decode_position(cursor: str | None) -> Position | None:
    """The position a cursor stands for; ``400`` for text this API did not give out."""
    if cursor is None:
        return None
    try:
        created_at, source, run_id = base64.urlsafe_b64decode(cursor).decode().split("|", 2)
        return datetime.fromisoformat(created_at), source, run_id
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise BadRequestError(
            "cursor is not one this API gave out: pass the `next` of the previous page"
        ) from None
