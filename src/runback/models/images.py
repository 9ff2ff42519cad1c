"""Reading an image a model was given: within a pixel limit (20 MiB of PNG can unpack to
gigabytes), of the formats it takes, upright (its EXIF orientation), in RGB; anything else is
a ``ModelError`` (``invalid_input``) that says why."""

from __future__ import annotations

import io
from collections.abc import Collection

from PIL import Image, ImageOps

from runback.errors import ModelError


def opened(
    data: bytes, *, what: str, max_pixels: int, formats: Collection[str] | None = None
) -> Image.Image:
    """``data`` as an upright RGB image; ``what`` names it in errors ("image_url")."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            if formats is not None and image.format not in formats:
                taken = ", ".join(sorted(formats))
                raise ModelError(
                    f"{what} is a {image.format} image: send {taken}", code="invalid_input"
                )
            if image.width * image.height > max_pixels:
                size = f"{image.width}x{image.height}"
                message = f"{what} is {size}: over the limit of {max_pixels} pixels"
                raise ModelError(message, code="invalid_input")
            return ImageOps.exif_transpose(image).convert("RGB")
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        # Pillow's ways of saying "not an image" or "a broken one"
        raise ModelError(f"{what} is not a readable image: {exc}", code="invalid_input") from None
