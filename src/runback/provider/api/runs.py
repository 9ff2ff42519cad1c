"""``/v1`` routes of runs: submit, poll, and the run's callback deliveries."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from runback.core.ids import new_id
from runback.core.payload import dumps
from runback.core.records import Run
from runback.core.runs import new_run
from runback.errors import NotFoundError, UrlRefusedError, ValidationFailedError
from runback.provider.api.bodies import read_json
from runback.provider.api.deps import CurrentCaller, Deps
from runback.provider.api.views import delivery_view, json_response, run_view

router = APIRouter(prefix="/v1", tags=["runs"])


class RunCreate(BaseModel):
    """The body of ``POST /v1/models/{owner}/{model}/runs``."""

    model_config = ConfigDict(extra="forbid")

    input: dict[str, Any]
    callback_url: str | None = None
    metadata: dict[str, Any] | None = None
    client_ref: str | None = Field(default=None, max_length=256)


def _run_not_found(run_id: str) -> NotFoundError:
    return NotFoundError(f"there is no run {run_id} in this organization", code="RUN_NOT_FOUND")


async def _run_of(deps: Deps, caller: CurrentCaller, run_id: str) -> Run:
    try:
        parsed = UUID(run_id)
    except ValueError:
        raise _run_not_found(run_id) from None
    run = await deps.store.runs.get(parsed, organization_id=caller.organization_id)
    if run is None:
        raise _run_not_found(run_id)
    return run


@router.post(
    "/models/{model:path}/runs",
    status_code=201,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": RunCreate.model_json_schema()}},
        }
    },
)
async def create_run(model: str, request: Request, deps: Deps, caller: CurrentCaller) -> Response:
    """Submit a run; answered at once with the queued run, before any work starts."""
    if deps.registry.get(model) is None:
        raise NotFoundError(f"model {model} is not served here", code="MODEL_UNAVAILABLE")
    body = await read_json(request, RunCreate, limit=deps.max_body_bytes)
    if body.callback_url is not None:
        try:
            deps.url_policy.check(body.callback_url)
        except UrlRefusedError as exc:
            raise ValidationFailedError.for_field("callback_url", str(exc)) from None
    run = new_run(
        run_id=new_id(),
        organization_id=caller.organization_id,
        model=model,
        input=dumps(body.input),
        now=deps.clock.now(),
        callback_url=body.callback_url,
        metadata=None if body.metadata is None else dumps(body.metadata),
        client_ref=body.client_ref,
    )
    await deps.store.runs.insert(run)
    deps.on_run_created()
    return json_response(run_view(run), 201)


@router.get("/runs/{run_id}")
async def get_run(run_id: str, deps: Deps, caller: CurrentCaller) -> Response:
    """One run, as it stands now."""
    return json_response(run_view(await _run_of(deps, caller, run_id)))


@router.get("/runs/{run_id}/callback")
async def list_run_callbacks(run_id: str, deps: Deps, caller: CurrentCaller) -> Response:
    """The run's callback deliveries, oldest first, attempts inline (a bare array)."""
    run = await _run_of(deps, caller, run_id)
    found = await deps.store.deliveries.for_run(run.id, organization_id=caller.organization_id)
    return json_response([delivery_view(d, attempts) for d, attempts in found])
