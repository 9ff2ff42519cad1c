"""Runs: the list (filtered, refreshed live), one run, and cancelling it."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request, Response

from runback.core.records import Attempt, Delivery, Run, RunEvent
from runback.core.states import DeliveryStatus, RunStatus
from runback.dashboard.csrf import CheckedViewer
from runback.dashboard.provider.common import caller_of, parse_moment
from runback.dashboard.sessions import CurrentViewer, Viewer, flash, is_htmx
from runback.dashboard.site import CurrentSite
from runback.provider.api.deps import ApiDeps, Deps
from runback.provider.api.runs import CANCEL_WAIT_SECONDS, cancel, run_of, until_ended
from runback.store import RunFilter
from runback.web.pages import decode_cursor, encode_cursor

router = APIRouter()

PAGE_SIZE = 50
REFRESH_SECONDS = 3
EVENTS_SHOWN = 200
IN_FLIGHT = (DeliveryStatus.PENDING, DeliveryStatus.DELIVERING)


@router.get("/runs")
async def runs_page(
    request: Request,
    site: CurrentSite,
    deps: Deps,
    viewer: CurrentViewer,
    status: Annotated[list[str] | None, Query()] = None,
    model: str = "",
    client_ref: str = "",
    created_after: str = "",
    created_before: str = "",
    cursor: str | None = None,
) -> Response:
    """The organization's runs, newest first; ``HX-Request`` answers only the table."""
    errors: dict[str, str] = {}
    statuses = []
    for value in status or ():
        try:
            statuses.append(RunStatus(value))
        except ValueError:
            errors["status"] = f"{value!r} is not a run status"
    moments = {}
    for name, text in (("created_after", created_after), ("created_before", created_before)):
        try:
            moments[name] = parse_moment(text)
        except ValueError:
            errors[name] = f"{text!r} is not a time such as 2026-01-31T12:00"
    filters = RunFilter(
        statuses=tuple(statuses),
        model=model.strip() or None,
        client_ref=client_ref.strip() or None,
        created_after=moments.get("created_after"),
        created_before=moments.get("created_before"),
    )
    found, after = await deps.store.runs.page(
        viewer.organization_id, filters=filters, after=decode_cursor(cursor), limit=PAGE_SIZE
    )
    query = [(k, v) for k, v in request.query_params.multi_items() if k != "cursor"]
    context = {
        "runs": found,
        "statuses": [s.value for s in RunStatus],
        "chosen": {s.value for s in statuses},
        "filters": {
            "model": model,
            "client_ref": client_ref,
            "created_after": created_after,
            "created_before": created_before,
        },
        "errors": errors,
        "query": urlencode(query),
        "next_query": urlencode([*query, ("cursor", encode_cursor(after))]) if after else None,
        "live": cursor is None,
        "refresh_seconds": REFRESH_SECONDS,
    }
    name = "provider/runs_table.html" if is_htmx(request) else "provider/runs.html"
    return site.page(name, context, viewer=viewer, current="/runs")


@dataclass(frozen=True, slots=True)
class Moment:
    """One line of a run's timeline."""

    at: datetime
    what: str
    detail: str = ""


def timeline(
    run: Run, events: list[RunEvent], found: list[tuple[Delivery, list[Attempt]]]
) -> list[Moment]:
    """What happened to ``run``, oldest first: its life, its events, its callbacks' attempts."""
    moments = [Moment(run.created_at, "submitted", run.model)]
    if run.started_at is not None:
        moments.append(Moment(run.started_at, "started"))
    moments += [Moment(e.created_at, f"event {e.sequence}", e.event) for e in events]
    if run.completed_at is not None:
        moments.append(Moment(run.completed_at, run.status.value, run.failure_code or ""))
    for delivery, attempts in found:
        queued = "callback queued" if delivery.is_automatic else "redelivery queued"
        moments.append(Moment(delivery.created_at, queued, delivery.event_key))
        for attempt in attempts:
            outcome = attempt.failure_reason_code or f"HTTP {attempt.status_code}"
            moments.append(Moment(attempt.created_at, f"attempt {attempt.attempt_number}", outcome))
    return sorted(moments, key=lambda moment: moment.at)


async def _run(deps: ApiDeps, viewer: Viewer, run_id: str) -> Run:
    return await run_of(deps, caller_of(viewer), run_id)


@router.get("/runs/{run_id}")
async def run_page(
    request: Request, run_id: str, site: CurrentSite, deps: Deps, viewer: CurrentViewer
) -> Response:
    """One run: input, output (images previewed), timeline, deliveries and attempts."""
    run = await _run(deps, viewer, run_id)
    output = await deps.outputs.render_one(run)
    events = await deps.store.events.after(run.id, 0, limit=EVENTS_SHOWN)
    found = await deps.store.deliveries.for_run(run.id, organization_id=viewer.organization_id)
    context = {
        "run": run,
        "output": output or run.output,
        "events": events,
        "deliveries": list(reversed(found)),
        "timeline": timeline(run, events, found),
        "live": not run.status.is_terminal or any(d.status in IN_FLIGHT for d, _ in found),
        "refresh_seconds": REFRESH_SECONDS,
    }
    name = "provider/run_live.html" if is_htmx(request) else "provider/run.html"
    return site.page(name, context, viewer=viewer, current="/runs")


@router.post("/runs/{run_id}/cancel")
async def cancel_run(run_id: str, site: CurrentSite, deps: Deps, viewer: CheckedViewer) -> Response:
    """Cancel the run (as ``POST /v1/runs/{id}/cancel``), then back to its page."""
    run = await _run(deps, viewer, run_id)
    if run.status.is_terminal:
        message = f"Run {run.id} had ended already ({run.status.value})."
    else:
        task = await cancel(deps, run)
        if task is not None:
            await asyncio.wait({task}, timeout=CANCEL_WAIT_SECONDS)
        ended = await until_ended(deps, run, seconds=CANCEL_WAIT_SECONDS)
        message = f"Run {run.id} is {ended.status.value}."
    await flash(site, viewer, message)
    return site.redirect(f"/runs/{run.id}")
