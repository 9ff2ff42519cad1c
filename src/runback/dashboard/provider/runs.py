"""Runs: the list (filtered, refreshed live), one run, and cancelling it."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request, Response

from runback.core.states import RunStatus
from runback.dashboard.provider.common import parse_moment
from runback.dashboard.sessions import CurrentViewer, is_htmx
from runback.dashboard.site import CurrentSite
from runback.provider.api.deps import Deps
from runback.store import RunFilter
from runback.web.pages import decode_cursor, encode_cursor

router = APIRouter()

PAGE_SIZE = 50
REFRESH_SECONDS = 3


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
