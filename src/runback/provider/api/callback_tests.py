"""``POST /v1/callback-tests``: send a signed ``test.ping`` to a URL now and answer what came back.

The ping is built and signed by ``runback.core.pings`` with the organization's active secrets,
exactly as a callback attempt, and goes out through the same URL policy, guarded resolver and
sender. It runs inside the request, so its wait is ``ping_timeout`` and an organization has at
most a couple in flight. It is not a delivery: nothing is recorded, retried or counted.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from runback.core.clock import isoformat
from runback.core.delivery import SendResult
from runback.core.ids import new_id
from runback.core.pings import Ping, excerpt, new_ping, ping_failure
from runback.outbound.sender import OutboundRequest
from runback.provider.api import schemas
from runback.provider.api.deps import ApiDeps, CurrentCaller, Deps
from runback.provider.api.runs import check_callback_url
from runback.web.bodies import documented_body, read_json
from runback.web.responses import json_response
from runback.web.schemas import BODY_ERRORS, CALLER_ERRORS, documented

router = APIRouter(prefix="/v1", tags=["callbacks"])

MAX_URL_CHARS = 2048


class CallbackTestCreate(BaseModel):
    """The body of ``POST /v1/callback-tests``."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=1, max_length=MAX_URL_CHARS)
    """Where to send the ping; the URL policy of callbacks applies."""


@router.post(
    "/callback-tests",
    openapi_extra=documented_body(CallbackTestCreate),
    responses=documented(schemas.CallbackTest, fails=(*CALLER_ERRORS, *BODY_ERRORS)),
)
async def test_callback(request: Request, deps: Deps, caller: CurrentCaller) -> Response:
    """Send a signed ``test.ping`` event to ``url`` now, as a callback is sent, and answer
    the attempt: ``ok``, ``status_code``, ``latency_ms``, ``response_excerpt``,
    ``failure`` and the headers sent. Not a delivery: never retried nor recorded."""
    body = await read_json(request, CallbackTestCreate, limit=deps.max_body_bytes)
    return json_response(await send_ping(deps, caller.organization_id, body.url))


async def send_ping(deps: ApiDeps, organization: UUID, url: str) -> dict[str, Any]:
    """Send ``organization``'s signed ``test.ping`` to ``url`` now; answers the attempt as
    ``POST /v1/callback-tests`` does (the dashboard's test button too)."""
    check_callback_url(url, deps.url_policy, field="url")
    with deps.pings.slot(organization):
        secrets = (await deps.store.secrets.signing([organization]))[organization]
        now = deps.clock.now()
        ping = new_ping(ping_id=new_id(), organization_id=organization, now=now, secrets=secrets)
        result = await deps.sender.send(
            OutboundRequest(
                url=url, body=ping.body, headers=ping.headers, timeout=deps.ping_timeout
            )
        )
    return _view(ping, url, result, isoformat(now))


def _view(ping: Ping, url: str, result: SendResult, created_at: str | None) -> dict[str, Any]:
    failure = ping_failure(result)
    return {
        "id": str(ping.id),
        "url": url,
        "ok": failure is None,
        "status_code": result.status,
        "latency_ms": result.elapsed_ms,
        "response_excerpt": excerpt(result.body),
        "failure": failure,
        "failure_detail": result.describe(),
        "request": {
            "webhook_id": ping.webhook_id,
            "headers": ping.headers,
            "body": ping.body.decode(),
        },
        "created_at": created_at,
    }
