"""``runware/image-inference``: Runware's ``imageInference`` task, with real pixels and no GPU.

Each of ``numberResults`` images is painted at the asked size from the prompt: the scene's two
colours (as ``runflow/background-replace`` chooses them) as a gradient, and soft discs placed
by the image's seed, so one prompt and seed always paint one picture. Each image is sent as
soon as it exists (``context.send_result``): with a ``webhookURL``, one POST per result.
"""

from __future__ import annotations

import asyncio
import io
import random
import uuid
from typing import Any

from PIL import Image, ImageDraw, ImageFilter
from pydantic import BaseModel, ConfigDict, Field

from runback.models.background_replace import scene
from runback.provider.context import RunContext

MIN_SIDE, MAX_SIDE, STEP = 128, 2048, 64
MAX_RESULTS = 20
COST = 0.0013
"""What runback reports each image cost (Runware reports its price; runback's is nominal)."""
TIMEOUT = 300.0
CONCURRENCY = 2
FORMATS = {
    "JPG": ("JPEG", "image/jpeg"),
    "PNG": ("PNG", "image/png"),
    "WEBP": ("WEBP", "image/webp"),
}


class ImageInferenceInput(BaseModel):
    """A task of ``imageInference``, as the front door keeps it."""

    model_config = ConfigDict(extra="allow")

    taskUUID: str  # noqa: N815 (Runware's spelling)
    positivePrompt: str = Field(min_length=2, max_length=3000)  # noqa: N815
    width: int = Field(default=1024, ge=MIN_SIDE, le=MAX_SIDE, multiple_of=STEP)
    height: int = Field(default=1024, ge=MIN_SIDE, le=MAX_SIDE, multiple_of=STEP)
    numberResults: int = Field(default=1, ge=1, le=MAX_RESULTS)  # noqa: N815
    outputFormat: str = Field(default="JPG", pattern="^(JPG|PNG|WEBP)$")  # noqa: N815
    seed: int | None = Field(default=None, ge=1, le=2**63 - 1)


async def image_inference(input: ImageInferenceInput, context: RunContext) -> dict[str, Any]:
    """Paints numberResults images of width x height from positivePrompt, each sent at once."""
    first = input.seed if input.seed is not None else random.randrange(1, 2**31)
    codec, content_type = FORMATS[input.outputFormat]
    for n in range(input.numberResults):
        seed = first + n
        data = await asyncio.to_thread(
            painted, input.positivePrompt, (input.width, input.height), seed, codec
        )
        saved = await context.save_output(data, content_type=content_type)
        await context.send_result(
            {"imageUUID": str(uuid.uuid4()), "seed": seed, "cost": COST}, output=saved
        )
    return {"images": input.numberResults}


def painted(prompt: str, size: tuple[int, int], seed: int, codec: str) -> bytes:
    """The picture of ``prompt`` at ``size`` for ``seed``."""
    top, bottom = scene(prompt)
    ramp = Image.linear_gradient("L").resize(size)
    image = Image.composite(Image.new("RGB", size, bottom), Image.new("RGB", size, top), ramp)
    draw = ImageDraw.Draw(image, "RGBA")
    chance = random.Random(seed)
    width, height = size
    for _ in range(12):
        radius = chance.randint(min(size) // 20, min(size) // 5)
        x, y = chance.randint(0, width), chance.randint(0, height)
        colour = (*(chance.randint(0, 255) for _ in range(3)), 110)
        draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=colour)
    buffer = io.BytesIO()
    image.filter(ImageFilter.GaussianBlur(2)).save(buffer, format=codec)
    return buffer.getvalue()
