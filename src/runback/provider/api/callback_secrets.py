"""``/v1/callback-secrets``: the secrets that sign callbacks."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from runback.core.ids import new_id
from runback.core.records import CallbackSecret
from runback.core.signing import generate_secret, key_prefix
from runback.provider.api.bodies import read_json
from runback.provider.api.deps import CurrentCaller, Deps
from runback.provider.api.views import json_response, secret_view

router = APIRouter(prefix="/v1", tags=["callback secrets"])


class SecretCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    label: str | None = Field(default=None, max_length=200)


@router.post(
    "/callback-secrets",
    status_code=201,
    openapi_extra={
        "requestBody": {
            "content": {"application/json": {"schema": SecretCreate.model_json_schema()}}
        }
    },
)
async def create_secret(request: Request, deps: Deps, caller: CurrentCaller) -> Response:
    """Create a secret; its plain value is in this answer and never again."""
    body = await read_json(request, SecretCreate, limit=deps.max_body_bytes)
    now = deps.clock.now()
    plain = generate_secret()
    secret = await deps.store.secrets.create(
        CallbackSecret(
            id=new_id(),
            organization_id=caller.organization_id,
            label=body.label,
            secret=plain,
            key_prefix=key_prefix(plain),
            is_current=False,
            disabled_at=None,
            last_used_at=None,
            created_at=now,
            updated_at=now,
        )
    )
    return json_response(secret_view(secret, plain=True), 201)
