"""``Site``: one app's dashboard (its store, clock, config, nav and templates), and
``install``, which mounts it on a FastAPI app: static files, login and logout, the app's
pages, and the answer to a request without a session.

Nothing here knows the provider: the receiver's app builds its own ``Site`` with its own nav
and pages, and gets the same login, sessions, CSRF checks and layout.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, Protocol

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment

from runback.core.clock import Clock
from runback.dashboard.config import DashboardConfig
from runback.dashboard.templating import environment, render
from runback.errors import ApiError
from runback.store import Store
from runback.web.bodies import validation_error

if TYPE_CHECKING:
    from runback.dashboard.sessions import Viewer

SECURITY_HEADERS = {
    # Images may come from wherever a run's output points; everything else is ours.
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data: http: https:; frame-ancestors 'none'; "
        "form-action 'self'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    # Pages show secrets once and data of an organization: no cache keeps them.
    "Cache-Control": "no-store",
}


@dataclass(frozen=True, slots=True)
class NavLink:
    """A link of the top navigation: its label and its path under the dashboard's prefix."""

    label: str
    path: str


class Backing(Protocol):
    """What a dashboard reads sessions from: an app's parts (the API's ``ApiDeps``, the
    receiver's own), read when a request comes, not when the app is built."""

    @property
    def store(self) -> Store: ...

    @property
    def clock(self) -> Clock: ...


@dataclass(frozen=True, slots=True)
class Site:
    """One app's dashboard."""

    backing: Backing
    config: DashboardConfig
    nav: tuple[NavLink, ...]
    home: str
    """The path under the prefix that a login lands on."""
    templates: Environment = field(default_factory=environment)

    @property
    def store(self) -> Store:
        return self.backing.store

    @property
    def clock(self) -> Clock:
        return self.backing.clock

    def url(self, path: str = "") -> str:
        """The absolute path of ``path`` under the dashboard's prefix."""
        return self.config.prefix + path

    def page(
        self,
        name: str,
        context: dict[str, Any],
        *,
        status: int = 200,
        viewer: Viewer | None = None,
        current: str | None = None,
    ) -> HTMLResponse:
        """Template ``name`` with the layout's context (nav, CSRF token, flash message)."""
        base = {
            "site": self,
            "prefix": self.config.prefix,
            "viewer": viewer,
            "current": current,
            "csrf_token": viewer.csrf_token if viewer is not None else "",
            "flash": viewer.flash if viewer is not None else None,
        }
        response = render(self.templates, name, base | context, status)
        response.headers.update(SECURITY_HEADERS)
        return response

    def redirect(self, path: str) -> RedirectResponse:
        """A ``303`` to ``path`` under the prefix: the redirect after a POST."""
        response = RedirectResponse(self.url(path), status_code=303)
        response.headers.update(SECURITY_HEADERS)
        return response


async def get_site(request: Request) -> Site:
    site: Site = request.app.state.dashboard
    return site


CurrentSite = Annotated[Site, Depends(get_site)]


def install(app: FastAPI, site: Site, routers: Sequence[APIRouter]) -> None:
    """Serve ``site`` on ``app``: its static files, login, logout, and ``routers`` (the
    app's pages), all under the prefix and out of the OpenAPI document."""
    # Imported here: these modules depend on this one for ``Site``.
    from runback.dashboard import login, sessions

    app.state.dashboard = site
    prefix = site.config.prefix
    app.mount(
        f"{prefix}/static",
        StaticFiles(packages=[("runback.dashboard", "static")]),
        name="dashboard-static",
    )
    app.add_exception_handler(sessions.LoginRequiredError, sessions.to_login)
    _errors_as_pages(app, site)
    app.include_router(login.router, prefix=prefix, include_in_schema=False)
    for router in routers:
        app.include_router(router, prefix=prefix, include_in_schema=False)

    @app.get(prefix, include_in_schema=False)
    async def dashboard_home() -> Response:
        return RedirectResponse(site.url(site.home), status_code=303)


def _errors_as_pages(app: FastAPI, site: Site) -> None:
    """Errors of the dashboard's paths answered as a page (same status, same message and
    fields); the app's other paths keep their own answers (the API's JSON envelope, from
    ``web.app.base_app``; an app without a handler lets the error through as before)."""
    handlers = {
        kind: app.exception_handlers.get(kind) for kind in (ApiError, RequestValidationError)
    }

    async def answer(request: Request, exc: Exception) -> Response:
        kind = ApiError if isinstance(exc, ApiError) else RequestValidationError
        if not request.url.path.startswith(site.url("/")):
            handler = handlers[kind]
            if handler is None:
                raise exc
            answered = handler(request, exc)
            return await answered if inspect.isawaitable(answered) else answered
        if isinstance(exc, RequestValidationError):
            exc = validation_error(exc.errors())
        assert isinstance(exc, ApiError)
        context = {"error": exc, "status": exc.status_code}
        return site.page("error.html", context, status=exc.status_code)

    app.add_exception_handler(ApiError, answer)
    app.add_exception_handler(RequestValidationError, answer)
