"""``/v1/ordered-callbacks``: callback URLs whose callbacks go out one at a time, in the
order they were made, and the release of a stuck head.

A URL is named in the JSON body (``{"callback_url": ...}``), exactly as runs give it: it is
compared byte for byte. See ``docs/ordered-delivery.md`` for what ordering costs.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from runback.core.clock import isoformat
from runback.errors import NotFoundError
from runback.provider.api import schemas
from runback.provider.api.deps import CurrentCaller, Deps
from runback.provider.api.runs import check_callback_url
from runback.provider.api.views import delivery_view
from runback.store import OrderedUrl
from runback.web.bodies import documented_body, read_json
from runback.web.pages import page
from runback.web.responses import json_response
from runback.web.schemas import BODY_ERRORS, CALLER_ERRORS, Page, documented, errors

router = APIRouter(prefix="/v1", tags=["ordered callbacks"])


class OrderedCallbackBody(BaseModel):
    """The body of every ``/v1/ordered-callbacks`` write."""

    model_config = ConfigDict(extra="forbid")

    callback_url: str = Field(max_length=2048, description="exactly as runs give it")


def _head_view(found: OrderedUrl) -> dict[str, Any] | None:
    head = found.head
    if head is None:
        return None
    return {
        "delivery_id": str(head.id),
        "run_id": None if head.run_id is None else str(head.run_id),
        "event_key": head.event_key,
        "status_code": head.status.value,
        "attempt_count": head.attempt_count,
        "max_attempts": head.max_attempts,
        "next_attempt_at": isoformat(head.next_attempt_at),
        "failure_reason_code": head.failure_reason_code,
        "failure_detail": head.failure_detail,
        "created_at": isoformat(head.created_at),
    }


def ordered_view(found: OrderedUrl) -> dict[str, Any]:
    """An ordered URL with its head: the oldest of its callbacks in flight, which every
    later one waits for."""
    return {
        "callback_url": found.ordered.callback_url,
        "created_at": isoformat(found.ordered.created_at),
        "in_flight": found.in_flight,
        "head": _head_view(found),
    }


def _not_ordered(url: str) -> NotFoundError:
    return NotFoundError(
        f"callbacks to {url} are not ordered in this organization", code="NOT_ORDERED"
    )


async def _body(request: Request, deps: Deps) -> OrderedCallbackBody:
    return await read_json(request, OrderedCallbackBody, limit=deps.max_body_bytes)


@router.put(
    "/ordered-callbacks",
    openapi_extra=documented_body(OrderedCallbackBody),
    responses=documented(
        schemas.OrderedCallback, 200, also=(201,), fails=(*CALLER_ERRORS, *BODY_ERRORS)
    ),
)
async def order_callbacks(request: Request, deps: Deps, caller: CurrentCaller) -> Response:
    """Deliver the organization's callbacks to ``callback_url`` in the order they are made,
    each only after the previous one succeeded or failed: ``201`` when newly switched on,
    ``200`` when it already was. Callbacks made before are not ordered."""
    body = await _body(request, deps)
    # Only here: a URL the policy refuses since must still be switched off and released.
    check_callback_url(body.callback_url, deps.url_policy)
    _, made = await deps.ordering.switch_on(caller.organization_id, body.callback_url)
    found = await deps.store.ordering.get(caller.organization_id, body.callback_url)
    assert found is not None
    return json_response(ordered_view(found), 201 if made else 200)


@router.delete(
    "/ordered-callbacks",
    status_code=204,
    openapi_extra=documented_body(OrderedCallbackBody),
    responses=errors({*CALLER_ERRORS, *BODY_ERRORS, 404}),
)
async def unorder_callbacks(request: Request, deps: Deps, caller: CurrentCaller) -> Response:
    """Stop ordering callbacks to ``callback_url``: those waiting their turn go out side by
    side at once. ``204``; ``404`` when it was not ordered."""
    body = await _body(request, deps)
    if not await deps.ordering.switch_off(caller.organization_id, body.callback_url):
        raise _not_ordered(body.callback_url)
    return Response(status_code=204)


@router.get(
    "/ordered-callbacks",
    responses=documented(Page[schemas.OrderedCallback], fails=CALLER_ERRORS),
)
async def list_ordered_callbacks(deps: Deps, caller: CurrentCaller) -> Response:
    """The organization's ordered callback URLs, each with its head (null when nothing is
    in flight): its status, attempts, next attempt and latest failure."""
    found = await deps.ordering.listing(caller.organization_id)
    return json_response(page([ordered_view(f) for f in found], None))


@router.post(
    "/ordered-callbacks/release",
    openapi_extra=documented_body(OrderedCallbackBody),
    responses=documented(schemas.Delivery, fails=(*CALLER_ERRORS, *BODY_ERRORS, 404, 409)),
)
async def release_head(request: Request, deps: Deps, caller: CurrentCaller) -> Response:
    """Give up the head of an ordered URL: it ends ``failed`` with ``released`` and the
    next one goes at once. Answers the released delivery. ``409`` while the head is being
    attempted (try again when that attempt ends); ``404`` when nothing is in flight."""
    body = await _body(request, deps)
    if await deps.store.ordering.get(caller.organization_id, body.callback_url) is None:
        raise _not_ordered(body.callback_url)
    released = await deps.ordering.release(caller.organization_id, body.callback_url)
    return json_response(delivery_view(released, []))
