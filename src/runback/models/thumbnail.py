"""``runback/thumbnail``: a PNG of exactly ``width`` x ``height``, from an image URL or drawn.

With ``image_url``, the image is fetched through runback's URL policy and limits, turned
upright (its EXIF orientation), then cropped around its centre to the asked aspect ratio and
scaled (``ImageOps.fit``): the thumbnail is exactly the asked size and never stretched.
Without one, a colour gradient of that size is drawn. Pillow's work is CPU-bound, so it runs in
a worker thread and the event loop is never blocked.
"""

from __future__ import annotations

import asyncio
import io
from typing import Any

from PIL import Image, ImageOps
from pydantic import BaseModel, ConfigDict, Field

from runback.errors import ModelError
from runback.provider.context import RunContext

MAX_SIDE = 2048
DEFAULT_SIDE = 256
MAX_URL_LENGTH = 2048
MAX_IMAGE_BYTES = 20 * 1024 * 1024
MAX_IMAGE_PIXELS = 50_000_000
"""Larger images are refused before decoding: 20 MiB of PNG can unpack to gigabytes."""
FETCH_TIMEOUT = 10.0
TIMEOUT = 60.0
CONCURRENCY = 4

Size = tuple[int, int]


class ThumbnailInput(BaseModel):
    """The input of ``runback/thumbnail``."""

    model_config = ConfigDict(extra="forbid")

    image_url: str | None = Field(default=None, max_length=MAX_URL_LENGTH)
    width: int = Field(default=DEFAULT_SIDE, ge=1, le=MAX_SIDE)
    height: int = Field(default=DEFAULT_SIDE, ge=1, le=MAX_SIDE)


async def thumbnail(input: ThumbnailInput, context: RunContext) -> dict[str, Any]:
    """Makes a PNG of width x height from input.image_url, or a drawn gradient without one."""
    size = (input.width, input.height)
    if input.image_url is None:
        png = await asyncio.to_thread(_drawn, size)
    else:
        source = await context.fetch(
            input.image_url, max_bytes=MAX_IMAGE_BYTES, timeout=FETCH_TIMEOUT
        )
        png = await asyncio.to_thread(_fitted, source, size)
    await context.save_output(png, content_type="image/png")
    return {"width": input.width, "height": input.height}


def _fitted(source: bytes, size: Size) -> bytes:
    """``source`` (any format Pillow reads) cropped and scaled to exactly ``size``, as PNG."""
    try:
        with Image.open(io.BytesIO(source)) as image:
            if image.width * image.height > MAX_IMAGE_PIXELS:
                raise ModelError(
                    f"the image is {image.width}x{image.height}: over the limit of "
                    f"{MAX_IMAGE_PIXELS} pixels",
                    code="invalid_input",
                )
            image.draft("RGB", size)  # JPEG: decode at a reduced scale, still at least `size`
            upright = ImageOps.exif_transpose(image)
            mode = "RGBA" if upright.has_transparency_data else "RGB"
            fitted = ImageOps.fit(upright.convert(mode), size, Image.Resampling.LANCZOS)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        # Pillow's ways of saying "not an image" or "a broken one"
        raise ModelError(
            f"image_url is not a readable image: {exc}", code="invalid_input"
        ) from None
    return _png(fitted)


def _drawn(size: Size) -> bytes:
    """A gradient of ``size``: red grows left to right, green top to bottom, blue outwards."""
    horizontal = Image.linear_gradient("L").rotate(90).resize(size)
    vertical = Image.linear_gradient("L").resize(size)
    radial = Image.radial_gradient("L").resize(size)
    return _png(Image.merge("RGB", (horizontal, vertical, radial)))


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
