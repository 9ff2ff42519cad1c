"""Thin callbacks, received: fetching the full body a thin callback points at.

A callback too big to send whole arrives *thin* (``runback.core.thin``): the signed body is a
JSON object whose ``output`` is ``null`` and whose last key, ``output_url``, is a URL serving
the full body. Once the thin body is verified, ``whole_body`` fetches that URL (http or https
only, no redirect, within ``max_bytes`` and ``timeout``) and checks that what came is a JSON
object naming the same event (``event``, and ``run_id``, ``batch_id``, ``result_id``,
``sequence`` when the thin body has them); the handler then gets the full body as if it had
come whole. Anything else, thin or not, is answered unchanged. A failure is one
``ThinBodyError`` (``502``, so the sender tries again).

Standard library only (the light install): ``urllib.request``, in a worker thread for async
callers so the event loop never waits on the network.
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import urlsplit

from runback.errors import ThinBodyError

MAX_FULL_BODY_BYTES: Final = 64 * 1024 * 1024
FETCH_TIMEOUT: Final = 30.0
"""Seconds to fetch a full body in."""
IDENTITY_FIELDS: Final = ("event", "run_id", "batch_id", "result_id", "sequence")
"""What a full body must share with the thin body that pointed at it."""
OUTPUT_URL: Final = "output_url"
_MARKER: Final = b'"output_url"'
_CHUNK: Final = 256 * 1024


def _parse(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        return None


def thin_url(payload: object) -> str | None:
    """The ``output_url`` of a thin body (``output`` null, an http(s) ``output_url``); None
    for any other payload. Total."""
    if not isinstance(payload, dict) or "output" not in payload or payload["output"] is not None:
        return None
    url = payload.get(OUTPUT_URL)
    if not isinstance(url, str):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    return url if parts.scheme.lower() in ("http", "https") and parts.netloc else None


def full_payload(thin: Mapping[str, Any], full: bytes) -> dict[str, Any]:
    """``full`` parsed, once checked to be the body ``thin`` stands for: a JSON object with
    the same identity fields. Raises ``ThinBodyError`` otherwise."""
    document = _parse(full)
    if not isinstance(document, dict):
        raise ThinBodyError("the full body at the callback's output_url is not a JSON object")
    for name in IDENTITY_FIELDS:
        if name in thin and document.get(name) != thin[name]:
            raise ThinBodyError(
                f"the full body at the callback's output_url has {name} "
                f"{document.get(name)!r}, not the callback's {thin[name]!r}"
            )
    return document


def thin_payload(body: bytes) -> tuple[dict[str, Any], str] | None:
    """The parsed thin body and its ``output_url`` when ``body`` is thin; else None."""
    if _MARKER not in body:  # most bodies: no parse
        return None
    payload = _parse(body)
    url = thin_url(payload)
    return None if url is None else (payload, url)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # the 3xx is then raised as an HTTPError


_OPENER: Final = urllib.request.build_opener(_NoRedirect)


def fetch_full_body(url: str, *, max_bytes: int, timeout: float) -> bytes:
    """The bytes ``url`` answers with ``200``, at most ``max_bytes``; ``ThinBodyError``
    otherwise. Blocking."""
    if urlsplit(url).scheme.lower() not in ("http", "https"):
        raise ThinBodyError("a thin callback's output_url must be http or https")
    try:
        with _OPENER.open(url, timeout=timeout) as response:
            if response.status != 200:
                raise ThinBodyError(f"the callback's output_url answered HTTP {response.status}")
            chunks: list[bytes] = []
            size = 0
            while chunk := response.read(_CHUNK):
                size += len(chunk)
                if size > max_bytes:
                    raise ThinBodyError(
                        f"the full body at the callback's output_url is over {max_bytes} bytes"
                    )
                chunks.append(chunk)
    except urllib.error.HTTPError as exc:
        raise ThinBodyError(f"the callback's output_url answered HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise ThinBodyError(f"fetching the callback's output_url failed: {exc}") from None
    return b"".join(chunks)


def whole_body(
    body: bytes, *, max_bytes: int = MAX_FULL_BODY_BYTES, timeout: float = FETCH_TIMEOUT
) -> bytes:
    """``body``, or for a thin callback the full body it points at, checked. Blocking."""
    thin = thin_payload(body)
    if thin is None:
        return body
    payload, url = thin
    full = fetch_full_body(url, max_bytes=max_bytes, timeout=timeout)
    full_payload(payload, full)
    return full


async def whole_body_async(
    body: bytes, *, max_bytes: int = MAX_FULL_BODY_BYTES, fetch_timeout: float = FETCH_TIMEOUT
) -> bytes:
    """``whole_body`` for async callers: the fetch runs in a worker thread."""
    if thin_payload(body) is None:
        return body
    return await asyncio.to_thread(whole_body, body, max_bytes=max_bytes, timeout=fetch_timeout)
