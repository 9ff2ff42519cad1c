"""The headshots front door (seed 002, CONTRACT §8): ``POST /api/v1/images/generate-headshots``
and its status, in that API's own shapes.

Authenticated by ``x-api-key`` (or ``Authorization: Bearer``, the same keys). Multipart
(``callback_url`` and repeated ``images`` files) or JSON (``callback_url`` and
``input_images``, URLs fetched through the URL policy). The answer comes at once:
``{"success": true, "data": {"headshots_id"}}``, the id being the run's; every error on
these paths is ``{"success": false, "error": {"code", "message"}}``. Uploads have limits of
their own (count, size per file, total, image types), apart from the JSON body limit.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, Final
from uuid import UUID

from fastapi import APIRouter, Request, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from runback.core import headshots as door
from runback.core.ids import new_id
from runback.core.payload import dumps
from runback.core.records import Run
from runback.core.runs import new_run
from runback.errors import (
    ApiError,
    BadRequestError,
    NotFoundError,
    PayloadTooLargeError,
    UnsupportedMediaError,
    ValidationFailedError,
)
from runback.provider.api import schemas
from runback.provider.api.deps import ApiDeps, CurrentCaller, Deps
from runback.provider.api.runs import check_callback_url, served_model
from runback.web.auth import uuid_or_none
from runback.web.bodies import documented_body, read_json
from runback.web.responses import json_response
from runback.web.schemas import BODY_ERRORS, documented, errors

MAX_IMAGES: Final = 20
MAX_IMAGE_BYTES: Final = 15 * 1024 * 1024
MAX_UPLOAD_BYTES: Final = 100 * 1024 * 1024
"""The whole multipart body, at most."""
MAX_FIELD_BYTES: Final = 4096
FORMS: Final = ("multipart/form-data", "application/x-www-form-urlencoded")
SIGNATURES: Final = {
    b"\xff\xd8\xff": "image/jpeg",
    b"\x89PNG\r\n\x1a\n": "image/png",
}
"""The image types taken, by their first bytes (WebP is checked apart: RIFF....WEBP)."""


class _OwnShapes(APIRoute):
    """Routes that answer their errors in this front door's envelope."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def answered(request: Request) -> Response:
            try:
                return await handle(request)
            except ApiError as exc:
                return json_response(door.refusal(exc.code, exc.message), exc.status_code)

        return answered


# Refused in this door's envelope; a database outage (503) in the contract's.
_REFUSED = (400, 401, 403, 429)


router = APIRouter(prefix="/api/v1/images", tags=["headshots"], route_class=_OwnShapes)


class HeadshotsJson(BaseModel):
    """The JSON body of ``POST /api/v1/images/generate-headshots``."""

    model_config = ConfigDict(extra="forbid")

    input_images: list[str] = Field(min_length=1, max_length=MAX_IMAGES)
    callback_url: str | None = None


@router.post(
    "/generate-headshots",
    openapi_extra=documented_body(HeadshotsJson),
    responses=documented(
        schemas.HeadshotsAnswer,
        fails=(*_REFUSED, *BODY_ERRORS, 404),
        error=schemas.HeadshotsRefusal,
    )
    | errors((503,)),
)
async def generate_headshots(request: Request, deps: Deps, caller: CurrentCaller) -> Response:
    """Make 60 headshots from the photos; the answer comes at once, the callback when done."""
    served_model(deps, door.MODEL)
    run_id = new_id()
    media_type = request.headers.get("content-type", "").split(";")[0].strip()
    if media_type in FORMS:
        callback_url, keys = await _uploaded(request, deps, run_id)
        input: dict[str, Any] = {"uploads": keys}
    else:
        body = await read_json(request, HeadshotsJson, limit=deps.max_body_bytes)
        for n, url in enumerate(body.input_images):
            check_callback_url(url, deps.url_policy, field=f"input_images[{n}]")
        callback_url, input = body.callback_url, {"image_urls": body.input_images}
    check_callback_url(callback_url, deps.url_policy)
    run = new_run(
        run_id=run_id,
        organization_id=caller.organization_id,
        model=door.MODEL,
        input=dumps(input),
        now=deps.clock.now(),
        callback_url=callback_url,
    )
    await deps.store.runs.insert(run)
    deps.on_run_created()
    return json_response(door.answer({"headshots_id": str(run.id)}))


async def _uploaded(request: Request, deps: ApiDeps, run_id: UUID) -> tuple[str | None, list[str]]:
    """The multipart body's ``callback_url`` and its ``images``, each checked and kept."""
    declared = request.headers.get("content-length", "")
    if not declared.isdigit():
        raise BadRequestError("send the upload with a Content-Length")
    if int(declared) > MAX_UPLOAD_BYTES:
        raise PayloadTooLargeError(
            f"the upload is {declared} bytes; the limit is {MAX_UPLOAD_BYTES}"
        )
    try:
        async with request.form(
            max_files=MAX_IMAGES, max_fields=8, max_part_size=MAX_FIELD_BYTES
        ) as form:
            images = [item for item in form.getlist("images") if isinstance(item, UploadFile)]
            if not images:
                raise ValidationFailedError.for_field("images", "send at least one photo")
            photos = [await _photo(n, image) for n, image in enumerate(images)]
            callback_url = form.get("callback_url")
    except HTTPException as exc:  # Starlette's word for a form past its limits
        message = f"{exc.detail} (at most {MAX_IMAGES} photos)"
        raise ValidationFailedError.for_field("images", message) from None
    if callback_url is not None and not isinstance(callback_url, str):
        raise ValidationFailedError.for_field("callback_url", "must be a URL, not a file")
    keys = [await deps.outputs.save_upload(run_id, n, data) for n, data in enumerate(photos)]
    return callback_url, keys


async def _photo(n: int, image: UploadFile) -> bytes:
    data = await image.read(MAX_IMAGE_BYTES + 1)
    if len(data) > MAX_IMAGE_BYTES:
        raise PayloadTooLargeError(f"images[{n}] is over the limit of {MAX_IMAGE_BYTES} bytes")
    if not data:
        raise ValidationFailedError.for_field(f"images[{n}]", "is empty")
    is_webp = data[:4] == b"RIFF" and data[8:12] == b"WEBP"
    if not is_webp and not any(data.startswith(sign) for sign in SIGNATURES):
        raise UnsupportedMediaError(f"images[{n}] is not a JPEG, PNG or WebP image")
    return data


@router.get(
    "/generate-headshots/{headshots_id}",
    responses=documented(
        schemas.HeadshotsStatusAnswer,
        fails=(*_REFUSED, 404),
        error=schemas.HeadshotsRefusal,
    )
    | errors((503,)),
)
async def get_headshots(headshots_id: str, deps: Deps, caller: CurrentCaller) -> Response:
    """How the headshots are doing; their URLs once done, the error if they failed."""
    run = await _headshots_of(deps, caller.organization_id, headshots_id)
    return json_response(door.status_view(run, await deps.outputs.render_one(run)))


async def _headshots_of(deps: ApiDeps, organization_id: UUID, headshots_id: str) -> Run:
    parsed = uuid_or_none(headshots_id)
    run = None
    if parsed is not None:
        run = await deps.store.runs.get(parsed, organization_id=organization_id)
    if run is None or run.model != door.MODEL:
        raise NotFoundError(
            f"there are no headshots {headshots_id} in this organization",
            code="HEADSHOTS_NOT_FOUND",
        )
    return run
