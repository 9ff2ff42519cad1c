"""The browser's session: a cookie with a random id, resolved to a ``Viewer`` per request.

The cookie is ``HttpOnly`` (no script reads it), ``SameSite=Strict`` (no other site's page
sends it) and ``Secure`` when the dashboard is served over https. A request without a live
session is sent to the login form; an htmx request is told to go there (``HX-Redirect``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated
from urllib.parse import quote
from uuid import UUID

from fastapi import Depends, Request, Response
from fastapi.responses import RedirectResponse

from runback.dashboard.site import CurrentSite, Site
from runback.errors import UnauthorizedError
from runback.store import Session

COOKIE = "runback_session"


class LoginRequiredError(UnauthorizedError):
    """No live session: the dashboard answers with its login form rather than JSON."""


@dataclass(frozen=True, slots=True)
class Viewer:
    """Who looks at the dashboard: a live session of an API key."""

    session_id: str
    session: Session
    flash: str | None = None
    """A message left by the previous action, shown once."""

    @property
    def organization_id(self) -> UUID:
        """The organization the pages show: the chosen one, else the key's default."""
        return self.session.organization_id

    @property
    def organizations(self) -> list[tuple[UUID, str]]:
        """Every organization of the key, with its name, the default first."""
        return list(
            zip(self.session.organization_ids, self.session.organization_names, strict=True)
        )

    @property
    def csrf_token(self) -> str:
        return self.session.csrf_token


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


async def current_viewer(request: Request, site: CurrentSite) -> Viewer:
    """The request's ``Viewer``; ``LoginRequiredError`` without a live session."""
    session_id = request.cookies.get(COOKIE)
    if not session_id:
        raise LoginRequiredError("log in with an API key")
    session = await site.store.sessions.get(session_id, now=site.clock.now())
    if session is None:
        raise LoginRequiredError("the session ended: log in again")
    flash = None
    # A flash is for the next full page: a polled fragment must not swallow it.
    if session.flash is not None and request.method == "GET" and not is_htmx(request):
        flash = session.flash
        await site.store.sessions.set_flash(session_id, None)
    return Viewer(session_id=session_id, session=session, flash=flash)


CurrentViewer = Annotated[Viewer, Depends(current_viewer)]


async def flash(site: Site, viewer: Viewer, message: str) -> None:
    """Show ``message`` on the viewer's next page."""
    await site.store.sessions.set_flash(viewer.session_id, message)


def set_session_cookie(response: Response, site: Site, session_id: str) -> None:
    response.set_cookie(
        COOKIE,
        session_id,
        max_age=int(site.config.session_lifetime.total_seconds()),
        path=site.config.prefix,
        secure=site.config.secure_cookies,
        httponly=True,
        samesite="strict",
    )


def clear_session_cookie(response: Response, site: Site) -> None:
    response.delete_cookie(
        COOKIE,
        path=site.config.prefix,
        secure=site.config.secure_cookies,
        httponly=True,
        samesite="strict",
    )


async def to_login(request: Request, _exc: Exception) -> Response:
    """The answer to a request without a session: the login form, then back here."""
    site: Site = request.app.state.dashboard
    back = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    target = site.url(f"/login?next={quote(back, safe='')}")
    if is_htmx(request):
        return Response(status_code=401, headers={"HX-Redirect": target})
    response = RedirectResponse(target, status_code=303)
    clear_session_cookie(response, site)
    return response
