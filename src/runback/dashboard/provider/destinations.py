"""Destinations: each ``host:port`` this organization's callbacks go to, how it is doing
(success rate, p95 latency, backlog, circuit state), and enabling or disabling it."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Form, Response

from runback.core.destinations import BreakerPolicy, BreakerState
from runback.dashboard.csrf import CheckedViewer
from runback.dashboard.sessions import CurrentViewer, flash
from runback.dashboard.site import CurrentSite
from runback.provider.api.deps import Deps
from runback.store.destination_stats import destination_stats

router = APIRouter()

WINDOW = timedelta(hours=24)
"""The attempts the rates and latencies are over."""
_ANY_POLICY = BreakerPolicy()  # a circuit's state reads its row only


@router.get("/destinations")
async def destinations_page(site: CurrentSite, deps: Deps, viewer: CurrentViewer) -> Response:
    """Every destination with recent attempts or a backlog, and any troubled one."""
    now = deps.clock.now()
    stats = await destination_stats(deps.store.database, viewer.organization_id, since=now - WINDOW)
    troubled = await deps.store.destinations.troubled()
    rows = [
        {
            "stats": item,
            "state": (
                troubled[item.host].state(now, _ANY_POLICY)
                if item.host in troubled
                else BreakerState.CLOSED
            ).value,
            "row": troubled.get(item.host),
        }
        for item in stats
    ]
    return site.page(
        "provider/destinations.html",
        {"rows": rows, "window_hours": int(WINDOW.total_seconds() // 3600)},
        viewer=viewer,
        current="/destinations",
    )


async def _known(deps: Deps, viewer: CurrentViewer, host: str) -> bool:
    """Whether ``host`` is one of the organization's destinations: the table is shared, and
    an organization acts only on hosts its own callbacks go to."""
    since = deps.clock.now() - timedelta(days=365)
    stats = await destination_stats(deps.store.database, viewer.organization_id, since=since)
    return any(item.host == host for item in stats)


@router.post("/destinations/enable")
async def enable(
    site: CurrentSite, deps: Deps, viewer: CheckedViewer, host: Annotated[str, Form()] = ""
) -> Response:
    """Forget a destination's failures; its deliveries go out again at once."""
    if not await _known(deps, viewer, host):
        message = f"{host} is not a destination of this organization."
    elif await deps.store.destinations.enable(host, now=deps.clock.now()):
        message = f"{host} is enabled: its deliveries go out again."
    else:
        message = f"{host} was neither failing nor disabled."
    await flash(site, viewer, message)
    return site.redirect("/destinations")


@router.post("/destinations/disable")
async def disable(
    site: CurrentSite, deps: Deps, viewer: CheckedViewer, host: Annotated[str, Form()] = ""
) -> Response:
    """Hold every delivery to a destination until it is enabled."""
    if not await _known(deps, viewer, host):
        message = f"{host} is not a destination of this organization."
    else:
        await deps.store.destinations.disable(host, now=deps.clock.now())
        message = f"{host} is disabled: its deliveries wait until it is enabled."
    await flash(site, viewer, message)
    return site.redirect("/destinations")
