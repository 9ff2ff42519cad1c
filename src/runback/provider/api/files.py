"""``GET``/``HEAD /files/{key}``: the output files runback serves itself.

Outside ``/v1`` and without an API key: the URL's signature is the authorisation (see
``runback.core.file_urls``). Besides output files, it serves the full bodies of thin
callbacks (``runback.core.thin``), as ``application/json``. An expired or altered URL is a
``403``; a signed key with no recorded file or no blob is a ``404``. One byte range is
honoured (``206``, or ``416`` past the end); several ranges, or a ``Range`` header we cannot
read, get the whole file, as RFC 9110 allows. Bytes are streamed from blob storage, never
held whole.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse

from runback.core.file_urls import FileUrlError, check_file_url
from runback.core.thin import is_full_body_key
from runback.errors import NotFoundError, PermissionDeniedError, RunbackError
from runback.provider.api.deps import ApiDeps, Deps
from runback.web.responses import json_response
from runback.web.schemas import errors

router = APIRouter(tags=["files"])

# One range only; 18 digits keeps int() total and is past any real file size.
_RANGE = re.compile(r"bytes=([0-9]{0,18})-([0-9]{0,18})", re.IGNORECASE)


class UnsatisfiableRangeError(RunbackError):
    """The range asked for starts past the end of the file."""


@dataclass(frozen=True, slots=True)
class Span:
    """Bytes ``start`` up to ``end`` (exclusive) of a file."""

    start: int
    end: int


def requested_span(header: str | None, size: int) -> Span | None:
    """The one range ``header`` asks of ``size`` bytes; None for the whole file.

    Raises ``UnsatisfiableRangeError`` for a range that selects nothing.
    """
    found = _RANGE.fullmatch(header.strip()) if header is not None and size > 0 else None
    if found is None or found.group(1) == found.group(2) == "":
        return None
    first, last = found.groups()
    if first == "":
        suffix = int(last)
        if suffix == 0:
            raise UnsatisfiableRangeError
        return Span(max(size - suffix, 0), size)
    start = int(first)
    if last != "" and int(last) < start:
        return None  # not a valid range: ignored, like a malformed header
    if start >= size:
        raise UnsatisfiableRangeError
    return Span(start, size if last == "" else min(int(last) + 1, size))


@dataclass(frozen=True, slots=True)
class _Signed:
    """A file a signed URL names: its type and tag, its blob's size, the URL's seconds left."""

    content_type: str
    etag: str
    size: int
    max_age: int


async def _signed_file(
    key: str, expires: str | None, signature: str | None, deps: ApiDeps
) -> _Signed:
    now = deps.clock.now()
    try:
        check_file_url(
            key=key, expires=expires, signature=signature, secret=deps.file_secret, now=now
        )
    except FileUrlError as exc:
        raise PermissionDeniedError(str(exc), code="FILE_URL_INVALID") from exc
    # The check passed, so ``expires`` is digits and still ahead of now.
    max_age = int(int(expires or 0) - now.timestamp())
    if is_full_body_key(key):  # a thin callback's body: written once, never changed
        size = await deps.blobs.size(key)
        if size is not None:
            return _Signed("application/json", key.rsplit("/", 1)[-1], size, max_age)
        raise NotFoundError(f"there is no file {key}", code="FILE_NOT_FOUND")
    output = await deps.store.outputs.by_key(key)
    size = None if output is None else await deps.blobs.size(key)
    if output is None or size is None:
        raise NotFoundError(f"there is no file {key}", code="FILE_NOT_FOUND")
    return _Signed(output.content_type, output.sha256, size, max_age)


def _headers(signed: _Signed, length: int) -> dict[str, str]:
    return {
        "Content-Type": signed.content_type,
        "Content-Length": str(length),
        "Accept-Ranges": "bytes",
        "ETag": f'"{signed.etag}"',
        "Cache-Control": f"private, max-age={signed.max_age}",
    }


def _unsatisfiable(size: int) -> Response:
    message = f"the range asked for starts past the end of the file ({size} bytes)"
    response = json_response(
        {"code": "RANGE_NOT_SATISFIABLE", "message": message, "errors": None}, 416
    )
    response.headers["Content-Range"] = f"bytes */{size}"
    return response


_BYTES: dict[int | str, Any] = {
    status: {
        "description": description,
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    }
    for status, description in ((200, "The whole file"), (206, "One byte range of the file"))
}
_FILE = _BYTES | errors((403, 404, 416, 422, 503))


# response_class=Response: the document lists the file's bytes alone, no JSON.
@router.get("/files/{key:path}", operation_id="get_file", response_class=Response, responses=_FILE)
@router.head(
    "/files/{key:path}", operation_id="head_file", response_class=Response, responses=_FILE
)
async def serve_file(
    key: str,
    request: Request,
    deps: Deps,
    expires: str | None = None,
    signature: str | None = None,
) -> Response:
    """An output file, or one byte range of it, for a signed URL that has not expired."""
    signed = await _signed_file(key, expires, signature, deps)
    size = signed.size
    try:
        span = requested_span(request.headers.get("range"), size)
    except UnsatisfiableRangeError:
        return _unsatisfiable(size)
    whole = span is None
    span = span or Span(0, size)
    headers = _headers(signed, span.end - span.start)
    if not whole:
        headers["Content-Range"] = f"bytes {span.start}-{span.end - 1}/{size}"
    status = 200 if whole else 206
    # An empty file has nothing to stream (and BlobStore.read cannot read one).
    if request.method == "HEAD" or size == 0:
        return Response(status_code=status, headers=headers)
    body = deps.blobs.read(key, start=span.start, end=span.end)
    return StreamingResponse(body, status_code=status, headers=headers)
