"""Batches: the list, newest first, and one batch with its items and callbacks."""

from __future__ import annotations

from fastapi import APIRouter, Response

from runback.dashboard.provider.common import caller_of
from runback.dashboard.sessions import CurrentViewer
from runback.dashboard.site import CurrentSite
from runback.provider.api.batches import batch_of, batch_status
from runback.provider.api.deps import Deps
from runback.web.pages import decode_cursor, encode_cursor

router = APIRouter()

PAGE_SIZE = 50
ITEMS_SHOWN = 500


@router.get("/batches")
async def batches_page(
    site: CurrentSite, deps: Deps, viewer: CurrentViewer, cursor: str | None = None
) -> Response:
    """The organization's batches, newest first."""
    found, after = await deps.store.batches.page(
        viewer.organization_id, after=decode_cursor(cursor), limit=PAGE_SIZE
    )
    rows = [(batch, await batch_status(deps, batch)) for batch in found]
    context = {"rows": rows, "next": encode_cursor(after)}
    return site.page("provider/batches.html", context, viewer=viewer, current="/batches")


@router.get("/batches/{batch_id}")
async def batch_page(
    batch_id: str, site: CurrentSite, deps: Deps, viewer: CurrentViewer
) -> Response:
    """One batch: its counts, its items (runs) and its callback deliveries."""
    batch = await batch_of(deps, caller_of(viewer), batch_id)
    items = await deps.store.batches.items(batch.id, limit=ITEMS_SHOWN)
    found = await deps.store.deliveries.for_batch(batch.id, organization_id=viewer.organization_id)
    context = {
        "batch": batch,
        "status_now": await batch_status(deps, batch),
        "items": items,
        "more_items": batch.items_total > len(items),
        "deliveries": list(reversed(found)),
    }
    return site.page("provider/batch.html", context, viewer=viewer, current="/batches")
