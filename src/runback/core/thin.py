"""Thin callbacks: a body too big to send whole goes out without its output, with a URL to it.

A callback whose frozen body is longer than the deployment's limit is sent *thin*: the same
JSON object, its keys in the same order, with ``output`` set to ``null`` where it stood (added
after the last key when the body has none) and ``output_url`` appended last: a signed URL
serving exactly the full body's bytes. Nothing is dropped or truncated: the full body is kept
in blob storage under a key of its run (or batch), deleted with it. A body at or under the
limit is sent as it is, byte for byte.

The receiving side (``runback.receiver.thin``) fetches the full body back.
"""

from __future__ import annotations

import re
from typing import Final
from uuid import UUID

import orjson

DEFAULT_MAX_CALLBACK_BYTES: Final = 256 * 1024
MIN_MAX_CALLBACK_BYTES: Final = 4 * 1024
"""A limit below this would make ordinary callbacks thin (a thin body alone is ~1 KiB)."""
OUTPUT_URL: Final = "output_url"

_FULL_BODY_KEY: Final = re.compile(
    r"(?:runs|batches)/[0-9a-f-]{36}/callbacks/[0-9a-f]{32}\.json|callbacks/[0-9a-f]{32}\.json"
)


def full_body_key(*, delivery_id: UUID, run_id: UUID | None, batch_id: UUID | None) -> str:
    """Where a thin delivery's full body is kept: under its run's (or batch's) prefix, so
    retention deletes it with them."""
    name = f"callbacks/{delivery_id.hex}.json"
    if run_id is not None:
        return f"runs/{run_id}/{name}"
    if batch_id is not None:
        return f"batches/{batch_id}/{name}"
    return name


def is_full_body_key(key: str) -> bool:
    """Whether ``key`` is one ``full_body_key`` makes."""
    return _FULL_BODY_KEY.fullmatch(key) is not None


def thin_body(full: bytes, output_url: str) -> bytes | None:
    """The thin body of ``full``: ``output`` null in place, ``output_url`` last. None when
    ``full`` is not a JSON object (it cannot be made thin: it is sent whole)."""
    try:
        document = orjson.loads(full)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(document, dict):
        return None
    document["output"] = None
    document.pop(OUTPUT_URL, None)  # a key of the body's own: the appended one is the link
    document[OUTPUT_URL] = output_url
    return orjson.dumps(document)
