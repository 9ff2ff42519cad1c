"""``/v1`` routes of callback deliveries: a run's deliveries, one delivery, redelivery."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from runback.core.clock import isoformat
from runback.core.ids import new_id
from runback.core.records import Recovery
from runback.errors import NotFoundError, ValidationFailedError
from runback.provider.api import schemas
from runback.provider.api.deps import ApiDeps, CurrentCaller, Deps
from runback.provider.api.runs import run_of, utc
from runback.provider.api.views import delivery_view
from runback.web.auth import uuid_or_none
from runback.web.bodies import documented_body, read_json
from runback.web.responses import json_response
from runback.web.schemas import BODY_ERRORS, CALLER_ERRORS, documented

_FOUND = (*CALLER_ERRORS, 404)


router = APIRouter(prefix="/v1", tags=["callbacks"])


@router.get("/runs/{run_id}/callback", responses=documented(list[schemas.Delivery], fails=_FOUND))
async def list_run_callbacks(run_id: str, deps: Deps, caller: CurrentCaller) -> Response:
    """The run's callback deliveries, oldest first, attempts inline (a bare array)."""
    run = await run_of(deps, caller, run_id)
    found = await deps.store.deliveries.for_run(run.id, organization_id=caller.organization_id)
    return json_response([delivery_view(d, attempts) for d, attempts in found])


class RedeliveryCreate(BaseModel):
    """The optional body of ``POST /v1/runs/{run_id}/callback-redeliveries``."""

    model_config = ConfigDict(extra="forbid")

    result_id: UUID | None = None
    """Redeliver this result's event (``run.result``) instead of the run's end."""
    sequence: int | None = Field(default=None, ge=1)
    """Redeliver this progress event (``run.started``, ``run.output``, ``run.logs``), as
    it was made, instead of the run's end."""


@router.post(
    "/runs/{run_id}/callback-redeliveries",
    status_code=201,
    openapi_extra=documented_body(RedeliveryCreate, required=False),
    responses=documented(schemas.Delivery, 201, fails=(*_FOUND, *BODY_ERRORS, 409)),
)
async def redeliver_callback(
    run_id: str, request: Request, deps: Deps, caller: CurrentCaller
) -> Response:
    """A new delivery of an ended run's callback (or, with ``result_id``, of one of its
    results; with ``sequence``, of one of its progress events), its payload built from the
    run now (a progress event's as it was made); one of each event at a time."""
    run = await run_of(deps, caller, run_id)
    body = await read_json(request, RedeliveryCreate, limit=deps.max_body_bytes)
    if body.result_id is not None and body.sequence is not None:
        raise ValidationFailedError.for_field(
            "sequence", "name a result_id or a sequence, not both"
        )
    if body.result_id is not None:
        delivery = await deps.outbox.redeliver_result(run, body.result_id)
    elif body.sequence is not None:
        delivery = await deps.outbox.redeliver_event(run, body.sequence)
    else:
        delivery = await deps.outbox.redeliver(run)
    return json_response(delivery_view(delivery, []), 201)


@router.get(
    "/callback-deliveries/{delivery_id}", responses=documented(schemas.Delivery, fails=_FOUND)
)
async def get_delivery(delivery_id: str, deps: Deps, caller: CurrentCaller) -> Response:
    """One delivery, attempts inline."""
    found = None
    parsed = uuid_or_none(delivery_id)
    if parsed is not None:
        found = await deps.store.deliveries.get(parsed, organization_id=caller.organization_id)
    if found is None:
        raise NotFoundError(
            f"there is no delivery {delivery_id} in this organization",
            code="DELIVERY_NOT_FOUND",
        )
    return json_response(delivery_view(*found))


class RecoveryCreate(BaseModel):
    """The body of ``POST /v1/callback-deliveries/recoveries``."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    created_from: datetime = Field(alias="from", description="inclusive")
    created_to: datetime = Field(alias="to", description="exclusive")
    destination: str | None = Field(default=None, max_length=300, description="host:port")


def recovery_view(recovery: Recovery, counts: dict[str, int]) -> dict[str, Any]:
    return {
        "id": str(recovery.id),
        "from": isoformat(recovery.created_from),
        "to": isoformat(recovery.created_to),
        "destination": recovery.destination,
        "queued": recovery.queued,
        "skipped": recovery.skipped,
        "pending": counts.get("pending", 0) + counts.get("delivering", 0),
        "delivered": counts.get("succeeded", 0),
        "failed": counts.get("failed", 0),
        "created_at": isoformat(recovery.created_at),
    }


@router.post(
    "/callback-deliveries/recoveries",
    status_code=201,
    openapi_extra=documented_body(RecoveryCreate),
    responses=documented(schemas.Recovery, 201, fails=(*CALLER_ERRORS, *BODY_ERRORS)),
)
async def create_recovery(request: Request, deps: Deps, caller: CurrentCaller) -> Response:
    """Queue again every failed delivery created in a time range (to one destination, if
    given): each run's callback as a fresh redelivery. Progress: ``GET`` the answer's id."""
    body = await read_json(request, RecoveryCreate, limit=deps.max_body_bytes)
    start, end = utc(body.created_from, "from"), utc(body.created_to, "to")
    done = await recover(deps, caller.organization_id, start, end, body.destination)
    found = await deps.store.deliveries.recovery(done.id, organization_id=caller.organization_id)
    assert found is not None
    return json_response(recovery_view(*found), 201)


async def recover(
    deps: ApiDeps, organization_id: UUID, start: datetime, end: datetime, destination: str | None
) -> Recovery:
    """Record a recovery of ``organization_id``'s failed deliveries created in
    ``[start, end)`` and queue them again (the dashboard's recovery too)."""
    if end <= start:
        raise ValidationFailedError.for_field("to", "must be after from")
    recovery = Recovery(
        id=new_id(),
        organization_id=organization_id,
        created_from=start,
        created_to=end,
        destination=destination,
        queued=0,
        skipped=0,
        created_at=deps.clock.now(),
    )
    await deps.store.deliveries.save_recovery(recovery)
    return await deps.outbox.recover(recovery)


@router.get(
    "/callback-deliveries/recoveries/{recovery_id}",
    responses=documented(schemas.Recovery, fails=_FOUND),
)
async def get_recovery(recovery_id: str, deps: Deps, caller: CurrentCaller) -> Response:
    """A recovery's progress: how many it queued and how they are doing."""
    parsed = uuid_or_none(recovery_id)
    found = None
    if parsed is not None:
        found = await deps.store.deliveries.recovery(parsed, organization_id=caller.organization_id)
    if found is None:
        raise NotFoundError(
            f"there is no recovery {recovery_id} in this organization",
            code="RECOVERY_NOT_FOUND",
        )
    return json_response(recovery_view(*found))
