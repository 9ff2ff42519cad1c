"""The web dashboard: server-rendered pages behind an API key's session.

The infrastructure here (``Site``, ``install``, sessions, CSRF, the layout) serves any FastAPI
app over a runback store; ``runback.dashboard.provider`` holds the provider's pages.
"""

from runback.dashboard.config import DashboardConfig
from runback.dashboard.csrf import CheckedViewer
from runback.dashboard.sessions import CurrentViewer, Viewer, flash
from runback.dashboard.site import Backing, CurrentSite, NavLink, Site, install

__all__ = [
    "Backing",
    "CheckedViewer",
    "CurrentSite",
    "CurrentViewer",
    "DashboardConfig",
    "NavLink",
    "Site",
    "Viewer",
    "flash",
    "install",
]
