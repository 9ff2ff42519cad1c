"""``/login`` and ``/logout``: an API key exchanged for a session, and the session ended.

The login form has no session to carry a CSRF token yet, so it is double-submitted: a random
value in a short-lived cookie and the same in the form. Another site can set neither.
"""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Form, Query, Request, Response
from fastapi.responses import RedirectResponse

from runback.dashboard.csrf import CheckedViewer, same_token
from runback.dashboard.sessions import clear_session_cookie, set_session_cookie
from runback.dashboard.site import SECURITY_HEADERS, CurrentSite, Site
from runback.errors import FieldError, PermissionDeniedError
from runback.web.auth import uuid_or_none

router = APIRouter()

LOGIN_COOKIE = "runback_login"
_LOGIN_SECONDS = 3600


def _safe_next(site: Site, target: str | None) -> str:
    """Where to go after logging in: a page of this dashboard, never another site."""
    prefix = site.config.prefix
    if target and (target == prefix or target.startswith(prefix + "/")) and "//" not in target:
        return target
    return site.url(site.home)


def _form(
    site: Site, *, next_url: str | None, error: str | None, status: int, notice: str | None = None
) -> Response:
    token = secrets.token_urlsafe(24)
    response = site.page(
        "login.html",
        {"login_token": token, "next": next_url or "", "error": error, "notice": notice},
        status=status,
    )
    response.set_cookie(
        LOGIN_COOKIE,
        token,
        max_age=_LOGIN_SECONDS,
        path=site.url("/login"),
        secure=site.config.secure_cookies,
        httponly=True,
        samesite="strict",
    )
    return response


@router.get("/login")
async def login_form(
    site: CurrentSite,
    next_url: Annotated[str | None, Query(alias="next")] = None,
    out: bool = False,
) -> Response:
    """The login form."""
    notice = "You are logged out." if out else None
    return _form(site, next_url=next_url, error=None, status=200, notice=notice)


@router.post("/login")
async def login(
    request: Request,
    site: CurrentSite,
    api_key: Annotated[str, Form()] = "",
    login_token: Annotated[str, Form()] = "",
    next_url: Annotated[str, Form(alias="next")] = "",
) -> Response:
    """A session for a live API key, then the page asked for (``303``)."""
    if not same_token(login_token, request.cookies.get(LOGIN_COOKIE, "")) or not login_token:
        error = "The form expired: enter the key again."
        return _form(site, next_url=next_url, error=error, status=403)
    session_id = None
    if api_key.strip():
        session_id = await site.store.sessions.open(
            api_key.strip(), now=site.clock.now(), lifetime=site.config.session_lifetime
        )
    if session_id is None:
        error = "That API key is unknown or revoked ('runback keys create' makes one)."
        return _form(site, next_url=next_url, error=error, status=401)
    response = RedirectResponse(_safe_next(site, next_url), status_code=303)
    response.headers.update(SECURITY_HEADERS)
    set_session_cookie(response, site, session_id)
    response.delete_cookie(LOGIN_COOKIE, path=site.url("/login"))
    return response


@router.post("/logout")
async def logout(site: CurrentSite, viewer: CheckedViewer) -> Response:
    """End the session and forget its cookie."""
    await site.store.sessions.close(viewer.session_id)
    response = site.redirect("/login?out=true")
    clear_session_cookie(response, site)
    return response


@router.post("/organization")
async def choose_organization(
    site: CurrentSite,
    viewer: CheckedViewer,
    organization_id: Annotated[str, Form()] = "",
    next_url: Annotated[str, Form(alias="next")] = "",
) -> Response:
    """Show another organization of the key (``X-Organization-Id`` of the API)."""
    chosen = uuid_or_none(organization_id)
    if chosen is None or chosen not in viewer.session.organization_ids:
        raise PermissionDeniedError(
            "the API key is not a member of that organization",
            errors=[FieldError(field="organization_id", message="not one of the key's")],
        )
    await site.store.sessions.choose(viewer.session_id, chosen)
    response = RedirectResponse(_safe_next(site, next_url), status_code=303)
    response.headers.update(SECURITY_HEADERS)
    return response
