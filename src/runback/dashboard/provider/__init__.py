"""The provider's dashboard pages, mounted on the API app by ``install_provider``."""

from __future__ import annotations

from fastapi import FastAPI

from runback.dashboard.config import DashboardConfig
from runback.dashboard.provider import batches, deliveries, destinations, runs, secrets
from runback.dashboard.site import NavLink, Site, install
from runback.provider.api.deps import ApiDeps

NAV = (
    NavLink("Runs", "/runs"),
    NavLink("Batches", "/batches"),
    NavLink("Destinations", "/destinations"),
    NavLink("Secrets", "/secrets"),
    NavLink("Callbacks", "/callbacks"),
)


def install_provider(app: FastAPI, deps: ApiDeps, config: DashboardConfig) -> None:
    """Serve the provider's dashboard on ``app`` (the API app over ``deps``)."""
    site = Site(backing=deps, config=config, nav=NAV, home="/runs")
    install(
        app,
        site,
        [runs.router, batches.router, deliveries.router, destinations.router, secrets.router],
    )


__all__ = ["install_provider"]
