"""``runflow/background-replace``: the seed's example model, with real pixels.

The image is fetched through runback's URL policy and limits (PNG, JPEG or WebP, at most
``MAX_IMAGE_BYTES`` and ``MAX_IMAGE_PIXELS``). Its background is taken to be the colour of its
border (the median of the outermost pixels, as in a product or portrait shot); what differs
enough from it is the subject. The subject's mask is softened at its edges and the subject is
laid over a new background painted from the prompt: a vertical gradient between two colours
its words name (``beach``, ``forest``, ``night``..., or any CSS colour name), or two colours
derived from the prompt's hash when it names none, so the same prompt always paints the same
scene. The result is a PNG of the input's size. Pillow's work runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import re
from typing import Any, Final

from PIL import Image, ImageChops, ImageColor, ImageFilter, ImageStat
from pydantic import BaseModel, ConfigDict, Field

from runback.models.images import opened
from runback.provider.context import RunContext

MAX_URL_LENGTH = 2048
MAX_PROMPT_LENGTH = 1000
MAX_IMAGE_BYTES = 20 * 1024 * 1024
MAX_IMAGE_PIXELS = 25_000_000
"""Larger images are refused before decoding: 20 MiB of PNG can unpack to gigabytes."""
FORMATS: Final = frozenset({"PNG", "JPEG", "WEBP"})
FETCH_TIMEOUT = 15.0
TIMEOUT = 120.0
CONCURRENCY = 2
THRESHOLD = 48
"""How far (the largest of the R, G, B differences) a pixel must be from the border's colour
to belong to the subject."""

RGB = tuple[int, int, int]

SCENES: Final[dict[str, tuple[str, str]]] = {
    "beach": ("#87ceeb", "#f4d9a6"),
    "sea": ("#5fa8d3", "#1b4965"),
    "ocean": ("#5fa8d3", "#1b4965"),
    "sky": ("#4a90d9", "#d8ecfa"),
    "forest": ("#2f5d3a", "#a3c585"),
    "jungle": ("#1e4d2b", "#6a994e"),
    "desert": ("#f2c57c", "#c1693c"),
    "sunset": ("#ff7e5f", "#2b1055"),
    "sunrise": ("#fcb69f", "#ffecd2"),
    "night": ("#0b1026", "#2c3e73"),
    "space": ("#000000", "#1c1c3c"),
    "snow": ("#e8f1f8", "#ffffff"),
    "winter": ("#dbe9f4", "#9fb8cc"),
    "studio": ("#f5f5f5", "#cfcfcf"),
    "office": ("#e6e2da", "#9c9385"),
    "city": ("#8e9aaf", "#394867"),
    "mountain": ("#a7c5eb", "#52616b"),
    "autumn": ("#f4a261", "#9c3d1c"),
}


class BackgroundReplaceInput(BaseModel):
    """The input of ``runflow/background-replace``."""

    model_config = ConfigDict(extra="forbid")

    image_url: str = Field(max_length=MAX_URL_LENGTH)
    prompt: str = Field(min_length=1, max_length=MAX_PROMPT_LENGTH)


async def background_replace(input: BackgroundReplaceInput, context: RunContext) -> dict[str, Any]:
    """Replaces the background of input.image_url with a scene painted from input.prompt."""
    source = await context.fetch(input.image_url, max_bytes=MAX_IMAGE_BYTES, timeout=FETCH_TIMEOUT)
    top, bottom = scene(input.prompt)
    png, size, subject = await asyncio.to_thread(_replaced, source, top, bottom)
    await context.save_output(png, content_type="image/png")
    return {
        "prompt": input.prompt,
        "width": size[0],
        "height": size[1],
        "background": {"top": _hex(top), "bottom": _hex(bottom)},
        "subject_fraction": round(subject, 4),
    }


def scene(prompt: str) -> tuple[RGB, RGB]:
    """The two colours of the background the prompt asks for: a scene or colours it names,
    else two derived from its hash."""
    words = re.findall(r"[a-z]+", prompt.lower())
    for word in words:
        if word in SCENES:
            top, bottom = SCENES[word]
            return _rgb(top), _rgb(bottom)
    named = [_rgb(word) for word in words if word in ImageColor.colormap]
    if named:
        first = named[0]
        return first, named[1] if len(named) > 1 else _shade(first)
    digest = hashlib.sha256(prompt.encode()).digest()
    return (digest[0], digest[1], digest[2]), (digest[3], digest[4], digest[5])


def _replaced(source: bytes, top: RGB, bottom: RGB) -> tuple[bytes, tuple[int, int], float]:
    image = opened(source, what="image_url", max_pixels=MAX_IMAGE_PIXELS, formats=FORMATS)
    mask = _subject_mask(image)
    covered = sum(i * n for i, n in enumerate(mask.histogram())) / (
        255 * image.width * image.height
    )
    backdrop = _gradient(image.size, top, bottom)
    backdrop.paste(image, (0, 0), mask)
    buffer = io.BytesIO()
    backdrop.save(buffer, format="PNG")
    return buffer.getvalue(), image.size, covered


def _subject_mask(image: Image.Image) -> Image.Image:
    """255 where the subject is, 0 where the background is, soft at the edges."""
    background = Image.new("RGB", image.size, _border_colour(image))
    difference = ImageChops.difference(image, background)
    channels = difference.split()
    largest = ImageChops.lighter(ImageChops.lighter(channels[0], channels[1]), channels[2])
    mask = largest.point(lambda value: 255 if value > THRESHOLD else 0)
    # Drop specks of noise, close pinholes, then feather the edge by a pixel or two.
    radius = max(1, min(image.size) // 200)
    mask = mask.filter(ImageFilter.MedianFilter(3)).filter(ImageFilter.MaxFilter(3))
    return mask.filter(ImageFilter.MinFilter(3)).filter(ImageFilter.GaussianBlur(radius))


def _border_colour(image: Image.Image) -> RGB:
    """The median colour of the image's outermost rows and columns of pixels."""
    width, height = image.size
    rows = [image.crop((0, 0, width, 1)), image.crop((0, height - 1, width, height))]
    columns = [image.crop((0, 0, 1, height)), image.crop((width - 1, 0, width, height))]
    border = Image.new("RGB", (2 * width + 2 * height, 1))
    offset = 0
    for strip in [*rows, *(column.transpose(Image.Transpose.ROTATE_90) for column in columns)]:
        border.paste(strip, (offset, 0))
        offset += strip.width
    red, green, blue = ImageStat.Stat(border).median
    return red, green, blue


def _gradient(size: tuple[int, int], top: RGB, bottom: RGB) -> Image.Image:
    """A vertical gradient from ``top`` to ``bottom`` of ``size``."""
    ramp = Image.linear_gradient("L").resize(size)
    return Image.composite(Image.new("RGB", size, bottom), Image.new("RGB", size, top), ramp)


def _rgb(colour: str) -> RGB:
    red, green, blue = ImageColor.getrgb(colour)[:3]
    return red, green, blue


def _shade(colour: RGB) -> RGB:
    red, green, blue = colour
    return red // 2, green // 2, blue // 2


def _hex(colour: RGB) -> str:
    return "#{:02x}{:02x}{:02x}".format(*colour)
