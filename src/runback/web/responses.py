"""JSON answers."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import Response


def json_response(content: Any, status_code: int = 200) -> Response:
    """An ``application/json`` answer serialised by orjson."""
    return Response(orjson.dumps(content), status_code=status_code, media_type="application/json")
