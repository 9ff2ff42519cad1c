"""``runflow/generate-headshots``: 60 headshots from a few photos, with no GPU.

The front door (``POST /api/v1/images/generate-headshots``) hands it the uploaded photos
(``uploads``: keys of files kept with the run) or their URLs (``image_urls``: fetched through
the URL policy and limits). Each headshot is a real image made from one of the photos, in
turn: a square crop around the photo's upper centre (where a face usually is) at one of five
framings, one of six tones, over one of two backdrops, as a 512 px JPEG. The 60 images are
saved as the run's output files, in order; the front door's callback lists their URLs.
Pillow's work runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable
from typing import Any, Final

from PIL import Image, ImageEnhance, ImageOps
from pydantic import BaseModel, ConfigDict, Field

from runback.errors import ModelError
from runback.models.images import opened
from runback.provider.context import RunContext

COUNT = 60
SIDE = 512
MAX_PHOTOS = 20
MAX_PHOTO_BYTES = 15 * 1024 * 1024
MAX_PHOTO_PIXELS = 40_000_000
FETCH_TIMEOUT = 15.0
TIMEOUT = 600.0
CONCURRENCY = 1

FRAMINGS: Final = (1.0, 0.85, 0.7, 0.6, 0.5)
"""The crop's side, as a fraction of the photo's shorter side: from head and shoulders to
a close portrait."""
BACKDROPS: Final = ((242, 242, 240), (64, 72, 84))
"""A light studio grey and a dark slate, laid behind the photo's edges."""

Tone = Callable[[Image.Image], Image.Image]


def _natural(image: Image.Image) -> Image.Image:
    return image


def _mono(image: Image.Image) -> Image.Image:
    return ImageOps.grayscale(image).convert("RGB")


def _warm(image: Image.Image) -> Image.Image:
    red, green, blue = image.split()
    return Image.merge(
        "RGB", (red.point(lambda v: min(255, v + 18)), green, blue.point(lambda v: max(0, v - 12)))
    )


def _cool(image: Image.Image) -> Image.Image:
    red, green, blue = image.split()
    return Image.merge(
        "RGB", (red.point(lambda v: max(0, v - 12)), green, blue.point(lambda v: min(255, v + 18)))
    )


def _contrast(image: Image.Image) -> Image.Image:
    return ImageEnhance.Contrast(image).enhance(1.3)


def _soft(image: Image.Image) -> Image.Image:
    return ImageEnhance.Brightness(ImageEnhance.Contrast(image).enhance(0.85)).enhance(1.08)


TONES: Final[tuple[Tone, ...]] = (_natural, _mono, _warm, _cool, _contrast, _soft)


class HeadshotsInput(BaseModel):
    """The input of ``runflow/generate-headshots``: uploaded photos, or their URLs."""

    model_config = ConfigDict(extra="forbid")

    uploads: list[str] = Field(default_factory=list, max_length=MAX_PHOTOS)
    image_urls: list[str] = Field(default_factory=list, max_length=MAX_PHOTOS)


async def generate_headshots(input: HeadshotsInput, context: RunContext) -> dict[str, Any]:
    """Makes 60 headshots from the uploaded photos (or image URLs)."""
    if not input.uploads and not input.image_urls:
        raise ModelError("give at least one photo", code="invalid_input")
    photos = [await context.read_upload(key) for key in input.uploads]
    for url in input.image_urls:
        photos.append(await context.fetch(url, max_bytes=MAX_PHOTO_BYTES, timeout=FETCH_TIMEOUT))
    images = await asyncio.to_thread(
        lambda: [
            opened(photo, what=f"photo {n + 1}", max_pixels=MAX_PHOTO_PIXELS)
            for n, photo in enumerate(photos)
        ]
    )
    for n in range(COUNT):
        jpeg = await asyncio.to_thread(headshot, images[n % len(images)], n)
        await context.save_output(jpeg, content_type="image/jpeg")
    return {"count": COUNT, "photos": len(photos)}


def headshot(photo: Image.Image, n: int) -> bytes:
    """The ``n``-th headshot of ``photo``: its framing, tone and backdrop chosen by ``n``."""
    framing = FRAMINGS[n % len(FRAMINGS)]
    tone = TONES[(n // len(FRAMINGS)) % len(TONES)]
    backdrop = BACKDROPS[(n // (len(FRAMINGS) * len(TONES))) % len(BACKDROPS)]
    side = max(1, round(min(photo.size) * framing))
    left = (photo.width - side) // 2
    top = max(0, min(photo.height - side, round(photo.height * 0.35 - side / 2)))
    portrait = tone(photo.crop((left, top, left + side, top + side))).resize(
        (SIDE - 32, SIDE - 32), Image.Resampling.LANCZOS
    )
    canvas = Image.new("RGB", (SIDE, SIDE), backdrop)
    canvas.paste(portrait, (16, 16))
    buffer = io.BytesIO()
    canvas.save(buffer, format="JPEG", quality=88)
    return buffer.getvalue()
