"""``DashboardConfig``: what the dashboard needs to know of its process."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

DEFAULT_SESSION_LIFETIME = timedelta(hours=8)
"""A login lasts a working day; then the key is asked for again."""


@dataclass(frozen=True, slots=True)
class DashboardConfig:
    """Where the dashboard is mounted, how long a login lasts, whether cookies are Secure."""

    prefix: str = "/dashboard"
    session_lifetime: timedelta = DEFAULT_SESSION_LIFETIME
    secure_cookies: bool = False
    """True when browsers reach the process over https (its public URL says so)."""
    title: str = "runback"

    @classmethod
    def for_public_url(
        cls, public_url: str | None, *, session_lifetime: timedelta = DEFAULT_SESSION_LIFETIME
    ) -> DashboardConfig:
        """A config whose cookies are ``Secure`` exactly when ``public_url`` is https."""
        secure = public_url is not None and public_url.lower().startswith("https://")
        return cls(session_lifetime=session_lifetime, secure_cookies=secure)
