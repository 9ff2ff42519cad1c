"""Cursor pagination: ``?limit=`` and ``?cursor=``, answered as ``{"items", "next"}``.

A cursor is the position after a page's last item, ``(created_at, id)``, as opaque URL-safe
text. Keyset positions (not offsets) keep every item on exactly one page while new items
arrive at the head of the list.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import Query

from runback.core.clock import isoformat
from runback.errors import BadRequestError

MAX_LIMIT = 500
DEFAULT_LIMIT = 50

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="items per page, at most 500")]
Cursor = Annotated[str | None, Query(description="the `next` of the previous page")]

Position = tuple[datetime, UUID]


def encode_cursor(position: Position | None) -> str | None:
    if position is None:
        return None
    created_at, item_id = position
    return base64.urlsafe_b64encode(f"{isoformat(created_at)}|{item_id}".encode()).decode()


def decode_cursor(cursor: str | None) -> Position | None:
    """The position a cursor stands for; ``400`` for text this API did not give out."""
    if cursor is None:
        return None
    try:
        created_at, item_id = base64.urlsafe_b64decode(cursor).decode().split("|")
        return datetime.fromisoformat(created_at), UUID(item_id)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise BadRequestError(
            "cursor is not one this API gave out: pass the `next` of the previous page"
        ) from None


def page(items: list[Any], position: Position | None) -> dict[str, Any]:
    """A page of already-rendered items with the cursor of the next one."""
    return {"items": items, "next": encode_cursor(position)}


def index_page(items: list[Any], last: int | None) -> dict[str, Any]:
    """A page of a fixed, ordered list (a batch's items) after index ``last``."""
    cursor = None if last is None else base64.urlsafe_b64encode(f"i|{last}".encode()).decode()
    return {"items": items, "next": cursor}


def decode_index_cursor(cursor: str | None) -> int | None:
    """The index an ``index_page`` cursor stands for; ``400`` for text not given out."""
    if cursor is None:
        return None
    try:
        kind, index = base64.urlsafe_b64decode(cursor).decode().split("|")
        if kind == "i":
            return int(index)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    raise BadRequestError(
        "cursor is not one this API gave out: pass the `next` of the previous page"
    )
