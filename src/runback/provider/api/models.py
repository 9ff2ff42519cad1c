"""``GET /v1/models``: the models this server runs, with their limits and input schemas."""

from __future__ import annotations

from fastapi import APIRouter, Response

from runback.provider.api import schemas
from runback.provider.api.deps import CurrentCaller, Deps
from runback.web.pages import page
from runback.web.responses import json_response
from runback.web.schemas import CALLER_ERRORS, Page, documented

router = APIRouter(prefix="/v1", tags=["models"])


@router.get("/models", responses=documented(Page[schemas.Model], fails=CALLER_ERRORS))
async def list_models(deps: Deps, caller: CurrentCaller) -> Response:
    """Every model, by name."""
    items = [
        {
            "name": model.name,
            "description": model.description,
            "is_async": model.is_async,
            "timeout": model.timeout,
            "concurrency": model.concurrency,
            "output_url_ttl": model.url_ttl,
            "input_schema": model.input_schema(),
        }
        for model in sorted(deps.registry, key=lambda m: m.name)
    ]
    return json_response(page(items, None))
