"""``/v1`` routes of batches: submit (idempotently), poll, list items, cancel, callbacks.

A batch's items are runs; each item's input sits in ``input[i]``, with two keys of its own
taken out before the model sees it: ``client_ref`` and ``callback_url`` (an item with one
sends its own run callback too). The batch's one callback goes to the batch's
``callback_url`` once every item has ended.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from runback.core.batches import MAX_ITEMS, as_submitted, new_batch
from runback.core.ids import new_id
from runback.core.payload import dumps
from runback.core.records import Batch, Run
from runback.core.runs import as_submitted as as_submitted_run
from runback.core.runs import new_run
from runback.core.states import BatchStatus
from runback.errors import NotFoundError, ValidationFailedError
from runback.provider.api import schemas
from runback.provider.api.deps import ApiDeps, CurrentCaller, Deps
from runback.provider.api.runs import (
    IDEMPOTENCY_WINDOW,
    IdempotencyKey,
    cancel,
    check_callback_url,
    check_metadata,
    request_hash,
    served_model,
)
from runback.provider.api.views import (
    batch_view,
    callback_summary,
    delivery_view,
    item_view,
)
from runback.provider.registry import Model
from runback.store import Idempotency
from runback.web.auth import uuid_or_none
from runback.web.bodies import documented_body, read_json, validation_error
from runback.web.pages import DEFAULT_LIMIT, Cursor, Limit, decode_index_cursor, index_page
from runback.web.responses import json_response
from runback.web.schemas import BODY_ERRORS, CALLER_ERRORS, Page, documented

_FOUND = (*CALLER_ERRORS, 404)


router = APIRouter(prefix="/v1", tags=["batches"])

ITEM_KEYS = ("client_ref", "callback_url")
"""An item's own keys, taken out of its input."""
MAX_CLIENT_REF = 256


class BatchCreate(BaseModel):
    """The body of ``POST /v1/models/{owner}/{model}/batches``."""

    model_config = ConfigDict(extra="forbid")

    input: list[Any] = Field(min_length=1, max_length=MAX_ITEMS)
    """One input per item; an item may carry its own ``client_ref`` and ``callback_url``."""
    callback_url: str | None = None
    metadata: dict[str, Any] | None = None


async def batch_of(deps: ApiDeps, caller: CurrentCaller, batch_id: str) -> Batch:
    """The caller's batch ``batch_id``, or ``404 BATCH_NOT_FOUND``."""
    parsed = uuid_or_none(batch_id)
    batch = None
    if parsed is not None:
        batch = await deps.store.batches.get(parsed, organization_id=caller.organization_id)
    if batch is None:
        raise NotFoundError(
            f"there is no batch {batch_id} in this organization", code="BATCH_NOT_FOUND"
        )
    return batch


async def batch_status(deps: ApiDeps, batch: Batch) -> BatchStatus:
    """A batch's status now: a stored batch says only whether it ended."""
    if batch.status.is_terminal or batch.items_done > 0:
        return batch.status if batch.status.is_terminal else BatchStatus.RUNNING
    return BatchStatus.RUNNING if await deps.store.batches.started(batch.id) else batch.status


def _item(
    index: int, given: dict[str, Any], served: Model
) -> tuple[dict[str, Any], dict[str, Any]]:
    """An item's model input and its own keys; a ``422`` naming ``input[i].<field>``."""
    own = {key: given.pop(key) for key in ITEM_KEYS if key in given}
    where = f"input[{index}]"
    client_ref = own.get("client_ref")
    if client_ref is not None and (
        not isinstance(client_ref, str) or len(client_ref) > MAX_CLIENT_REF
    ):
        raise ValidationFailedError.for_field(
            f"{where}.client_ref", f"must be text of at most {MAX_CLIENT_REF} characters"
        )
    callback_url = own.get("callback_url")
    if callback_url is not None and not isinstance(callback_url, str):
        raise ValidationFailedError.for_field(f"{where}.callback_url", "must be a URL")
    if served.input_model is not None:
        try:
            served.input_model.model_validate(given)
        except ValidationError as exc:
            raise validation_error(exc.errors(), prefix=where) from None
    return given, own


@router.post(
    "/models/{model:path}/batches",
    status_code=201,
    openapi_extra=documented_body(BatchCreate),
    responses=documented(schemas.Batch, 201, fails=(*CALLER_ERRORS, *BODY_ERRORS, 404, 409)),
)
async def create_batch(
    model: str,
    request: Request,
    deps: Deps,
    caller: CurrentCaller,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Submit 1 to 100 runs of one model as a batch; answered at once, before any starts."""
    served = served_model(deps, model)
    body = await read_json(request, BatchCreate, limit=deps.max_body_bytes)
    check_metadata(body.metadata)
    check_callback_url(body.callback_url, deps.url_policy)
    items = [_item(i, given, served) for i, given in enumerate(body.input)]
    for i, (_, own) in enumerate(items):
        check_callback_url(
            own.get("callback_url"), deps.url_policy, field=f"input[{i}].callback_url"
        )
    now = deps.clock.now()
    batch = new_batch(
        batch_id=new_id(),
        organization_id=caller.organization_id,
        model=model,
        items=len(items),
        now=now,
        callback_url=body.callback_url,
        metadata=None if body.metadata is None else dumps(body.metadata),
    )
    runs = [_item_run(batch, index, given, own) for index, (given, own) in enumerate(items)]
    idempotency = None
    if idempotency_key is not None:
        idempotency = Idempotency(
            idempotency_key, request_hash(model, body), since=now - IDEMPOTENCY_WINDOW
        )
    stored = await deps.store.batches.insert(batch, runs, idempotency=idempotency)
    if not stored.created:  # the first answer again, not the batch's state now
        first = as_submitted(stored.batch)
        items_then = [as_submitted_run(run) for run in await deps.store.batches.items(first.id)]
        response = json_response(batch_view(first, first.status, items_then), 201)
        response.headers["Idempotent-Replayed"] = "true"
        return response
    deps.on_run_created()
    return json_response(batch_view(batch, batch.status, runs), 201)


def _item_run(batch: Batch, index: int, given: dict[str, Any], own: dict[str, Any]) -> Run:
    return new_run(
        run_id=new_id(),
        organization_id=batch.organization_id,
        model=batch.model,
        input=dumps(given),
        now=batch.created_at,
        callback_url=own.get("callback_url"),
        client_ref=own.get("client_ref"),
        batch_id=batch.id,
        sequence_index=index,
    )


@router.get("/batches/statuses", responses=documented(list[BatchStatus], fails=CALLER_ERRORS))
async def list_batch_statuses(caller: CurrentCaller) -> Response:
    """Every batch status, in lifecycle order."""
    return json_response([status.value for status in BatchStatus])


@router.get("/batches/{batch_id}", responses=documented(schemas.BatchDetail, fails=_FOUND))
async def get_batch(batch_id: str, deps: Deps, caller: CurrentCaller) -> Response:
    """One batch as it stands now, its items and how its callback is doing."""
    batch = await batch_of(deps, caller, batch_id)
    items = await deps.store.batches.items(batch.id)
    view = batch_view(batch, await batch_status(deps, batch), items)
    found = await deps.store.deliveries.for_batch(batch.id, organization_id=caller.organization_id)
    view["callback"] = callback_summary(found)
    return json_response(view)


@router.get(
    "/batches/{batch_id}/items",
    responses=documented(Page[schemas.BatchItemResult], fails=_FOUND),
)
async def list_batch_items(
    batch_id: str,
    deps: Deps,
    caller: CurrentCaller,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Response:
    """The batch's items in order, with their outputs, a page at a time."""
    batch = await batch_of(deps, caller, batch_id)
    after = decode_index_cursor(cursor)
    found = await deps.store.batches.items(batch.id, after=after, limit=limit + 1)
    shown, more = found[:limit], len(found) > limit
    outputs = await deps.outputs.render(shown)
    views = [item_view(run, output=outputs[run.id], full=True) for run in shown]
    return json_response(index_page(views, shown[-1].sequence_index if more else None))


@router.post("/batches/{batch_id}/cancel", responses=documented(schemas.BatchDetail, fails=_FOUND))
async def cancel_batch(batch_id: str, deps: Deps, caller: CurrentCaller) -> Response:
    """Cancel every item not yet ended: queued ones at once, running ones by cancelling
    their models. The batch's callback follows once every item has ended."""
    batch = await batch_of(deps, caller, batch_id)
    stopping = [
        task
        for run in await deps.store.batches.items(batch.id)
        if not run.status.is_terminal
        if (task := await cancel(deps, run)) is not None
    ]
    if stopping:
        await asyncio.wait(stopping, timeout=5.0)
    return await get_batch(batch_id, deps, caller)


@router.get(
    "/batches/{batch_id}/callback", responses=documented(list[schemas.Delivery], fails=_FOUND)
)
async def list_batch_callbacks(batch_id: str, deps: Deps, caller: CurrentCaller) -> Response:
    """The batch's callback deliveries, oldest first, attempts inline (a bare array)."""
    batch = await batch_of(deps, caller, batch_id)
    found = await deps.store.deliveries.for_batch(batch.id, organization_id=caller.organization_id)
    return json_response([delivery_view(d, attempts) for d, attempts in found])


@router.post(
    "/batches/{batch_id}/callback-redeliveries",
    status_code=201,
    responses=documented(schemas.Delivery, 201, fails=(*_FOUND, 409)),
)
async def redeliver_batch_callback(batch_id: str, deps: Deps, caller: CurrentCaller) -> Response:
    """A new delivery of an ended batch's callback, built from its items now (fresh output
    URLs); one at a time."""
    batch = await batch_of(deps, caller, batch_id)
    delivery = await deps.outbox.redeliver_batch(batch)
    return json_response(delivery_view(delivery, []), 201)
