"""The receiver's dashboard pages, mounted on ``runback receive``'s app by ``install_receiver``.

They read the receiver's own inbox (every event it keeps, whichever key logs in: the inbox API
has no organizations either) and act through the same store operations as ``runback inbox``.
"""

from __future__ import annotations

from fastapi import FastAPI

from runback.dashboard.config import DashboardConfig
from runback.dashboard.receiver import events, expected
from runback.dashboard.site import NavLink, Site, install
from runback.receiving.deps import ReceiveDeps

NAV = (NavLink("Events", "/events"), NavLink("Expected runs", "/expected"))


def install_receiver(app: FastAPI, deps: ReceiveDeps, config: DashboardConfig) -> None:
    """Serve the receiver's dashboard on ``app`` (the receive app over ``deps``)."""
    site = Site(backing=deps, config=config, nav=NAV, home="/events")
    install(app, site, [events.router, expected.router])


__all__ = ["install_receiver"]
