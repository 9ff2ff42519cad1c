"""``/v1`` routes of runs: submit (idempotently), list, poll, cancel."""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Header, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from runback import logs
from runback.core.clock import isoformat, to_utc
from runback.core.events import EventKind, chosen_events
from runback.core.ids import new_id
from runback.core.payload import dumps
from runback.core.records import Run
from runback.core.runs import Ending, as_submitted, new_run
from runback.core.states import RunStatus
from runback.core.urlpolicy import UrlPolicy
from runback.errors import NotFoundError, UrlRefusedError, ValidationFailedError
from runback.provider.api import schemas
from runback.provider.api.deps import ApiDeps, Caller, CurrentCaller, Deps
from runback.provider.api.views import callback_summary, run_view
from runback.provider.registry import Model
from runback.store import Idempotency, RunFilter
from runback.tracing import TRACEPARENT, SpanLike, sane_traceparent
from runback.web.auth import uuid_or_none
from runback.web.bodies import documented_body, read_json, validation_error
from runback.web.pages import DEFAULT_LIMIT, Cursor, Limit, decode_cursor, page
from runback.web.responses import json_response
from runback.web.schemas import BODY_ERRORS, CALLER_ERRORS, Page, documented

router = APIRouter(prefix="/v1", tags=["runs"])

IDEMPOTENCY_WINDOW = timedelta(hours=24)
MAX_METADATA_BYTES = 16 * 1024
"""``metadata`` rides along in every callback: it is for references, not payloads."""
CANCEL_WAIT_SECONDS = 5.0
"""How long a cancel waits for a running model to stop before it answers."""
POLL_SECONDS = 0.05


class RunCreate(BaseModel):
    """The body of ``POST /v1/models/{owner}/{model}/runs``."""

    model_config = ConfigDict(extra="forbid")

    input: dict[str, Any]
    callback_url: str | None = None
    metadata: dict[str, Any] | None = None
    client_ref: str | None = Field(default=None, max_length=256)
    output_url_ttl: int | None = Field(default=None, ge=60, le=30 * 24 * 3600)
    """Seconds the run's output URLs stay valid, from 1 minute to 30 days."""
    events: list[str] | None = Field(default=None, max_length=len(EventKind))
    """Which callbacks to send: ``start``, ``output``, ``logs``, ``completed`` (the
    default, and any terminal event). Each but the default carries a ``sequence``."""


IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=255,
        description="replays the first answer for the same key and body within 24 h",
    ),
]


async def run_of(deps: Deps, caller: CurrentCaller, run_id: str) -> Run:
    """The caller's run ``run_id``, or ``404 RUN_NOT_FOUND``."""
    parsed = uuid_or_none(run_id)
    run = None
    if parsed is not None:
        run = await deps.store.runs.get(parsed, organization_id=caller.organization_id)
    if run is None:
        raise NotFoundError(f"there is no run {run_id} in this organization", code="RUN_NOT_FOUND")
    return run


def request_hash(model: str, body: BaseModel) -> str:
    """What an ``Idempotency-Key`` must be sent again with: the model and the body."""
    dumped = body.model_dump()
    if dumped.get("events", ()) is None:  # as before the field existed: keys stay valid
        del dumped["events"]
    canonical = orjson.dumps([model, dumped], option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).hexdigest()


def served_model(deps: ApiDeps, model: str) -> Model:
    """The model ``model`` as served here, or ``404 MODEL_UNAVAILABLE``."""
    served = deps.registry.get(model)
    if served is None:
        raise NotFoundError(f"model {model} is not served here", code="MODEL_UNAVAILABLE")
    return served


@router.post(
    "/models/{model:path}/runs",
    status_code=201,
    openapi_extra=documented_body(RunCreate),
    responses=documented(schemas.Run, 201, fails=(*CALLER_ERRORS, *BODY_ERRORS, 404, 409)),
)
async def create_run(
    model: str,
    request: Request,
    deps: Deps,
    caller: CurrentCaller,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Submit a run; answered at once with the queued run, before any work starts."""
    parent = sane_traceparent(request.headers.get(TRACEPARENT)) if deps.tracing.enabled else None
    with deps.tracing.span("submit", parent=parent, attributes={"runback.model": model}) as span:
        return await _create_run(model, request, deps, caller, idempotency_key, span)


async def _create_run(
    model: str,
    request: Request,
    deps: ApiDeps,
    caller: Caller,
    idempotency_key: str | None,
    span: SpanLike,
) -> Response:
    served = served_model(deps, model)
    body = await read_json(request, RunCreate, limit=deps.max_body_bytes)
    _check_submission(body, served, deps.url_policy)
    events = checked_events(body.events)
    now = deps.clock.now()
    run = new_run(
        run_id=new_id(),
        organization_id=caller.organization_id,
        model=model,
        input=dumps(body.input),
        now=now,
        callback_url=body.callback_url,
        metadata=None if body.metadata is None else dumps(body.metadata),
        client_ref=body.client_ref,
        output_url_ttl=body.output_url_ttl,
        events=events,
    )
    logs.bind(run_id=run.id)  # the request's own context: its access line too
    if deps.tracing.enabled:  # the executor's span continues this one, through the row
        span.set_attribute("runback.run_id", str(run.id))
        run = replace(run, traceparent=deps.tracing.traceparent())
    idempotency = None
    if idempotency_key is not None:
        idempotency = Idempotency(
            idempotency_key, request_hash(model, body), since=now - IDEMPOTENCY_WINDOW
        )
    stored = await deps.store.runs.insert(run, idempotency=idempotency)
    if stored.id != run.id:  # the first answer again, not the run's state now
        logs.bind(run_id=stored.id)
        response = json_response(run_view(as_submitted(stored)), 201)
        response.headers["Idempotent-Replayed"] = "true"
        return response
    deps.on_run_created()
    return json_response(run_view(run), 201)


def _check_submission(body: RunCreate, served: Model, url_policy: UrlPolicy) -> None:
    """What the body's shape cannot say: the metadata's size, the input against the
    model's schema, the callback URL against the URL policy; a ``422`` naming the field."""
    check_metadata(body.metadata)
    if served.input_model is not None:
        try:
            served.input_model.model_validate(body.input)
        except ValidationError as exc:
            raise validation_error(exc.errors(), prefix="input") from None
    check_callback_url(body.callback_url, url_policy)


def checked_events(values: list[str] | None) -> tuple[EventKind, ...] | None:
    """The events a submission chose (None: the default), or a ``422`` naming the field."""
    if values is None:
        return None
    try:
        return chosen_events(values)
    except ValueError as exc:
        raise ValidationFailedError.for_field("events", str(exc)) from None


def utc(moment: datetime, field: str) -> datetime:
    """``moment`` in UTC, or a ``422`` naming ``field`` when that instant is outside the
    years 1 to 9999 (``0001-01-01T00:00:00+01:00``): found by the OpenAPI fuzz as a 500."""
    try:
        return to_utc(moment)
    except OverflowError:
        raise ValidationFailedError.for_field(
            field, "is outside the years 1 to 9999 once in UTC"
        ) from None


def check_metadata(metadata: dict[str, Any] | None) -> None:
    """A ``422`` for metadata too large to ride along in every callback."""
    if metadata is not None and len(dumps(metadata)) > MAX_METADATA_BYTES:
        raise ValidationFailedError.for_field(
            "metadata", f"is over {MAX_METADATA_BYTES} bytes of JSON: keep references, not data"
        )


def check_callback_url(
    url: str | None, url_policy: UrlPolicy, *, field: str = "callback_url"
) -> None:
    """A ``422`` naming ``field`` for a callback URL the URL policy refuses."""
    if url is not None:
        try:
            url_policy.check(url)
        except UrlRefusedError as exc:
            raise ValidationFailedError.for_field(field, str(exc)) from None


@router.get("/runs/statuses", responses=documented(list[RunStatus], fails=CALLER_ERRORS))
async def list_statuses(caller: CurrentCaller) -> Response:
    """Every run status, in lifecycle order."""
    return json_response([status.value for status in RunStatus])


@router.get("/runs", responses=documented(Page[schemas.Run], fails=CALLER_ERRORS))
async def list_runs(
    deps: Deps,
    caller: CurrentCaller,
    status: Annotated[list[RunStatus] | None, Query(description="repeat for several")] = None,
    model: str | None = None,
    client_ref: str | None = None,
    created_after: Annotated[datetime | None, Query(description="inclusive")] = None,
    created_before: Annotated[datetime | None, Query(description="exclusive")] = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Response:
    """The organization's runs, newest first, a page at a time."""
    filters = RunFilter(
        statuses=tuple(status or ()),
        model=model,
        client_ref=client_ref,
        created_after=None if created_after is None else utc(created_after, "created_after"),
        created_before=None if created_before is None else utc(created_before, "created_before"),
    )
    found, after = await deps.store.runs.page(
        caller.organization_id, filters=filters, after=decode_cursor(cursor), limit=limit
    )
    outputs = await deps.outputs.render(found)
    return json_response(page([run_view(run, output=outputs[run.id]) for run in found], after))


@router.get("/runs/{run_id}", responses=documented(schemas.RunDetail, fails=(*CALLER_ERRORS, 404)))
async def get_run(run_id: str, deps: Deps, caller: CurrentCaller) -> Response:
    """One run, as it stands now, with how its callback is doing; a queued run that no
    live worker can execute says so in ``waiting_for``."""
    return await _shown(deps, await run_of(deps, caller, run_id))


async def _shown(deps: ApiDeps, run: Run) -> Response:
    view = run_view(run, output=await deps.outputs.render_one(run))
    if run.callback_url is not None and run.status.is_terminal:
        found = await deps.store.deliveries.for_run(run.id, organization_id=run.organization_id)
        view["callback"] = callback_summary(found)
    else:
        view["callback"] = None
    if run.status is RunStatus.QUEUED:
        served = await deps.store.workers.served(since=deps.clock.now() - deps.worker_lease)
        if run.model not in served:
            fails_at = isoformat(run.created_at + deps.unserved_after)
            view["waiting_for"] = (
                f"a live worker that serves {run.model}: none is running; the run fails "
                f"with model_unavailable at {fails_at} unless one starts"
            )
    return json_response(view)


@router.post(
    "/runs/{run_id}/cancel",
    responses=documented(schemas.RunDetail, fails=(*CALLER_ERRORS, 404)),
)
async def cancel_run(run_id: str, deps: Deps, caller: CurrentCaller) -> Response:
    """Cancel a run: a queued one at once, a running one by cancelling its model. The
    callback is ``run.cancelled``. A run already ended is answered unchanged."""
    run = await run_of(deps, caller, run_id)
    if not run.status.is_terminal:
        task = await cancel(deps, run)
        if task is not None:
            await asyncio.wait({task}, timeout=CANCEL_WAIT_SECONDS)
        else:
            await until_ended(deps, run, seconds=CANCEL_WAIT_SECONDS)
        run = await run_of(deps, caller, run_id)
    return await _shown(deps, run)


async def cancel(deps: ApiDeps, run: Run) -> asyncio.Task[Any] | None:
    """Cancel ``run``: a queued one at once; a running one through its executor, which
    answers the task to await when this process holds it (another process's executor
    finds the request in its next round)."""
    ended = run.status is RunStatus.QUEUED and await deps.outbox.end(run, Ending.canceled())
    if ended:
        return None  # else it was claimed meanwhile: cancel it running
    await deps.store.runs.request_cancel(run.id, now=deps.clock.now())
    return deps.cancel_running(run.id)


async def until_ended(deps: ApiDeps, run: Run, *, seconds: float) -> Run:
    """``run`` once it has ended, or as it stands after ``seconds``."""
    deadline = asyncio.get_running_loop().time() + seconds
    while not run.status.is_terminal and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(POLL_SECONDS)
        run = await deps.store.runs.get(run.id) or run
    return run
