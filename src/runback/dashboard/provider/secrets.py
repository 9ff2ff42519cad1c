"""Callback secrets: the list, create (its plain value shown on the answer to the POST and
never again), promote, disable. Rotation is create, promote, then disable the old one."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Response

from runback.core.records import SecretType
from runback.core.signing import new_callback_secret
from runback.dashboard.csrf import CheckedViewer
from runback.dashboard.sessions import CurrentViewer, Viewer, flash
from runback.dashboard.site import CurrentSite, Site
from runback.errors import ApiError, StoreError
from runback.provider.api.deps import ApiDeps, Deps
from runback.web.auth import uuid_or_none

router = APIRouter()

MAX_LABEL = 200


@router.get("/secrets")
async def secrets_page(site: CurrentSite, deps: Deps, viewer: CurrentViewer) -> Response:
    """The organization's secrets, their prefixes only."""
    found = await deps.store.secrets.list(viewer.organization_id)
    context = {"secrets": found, "types": [t.value for t in SecretType], "created": None}
    return site.page("provider/secrets.html", context, viewer=viewer, current="/secrets")


@router.post("/secrets")
async def create_secret(
    site: CurrentSite,
    deps: Deps,
    viewer: CheckedViewer,
    label: Annotated[str, Form(max_length=MAX_LABEL)] = "",
    kind: Annotated[SecretType, Form(alias="type")] = SecretType.HMAC,
) -> Response:
    """Create a secret and show it this once: the answer is the page, not a redirect, so
    the plain value is never kept anywhere to be shown again."""
    made = new_callback_secret(
        viewer.organization_id, label=label.strip() or None, now=deps.clock.now(), kind=kind
    )
    created = await deps.store.secrets.create(made)
    found = await deps.store.secrets.list(viewer.organization_id)
    context = {"secrets": found, "types": [t.value for t in SecretType], "created": created}
    return site.page(
        "provider/secrets.html", context, viewer=viewer, current="/secrets", status=201
    )


async def _change(
    site: Site, deps: ApiDeps, viewer: Viewer, secret_id: str, *, promote: bool
) -> Response:
    parsed = uuid_or_none(secret_id)
    org, now = viewer.organization_id, deps.clock.now()
    try:
        if parsed is None:
            found = None
        elif promote:
            found = await deps.store.secrets.update(
                parsed, organization_id=org, now=now, promote=True
            )
        else:
            found = await deps.store.secrets.disable(parsed, organization_id=org, now=now)
        done = "is current: it signs from now on" if promote else "is disabled"
        message = f"Secret {secret_id} {done}." if found else f"There is no secret {secret_id}."
    except (ApiError, StoreError) as exc:  # disabled, or current with others active
        message = f"Not changed: {exc}"
    await flash(site, viewer, message)
    return site.redirect("/secrets")


@router.post("/secrets/{secret_id}/promote")
async def promote_secret(
    secret_id: str, site: CurrentSite, deps: Deps, viewer: CheckedViewer
) -> Response:
    """Make a secret the current one of its type."""
    return await _change(site, deps, viewer, secret_id, promote=True)


@router.post("/secrets/{secret_id}/disable")
async def disable_secret(
    secret_id: str, site: CurrentSite, deps: Deps, viewer: CheckedViewer
) -> Response:
    """Disable a secret for good."""
    return await _change(site, deps, viewer, secret_id, promote=False)
