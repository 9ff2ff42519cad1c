"""``/v1/callback-secrets``: the secrets that sign callbacks, and their rotation.

A secret is ``"type": "hmac"`` (``whsec_``: ``Runflow-Signature`` and ``v1``) or ``"ed25519"``
(a key pair: ``v1a``; its public key ``whpk_`` shown on every read and published without an
API key at ``/v1/callback-secrets/jwks``, its private key never shown).

Rotation, the same for both types: create a second secret (receivers start accepting both:
``webhook-signature`` carries one signature per active secret), promote it with ``PATCH
{"is_current": true}`` (``Runflow-Signature`` follows the current HMAC secret), then
``DELETE`` the old one (disabled, never signs again).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from runback.core.keys import jwk
from runback.core.records import SecretType
from runback.core.signing import new_callback_secret
from runback.errors import NotFoundError, ValidationFailedError
from runback.provider.api import schemas
from runback.provider.api.deps import CurrentCaller, Deps
from runback.provider.api.views import secret_view
from runback.web.auth import uuid_or_none
from runback.web.bodies import documented_body, read_json
from runback.web.pages import page
from runback.web.responses import json_response
from runback.web.schemas import BODY_ERRORS, CALLER_ERRORS, Page, documented

_FOUND = (*CALLER_ERRORS, 404)


router = APIRouter(prefix="/v1", tags=["callback secrets"])

# Receivers fetch the keys when they meet an unknown key id: a minute's cache spares the
# server, and a new key is announced before it is promoted anyway (it signs from creation).
_JWKS_CACHE = "public, max-age=60"


class SecretCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    label: str | None = Field(default=None, max_length=200)
    type: SecretType = SecretType.HMAC


class SecretUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    label: str | None = Field(default=None, max_length=200)
    is_current: bool | None = None


def _not_found(secret_id: str) -> NotFoundError:
    return NotFoundError(
        f"there is no callback secret {secret_id} in this organization",
        code="SECRET_NOT_FOUND",
    )


@router.post(
    "/callback-secrets",
    status_code=201,
    openapi_extra=documented_body(SecretCreate, required=False),
    responses=documented(schemas.Secret, 201, fails=(*CALLER_ERRORS, *BODY_ERRORS)),
)
async def create_secret(request: Request, deps: Deps, caller: CurrentCaller) -> Response:
    """Create a secret: ``hmac`` (the default; its plain value is in this answer and never
    again) or ``ed25519`` (its public key shown, its private key never). An organization's
    first secret of a type becomes current."""
    body = await read_json(request, SecretCreate, limit=deps.max_body_bytes)
    made = new_callback_secret(
        caller.organization_id, label=body.label, now=deps.clock.now(), kind=body.type
    )
    secret = await deps.store.secrets.create(made)
    return json_response(secret_view(secret, plain=True), 201)


@router.get("/callback-secrets", responses=documented(Page[schemas.Secret], fails=CALLER_ERRORS))
async def list_secrets(deps: Deps, caller: CurrentCaller) -> Response:
    """Every secret of the organization, oldest first, disabled ones included."""
    found = await deps.store.secrets.list(caller.organization_id)
    return json_response(page([secret_view(s) for s in found], None))


# Declared before /callback-secrets/{secret_id}, which would take "jwks" for an id.
@router.get("/callback-secrets/jwks", responses=documented(schemas.Jwks, fails=(503,)))
async def public_keys(
    deps: Deps,
    organization_id: Annotated[str | None, Query(description="one organization's keys")] = None,
) -> Response:
    """The public keys of the active Ed25519 secrets as a JWKS document, ``kid`` the
    secret's id; no API key needed (they are public)."""
    organization = None
    if organization_id is not None:
        organization = uuid_or_none(organization_id)
        if organization is None:
            raise ValidationFailedError.for_field("organization_id", "must be a UUID")
    found = await deps.store.secrets.public_keys(organization)
    response = json_response({"keys": [jwk(str(kid), public) for kid, public in found]})
    response.headers["Cache-Control"] = _JWKS_CACHE
    return response


@router.get("/callback-secrets/{secret_id}", responses=documented(schemas.Secret, fails=_FOUND))
async def get_secret(secret_id: str, deps: Deps, caller: CurrentCaller) -> Response:
    """One secret, without its plain value."""
    parsed = uuid_or_none(secret_id)
    found = None
    if parsed is not None:
        found = await deps.store.secrets.get(parsed, organization_id=caller.organization_id)
    if found is None:
        raise _not_found(secret_id)
    return json_response(secret_view(found))


@router.patch(
    "/callback-secrets/{secret_id}",
    openapi_extra=documented_body(SecretUpdate, required=False),
    responses=documented(schemas.Secret, fails=(*_FOUND, *BODY_ERRORS, 409)),
)
async def update_secret(
    secret_id: str, request: Request, deps: Deps, caller: CurrentCaller
) -> Response:
    """Rename a secret, or make it current (the previous current one stays active)."""
    body = await read_json(request, SecretUpdate, limit=deps.max_body_bytes)
    if body.is_current is False:
        raise ValidationFailedError.for_field(
            "is_current", "can only be set to true: promote another secret instead"
        )
    parsed = uuid_or_none(secret_id)
    found = None
    if parsed is not None:
        found = await deps.store.secrets.update(
            parsed,
            organization_id=caller.organization_id,
            now=deps.clock.now(),
            label=body.label,
            promote=bool(body.is_current),
        )
    if found is None:
        raise _not_found(secret_id)
    return json_response(secret_view(found))


@router.delete(
    "/callback-secrets/{secret_id}", responses=documented(schemas.Secret, fails=(*_FOUND, 409))
)
async def delete_secret(secret_id: str, deps: Deps, caller: CurrentCaller) -> Response:
    """Disable a secret for good (``disabled_at`` set): it never signs again."""
    parsed = uuid_or_none(secret_id)
    found = None
    if parsed is not None:
        found = await deps.store.secrets.disable(
            parsed, organization_id=caller.organization_id, now=deps.clock.now()
        )
    if found is None:
        raise _not_found(secret_id)
    return json_response(secret_view(found))
