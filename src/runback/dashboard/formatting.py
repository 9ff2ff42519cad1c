"""Template filters: times, durations and JSON as people read them."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import orjson

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".webp", ".avif", ".bmp", ".svg")


def when(moment: datetime | None) -> str:
    """``2026-01-01 12:00:03 UTC``, or an empty string."""
    return "" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def millis(value: int | float | None) -> str:
    """``120 ms``, ``3.4 s``, or an empty string."""
    if value is None:
        return ""
    if value < 1000:
        return f"{value:.0f} ms"
    return f"{value / 1000:.1f} s"


def pretty(text: str | bytes | None) -> str:
    """Stored JSON indented for reading; text that is not JSON as it is."""
    if text is None:
        return ""
    try:
        return orjson.dumps(orjson.loads(text), option=orjson.OPT_INDENT_2).decode()
    except orjson.JSONDecodeError:
        return text.decode(errors="replace") if isinstance(text, bytes) else text


def excerpt(text: str | None, limit: int = 300) -> str:
    """The first ``limit`` characters, marked when cut."""
    if text is None:
        return ""
    return text if len(text) <= limit else text[:limit] + "…"


def percent(value: float | None) -> str:
    return "" if value is None else f"{value * 100:.0f} %"


def image_urls(text: str | None) -> list[str]:
    """The http(s) URLs in stored JSON whose path names an image file, in order, once each."""
    if not text:
        return []
    try:
        found: list[str] = []
        _collect(orjson.loads(text), found)
    except orjson.JSONDecodeError:
        return []
    return list(dict.fromkeys(found))


def _collect(value: Any, found: list[str]) -> None:
    if isinstance(value, str):
        path = value.split("?", 1)[0].lower()
        if value.startswith(("http://", "https://")) and path.endswith(IMAGE_SUFFIXES):
            found.append(value)
    elif isinstance(value, dict):
        for item in value.values():
            _collect(item, found)
    elif isinstance(value, list):
        for item in value:
            _collect(item, found)


FILTERS: dict[str, Callable[..., Any]] = {
    "when": when,
    "millis": millis,
    "pretty": pretty,
    "excerpt": excerpt,
    "percent": percent,
    "image_urls": image_urls,
}
