"""What ``runback listen`` follows: the organization's callback deliveries as they are made,
each with its exact body and headers signed now, so that a handler on a developer's machine
receives them as if sent to it, without a tunnel.

``GET /v1/callback-deliveries/stream`` is a Server-Sent Events stream (``event: delivery``,
``id:`` a cursor to resume from with ``Last-Event-ID``); ``GET
/v1/callback-deliveries/{id}/message`` is one stored delivery the same way, to replay it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

import orjson
from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import StreamingResponse

from runback.core.clock import isoformat
from runback.core.delivery import delivery_headers
from runback.core.records import Delivery
from runback.errors import NotFoundError
from runback.provider.api import schemas
from runback.provider.api.deps import ApiDeps, CurrentCaller, Deps
from runback.provider.api.runs import utc
from runback.web.auth import uuid_or_none
from runback.web.pages import decode_cursor, encode_cursor
from runback.web.responses import json_response
from runback.web.schemas import CALLER_ERRORS, documented, errors
from runback.web.sse import DOCUMENTED, sse_message, sse_response

router = APIRouter(prefix="/v1", tags=["callbacks"])

PAGE = 100


async def _messages(deps: ApiDeps, found: list[Delivery]) -> list[dict[str, Any]]:
    """Each delivery as listen forwards it: what it is, its body, headers signed now."""
    secrets = await deps.store.secrets.signing({d.organization_id for d in found})
    timestamp = int(deps.clock.now().timestamp())
    return [
        {
            "delivery": {
                "id": str(d.id),
                "run_id": None if d.run_id is None else str(d.run_id),
                "batch_id": None if d.batch_id is None else str(d.batch_id),
                "event_key": d.event_key,
                "webhook_id": d.webhook_id,
                "callback_url": d.callback_url,
                "is_automatic": d.is_automatic,
                "created_at": isoformat(d.created_at),
            },
            "headers": delivery_headers(d, secrets[d.organization_id], timestamp=timestamp),
            "body": d.payload_bytes.decode(),
        }
        for d in found
    ]


@router.get(
    "/callback-deliveries/stream",
    response_class=StreamingResponse,
    responses=DOCUMENTED | errors((*CALLER_ERRORS, 422)),
)
async def stream_deliveries(
    request: Request,
    deps: Deps,
    caller: CurrentCaller,
    url_prefix: Annotated[
        str | None, Query(max_length=2048, description="callback URLs starting with this")
    ] = None,
    model: Annotated[str | None, Query(max_length=200)] = None,
    since: Annotated[datetime | None, Query(description="default: now")] = None,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> StreamingResponse:
    """The organization's deliveries as they are made (from ``since``, or now), each as
    ``event: delivery`` with its body and freshly signed headers; resumable with
    ``Last-Event-ID``. The stream does not end: the client closes it."""
    position = decode_cursor(last_event_id) or (
        utc(since, "since") if since is not None else deps.clock.now(),
        UUID(int=0),
    )

    async def poll() -> tuple[list[bytes], bool]:
        nonlocal position
        found = await deps.store.feed.after(
            caller.organization_id, position, url_prefix=url_prefix, model=model, limit=PAGE
        )
        if not found:
            return [], False
        position = (found[-1].created_at, found[-1].id)
        messages = await _messages(deps, found)
        return [
            sse_message("delivery", encode_cursor((d.created_at, d.id)) or "", orjson.dumps(m))
            for d, m in zip(found, messages, strict=True)
        ], False

    return sse_response(poll, request)


@router.get(
    "/callback-deliveries/{delivery_id}/message",
    responses=documented(schemas.DeliveryMessage, fails=(*CALLER_ERRORS, 404)),
)
async def delivery_message(delivery_id: str, deps: Deps, caller: CurrentCaller) -> Response:
    """One delivery as ``runback listen --replay`` forwards it: its body and headers signed
    now."""
    parsed = uuid_or_none(delivery_id)
    found = None
    if parsed is not None:
        found = await deps.store.deliveries.get(parsed, organization_id=caller.organization_id)
    if found is None:
        raise NotFoundError(
            f"there is no delivery {delivery_id} in this organization", code="DELIVERY_NOT_FOUND"
        )
    [message] = await _messages(deps, [found[0]])
    return json_response(message)
