"""``/v1`` routes of callback deliveries: a run's deliveries, one delivery, redelivery."""

from __future__ import annotations

from fastapi import APIRouter, Response

from runback.errors import NotFoundError
from runback.provider.api.deps import CurrentCaller, Deps, uuid_or_none
from runback.provider.api.runs import run_of
from runback.provider.api.views import delivery_view, json_response

router = APIRouter(prefix="/v1", tags=["callbacks"])


@router.get("/runs/{run_id}/callback")
async def list_run_callbacks(run_id: str, deps: Deps, caller: CurrentCaller) -> Response:
    """The run's callback deliveries, oldest first, attempts inline (a bare array)."""
    run = await run_of(deps, caller, run_id)
    found = await deps.store.deliveries.for_run(run.id, organization_id=caller.organization_id)
    return json_response([delivery_view(d, attempts) for d, attempts in found])


@router.post("/runs/{run_id}/callback-redeliveries", status_code=201)
async def redeliver_callback(run_id: str, deps: Deps, caller: CurrentCaller) -> Response:
    """A new delivery of an ended run's callback, its payload built from the run now."""
    run = await run_of(deps, caller, run_id)
    delivery = await deps.outbox.redeliver(run)
    return json_response(delivery_view(delivery, []), 201)


@router.get("/callback-deliveries/{delivery_id}")
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
