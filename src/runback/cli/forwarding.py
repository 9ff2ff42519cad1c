"""What ``runback listen`` does with each delivery: forward its exact bytes to the local
handler, and say in one line what came and what the handler answered.

The body is sent byte for byte as the server sent it, with the headers it signed: a handler
that verifies signatures verifies these. A callback URL is shown as host and path alone: its
query string may carry a token.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import httpx

from runback.client import DeliveryMessage

EXCERPT_CHARS = 120
"""How much of a handler's non-2xx answer the line shows."""


@dataclass(frozen=True, slots=True)
class Forwarded:
    """What the handler answered: its status (None: no answer, ``error`` says why), how
    long it took, and the start of its body when it was not a 2xx."""

    status: int | None
    ms: int
    excerpt: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def where(url: str | None) -> str:
    """A callback URL's host and path, without its query string (tokens) or fragment."""
    if not url:
        return "-"
    parts = urlsplit(url)
    return f"{parts.netloc}{parts.path}" or url.split("?", 1)[0]


def event_of(message: DeliveryMessage) -> str:
    """The event the body says (``run.completed``...), else the delivery's ``event_key``."""
    try:
        event = json.loads(message.body).get("event")
    except (ValueError, AttributeError):
        event = None
    return event if isinstance(event, str) else message.event_key or "-"


async def forward(http: httpx.AsyncClient, target: str, message: DeliveryMessage) -> Forwarded:
    """POST the delivery's exact bytes and signed headers to ``target``."""
    headers = dict(message.headers)
    if not any(name.lower() == "content-type" for name in headers):
        headers["Content-Type"] = "application/json"
    started = time.monotonic()
    try:
        answer = await http.post(target, content=message.body_bytes, headers=headers)
    except httpx.HTTPError as exc:
        ms = round((time.monotonic() - started) * 1000)
        return Forwarded(status=None, ms=ms, error=f"{type(exc).__name__}: {exc}".rstrip(": "))
    ms = round((time.monotonic() - started) * 1000)
    excerpt = None
    if not answer.is_success:
        excerpt = " ".join(answer.text[:EXCERPT_CHARS].split()) or None
    return Forwarded(status=answer.status_code, ms=ms, excerpt=excerpt)


def line(message: DeliveryMessage, forwarded: Forwarded | None, now: datetime) -> str:
    """One line for a delivery: when, what, whose, where it was going, what came back."""
    subject = f"run {message.run_id}" if message.run_id else f"batch {message.batch_id}"
    said = (
        f"{now.strftime('%H:%M:%S')}  {event_of(message)}  {subject}  "
        f"{message.webhook_id or '-'}  {where(message.callback_url)}"
    )
    if forwarded is None:
        return said
    if forwarded.status is None:
        return f"{said}  -> no answer after {forwarded.ms} ms ({forwarded.error})"
    answer = f"{said}  -> {forwarded.status} in {forwarded.ms} ms"
    return f"{answer}: {forwarded.excerpt}" if forwarded.excerpt else answer


def record(message: DeliveryMessage, forwarded: Forwarded | None) -> dict[str, Any]:
    """The delivery and the handler's answer, as ``listen --json`` prints them."""
    return {
        "delivery": {
            "id": message.id,
            "run_id": message.run_id,
            "batch_id": message.batch_id,
            "event": event_of(message),
            "event_key": message.event_key,
            "webhook_id": message.webhook_id,
            "callback_url": where(message.callback_url),
            "created_at": message.created_at.isoformat(),
        },
        "forwarded": None
        if forwarded is None
        else {
            "status": forwarded.status,
            "ms": forwarded.ms,
            "excerpt": forwarded.excerpt,
            "error": forwarded.error,
        },
    }
