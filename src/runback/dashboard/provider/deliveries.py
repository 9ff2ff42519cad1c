"""Callback actions: redeliver one delivery, send a test ping, recover a time range of
failed deliveries and watch its progress. Each is the API's own code behind a form."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request, Response

from runback.dashboard.csrf import CheckedViewer
from runback.dashboard.provider.common import parse_moment
from runback.dashboard.sessions import CurrentViewer, flash, is_htmx
from runback.dashboard.site import CurrentSite
from runback.errors import ApiError, StoreError
from runback.provider.api.callback_tests import send_ping
from runback.provider.api.callbacks import recover, recovery_view
from runback.provider.api.deps import Deps
from runback.web.auth import uuid_or_none

router = APIRouter()

FAILED_SHOWN = 50


@router.post("/deliveries/{delivery_id}/redeliver")
async def redeliver(
    delivery_id: str, site: CurrentSite, deps: Deps, viewer: CheckedViewer
) -> Response:
    """Queue a delivery's event again, then back to its run (or batch)."""
    parsed = uuid_or_none(delivery_id)
    found = None
    if parsed is not None:
        found = await deps.store.deliveries.get(parsed, organization_id=viewer.organization_id)
    if found is None:
        await flash(site, viewer, f"There is no delivery {delivery_id}.")
        return site.redirect("/runs")
    delivery, _ = found
    try:
        await deps.outbox.redeliver_delivery(delivery)
        message = f"The {delivery.event_key} callback is queued again."
    except (ApiError, StoreError) as exc:  # in flight already, or its run is gone
        message = f"Not redelivered: {exc}"
    await flash(site, viewer, message)
    if delivery.run_id is not None:
        return site.redirect(f"/runs/{delivery.run_id}")
    return site.redirect(f"/batches/{delivery.batch_id}" if delivery.batch_id else "/runs")


@router.get("/callbacks")
async def callbacks_page(site: CurrentSite, deps: Deps, viewer: CurrentViewer) -> Response:
    """The newest failed deliveries, and the forms of the callback actions: a test ping, a
    recovery."""
    failed = await deps.store.deliveries.latest_failed(viewer.organization_id, limit=FAILED_SHOWN)
    context = {"errors": {}, "form": {}, "failed": failed}
    return site.page("provider/callbacks.html", context, viewer=viewer, current="/callbacks")


@router.post("/callback-tests")
async def send_test_callback(
    site: CurrentSite, deps: Deps, viewer: CheckedViewer, url: Annotated[str, Form()] = ""
) -> Response:
    """Send a signed ``test.ping`` to ``url`` now; the outcome is the next page's message."""
    try:
        sent = await send_ping(deps, viewer.organization_id, url.strip())
    except ApiError as exc:
        await flash(site, viewer, f"Test callback not sent: {exc}")
        return site.redirect("/callbacks")
    if sent["ok"]:
        outcome = f"answered HTTP {sent['status_code']} in {sent['latency_ms']} ms"
    else:
        outcome = f"failed ({sent['failure']}): {sent['failure_detail']}"
    await flash(site, viewer, f"Test callback to {url.strip()} {outcome}.")
    return site.redirect("/callbacks")


@router.post("/recoveries")
async def start_recovery(
    site: CurrentSite,
    deps: Deps,
    viewer: CheckedViewer,
    created_from: Annotated[str, Form()] = "",
    created_to: Annotated[str, Form()] = "",
    destination: Annotated[str, Form()] = "",
) -> Response:
    """Queue again the failed deliveries created in a time range; then its progress."""
    errors: dict[str, str] = {}
    moments = {}
    for name, text in (("created_from", created_from), ("created_to", created_to)):
        try:
            moments[name] = parse_moment(text)
        except ValueError:
            errors[name] = f"{text!r} is not a time such as 2026-01-31T12:00"
        if moments.get(name) is None and name not in errors:
            errors[name] = "required"
    start, end = moments.get("created_from"), moments.get("created_to")
    if start is not None and end is not None and end <= start:
        errors["created_to"] = "must be after the start"
    if errors or start is None or end is None:
        form = {"created_from": created_from, "created_to": created_to, "destination": destination}
        failed = await deps.store.deliveries.latest_failed(
            viewer.organization_id, limit=FAILED_SHOWN
        )
        return site.page(
            "provider/callbacks.html",
            {"errors": errors, "form": form, "failed": failed},
            viewer=viewer,
            current="/callbacks",
            status=422,
        )
    done = await recover(deps, viewer.organization_id, start, end, destination.strip() or None)
    await flash(site, viewer, f"Recovery started: {done.queued} queued, {done.skipped} skipped.")
    return site.redirect(f"/recoveries/{done.id}")


@router.get("/recoveries/{recovery_id}")
async def recovery_page(
    request: Request, recovery_id: str, site: CurrentSite, deps: Deps, viewer: CurrentViewer
) -> Response:
    """A recovery's progress: of what it queued, how much is delivered, failed, pending."""
    parsed = uuid_or_none(recovery_id)
    found = None
    if parsed is not None:
        found = await deps.store.deliveries.recovery(parsed, organization_id=viewer.organization_id)
    if found is None:
        await flash(site, viewer, f"There is no recovery {recovery_id}.")
        return site.redirect("/callbacks")
    view = recovery_view(*found)
    context = {
        "recovery": view,
        "record": found[0],
        "live": view["pending"] > 0,
        "refresh_seconds": 2,
    }
    name = "provider/recovery_progress.html" if is_htmx(request) else "provider/recovery.html"
    return site.page(name, context, viewer=viewer, current="/callbacks")
