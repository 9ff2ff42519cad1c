"""The receiver's HTTP side: ``POST /webhooks/{source}`` and the inbox's JSON API.

A callback is verified on its raw bytes before anything else, persisted (receipt, event,
copies) in one transaction, and only then answered ``200``: nothing is acknowledged before
it is durable. Copies and handlers run later, in the background, never in the request. The
one fetch made in the request is a thin callback's full body (``runback.receiver.thin``):
the event is stored whole, as if it had come so, or the request answered ``502`` for the
sender to try again.
"""

from __future__ import annotations

import hmac
import time
from dataclasses import replace
from typing import Any

import orjson
from fastapi import APIRouter, FastAPI, Request, Response

from runback import logs, metrics
from runback.core.clock import isoformat
from runback.core.ids import new_id
from runback.core.inbox import Copy, InboxEvent, Receipt
from runback.core.verification import Verifier
from runback.dashboard.config import DashboardConfig
from runback.dashboard.receiver import install_receiver
from runback.errors import (
    BadRequestError,
    NotFoundError,
    UnauthorizedError,
    UnsupportedMediaError,
    VerificationError,
)
from runback.receiver.config import SourceConfig, valid_source_name
from runback.receiver.thin import full_payload, thin_url
from runback.receiving import schemas
from runback.receiving.deps import Authorized, Deps
from runback.receiving.deps import ReceiveDeps as ReceiveDeps
from runback.receiving.expecting import expected
from runback.receiving.recording import drafts
from runback.web.app import base_app
from runback.web.auth import uuid_or_none
from runback.web.bodies import read_body
from runback.web.pages import DEFAULT_LIMIT, Cursor, Limit, decode_cursor, page
from runback.web.responses import json_response
from runback.web.schemas import Page, documented

_AUTHORIZED = (400, 401, 503)

_PRIVATE_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})


webhooks = APIRouter(tags=["webhooks"])
inbox = APIRouter(prefix="/v1", tags=["inbox"])


def _verifier(deps: ReceiveDeps, source: SourceConfig) -> Verifier:
    found = deps.verifiers.get(source.name)
    if found is None:
        found = Verifier(source.secrets, require_standard=source.require_standard)
        deps.verifiers[source.name] = found
    return found


def _authenticate(
    deps: ReceiveDeps, source: SourceConfig, request: Request, body: bytes
) -> tuple[str, str | None]:
    """How the request proves it comes from the source: ``(scheme, webhook-id)``."""
    if source.token is not None:
        given = request.query_params.get("token", "")
        if not hmac.compare_digest(given.encode(), source.token.encode()):
            raise UnauthorizedError(f"source {source.name} needs its ?token= in the URL")
        return "token", None
    if source.is_open:
        return "none", None
    try:
        verifier = _verifier(deps, source)
        verified = verifier.verify(body, request.headers.items(), now=deps.clock.now())
    except VerificationError as exc:
        raise UnauthorizedError(str(exc), code="INVALID_SIGNATURE") from None
    return verified.scheme, verified.webhook_id


def _media_type(request: Request) -> None:
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != "application/json" and not media.endswith("+json"):
        raise UnsupportedMediaError(
            f"a callback must be JSON (Content-Type: application/json), not {media or 'unset'}"
        )


@webhooks.post(
    "/webhooks/{source}",
    responses=documented(schemas.Received, fails=(400, 401, 404, 413, 415, 502, 503)),
)
async def receive(source: str, request: Request, deps: Deps) -> Response:
    """Verify, persist, answer ``200``: the heavy work happens later."""
    started = time.perf_counter()
    if not valid_source_name(source):
        raise NotFoundError(f"{source!r} is not a source name", code="SOURCE_NOT_FOUND")
    config = deps.config.source(source)
    _media_type(request)
    body = await read_body(request, limit=deps.max_body_bytes)
    scheme, webhook_id = _authenticate(deps, config, request, body)
    now = deps.clock.now()
    headers = {k: v for k, v in request.headers.items() if k.lower() not in _PRIVATE_HEADERS}
    receipt = Receipt(
        new_id(), None, source, body, orjson.dumps(headers).decode(), scheme, None, now
    )
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        await deps.store.inbox.reject(replace(receipt, rejected_reason=f"malformed JSON: {exc}"))
        raise BadRequestError(f"the body is not valid JSON: {exc}") from None
    if scheme != "none" and (url := thin_url(payload)) is not None:
        body = await deps.fetch_body(url)
        full_payload(payload, body)  # the same event, or ThinBodyError
        payload = orjson.loads(body)
        receipt = replace(receipt, body=body)
    draft, copies = drafts(
        payload,
        body,
        source=config,
        webhook_id=webhook_id,
        handlers=deps.handlers,
        received_at=now,
        url_ttl=deps.url_ttl,
    )
    # The request's own context: the rest of its lines, its access line too.
    logs.bind(run_id=draft.run_id, batch_id=draft.batch_id)
    event_id, duplicate = await deps.store.inbox.accept(receipt, draft, copies)
    logs.bind(event_id=event_id)
    deps.on_received(bool(copies), draft.wants_handler)
    metrics.acknowledged(time.perf_counter() - started)
    return json_response({"received": True, "event_id": str(event_id), "duplicate": duplicate})


def event_view(event: InboxEvent) -> dict[str, Any]:
    return {
        "id": str(event.id),
        "source": event.source,
        "dedupe_key": event.dedupe_key,
        "event": event.event,
        "run_id": event.run_id,
        "batch_id": event.batch_id,
        "headshots_id": event.headshots_id,
        "task_uuid": event.task_uuid,
        "status": event.status,
        "webhook_id": event.webhook_id,
        "receipt_count": event.receipt_count,
        "sequence": event.sequence,
        "stale": event.stale,
        "reconciled": event.reconciled,
        "handler": {
            "state": event.handler_state.value,
            "attempts": event.handler_attempts,
            "error": event.handler_error,
            "next_at": isoformat(event.handler_next_at),
        },
        "first_received_at": isoformat(event.first_received_at),
        "last_received_at": isoformat(event.last_received_at),
    }


def copy_view(copy: Copy) -> dict[str, Any]:
    return {
        "id": str(copy.id),
        "path": copy.path,
        "source_url": copy.source_url,
        "expires_at": isoformat(copy.expires_at),
        "state": copy.state.value,
        "attempts": copy.attempts,
        "next_attempt_at": isoformat(copy.next_attempt_at),
        "last_error": copy.last_error,
        "stored_key": copy.stored_key,
        "size": copy.size,
        "sha256": copy.sha256,
        "content_type": copy.content_type,
        "completed_at": isoformat(copy.completed_at),
    }


def receipt_view(receipt: Receipt) -> dict[str, Any]:
    return {
        "id": str(receipt.id),
        "scheme": receipt.scheme,
        "rejected_reason": receipt.rejected_reason,
        "received_at": isoformat(receipt.received_at),
        "headers": orjson.Fragment(receipt.headers),
        "body": receipt.body.decode("utf-8", "replace"),
    }


@inbox.get("/inbox", responses=documented(Page[schemas.InboxEvent], fails=_AUTHORIZED))
async def list_events(
    deps: Deps,
    _: Authorized,
    source: str | None = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Response:
    """Received events, newest first, a page at a time."""
    found, after = await deps.store.inbox.page(
        source=source, after=decode_cursor(cursor), limit=limit
    )
    return json_response(page([event_view(e) for e in found], after))


@inbox.get(
    "/inbox/{event_id}",
    responses=documented(schemas.InboxEventDetail, fails=(*_AUTHORIZED, 404)),
)
async def get_event(event_id: str, deps: Deps, _: Authorized) -> Response:
    """One event with its receipts, its copies and its handler's outcome."""
    parsed = uuid_or_none(event_id)
    found = None if parsed is None else await deps.store.inbox.event(parsed)
    if found is None:
        raise NotFoundError(f"there is no event {event_id}", code="EVENT_NOT_FOUND")
    event, receipts, copies = found
    return json_response(
        event_view(event)
        | {
            "receipts": [receipt_view(r) for r in receipts],
            "copies": [copy_view(c) for c in copies],
        }
    )


def create_receive_app(deps: ReceiveDeps, *, dashboard: DashboardConfig | None = None) -> FastAPI:
    """The receiver's app, serving ``deps``, with its dashboard at ``/dashboard``."""
    app = base_app(
        "runback receive",
        backlogs=metrics.Backlogs(deps.store, deps.clock, queues=metrics.RECEIVER_QUEUES),
    )
    app.state.receive = deps
    app.include_router(webhooks)
    app.include_router(inbox)
    app.include_router(expected)
    install_receiver(app, deps, dashboard or DashboardConfig())
    return app
