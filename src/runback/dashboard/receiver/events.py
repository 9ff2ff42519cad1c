"""Events: the inbox (filtered, refreshed live), one event, and replaying it.

Replaying is ``runback inbox replay``'s store operation: the event's handlers run again and
its lost copies whose URLs still live are fetched again, by the receiver's background workers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated
from urllib.parse import urlencode, urlsplit, urlunsplit

from fastapi import APIRouter, Query, Request, Response

from runback.core.inbox import Copy, CopyState, HandlerState, InboxEvent, Receipt
from runback.core.states import RunStatus
from runback.dashboard.csrf import CheckedViewer
from runback.dashboard.forms import parse_moment
from runback.dashboard.sessions import CurrentViewer, flash, is_htmx
from runback.dashboard.site import CurrentSite
from runback.errors import NotFoundError
from runback.receiver.handlers import Handler
from runback.receiving.deps import Deps, ReceiveDeps
from runback.store import InboxFilter
from runback.web.auth import uuid_or_none
from runback.web.pages import decode_cursor, encode_cursor

router = APIRouter()

PAGE_SIZE = 50
REFRESH_SECONDS = 3

VERIFIED_BY = {
    "runflow": "signature verified (Runflow-Signature, HMAC-SHA256)",
    "v1": "signature verified (Standard Webhooks v1, HMAC-SHA256)",
    "v1a": "signature verified (Standard Webhooks v1a, Ed25519)",
    "token": "the source's token in the URL matched",
    "none": "not verified: the source is open (--insecure)",
}
"""A receipt's scheme as an operator reads it. A request that fails verification is answered
``401`` and never stored, so every kept receipt passed."""

UNSETTLED_COPIES = (CopyState.PENDING, CopyState.COPYING)
UNSETTLED_HANDLERS = (HandlerState.PENDING, HandlerState.RUNNING)


@dataclass(frozen=True, slots=True)
class EventRow:
    """One line of the events list: the event and how many of its copies are in each state."""

    event: InboxEvent
    copies: dict[CopyState, int]

    @property
    def copy_total(self) -> int:
        return sum(self.copies.values())


def _filters(
    *,
    source: str,
    event: str,
    status: str,
    handler: list[str],
    received_after: str,
    received_before: str,
    troubled: bool,
) -> tuple[InboxFilter, dict[str, str]]:
    """The store's filter for a form's fields, and a problem per field that is not valid."""
    errors: dict[str, str] = {}
    states = []
    for value in handler:
        try:
            states.append(HandlerState(value))
        except ValueError:
            errors["handler"] = f"{value!r} is not a handler state"
    moments = {}
    for name, text in (("received_after", received_after), ("received_before", received_before)):
        try:
            moments[name] = parse_moment(text)
        except ValueError:
            errors[name] = f"{text!r} is not a time such as 2026-01-31T12:00"
    filters = InboxFilter(
        source=source.strip() or None,
        event=event.strip() or None,
        status=status.strip() or None,
        handler_states=tuple(states),
        received_after=moments.get("received_after"),
        received_before=moments.get("received_before"),
        troubled=troubled,
    )
    return filters, errors


@router.get("/events")
async def events_page(
    request: Request,
    site: CurrentSite,
    deps: Deps,
    viewer: CurrentViewer,
    source: str = "",
    event: str = "",
    status: str = "",
    handler: Annotated[list[str] | None, Query()] = None,
    received_after: str = "",
    received_before: str = "",
    troubled: bool = False,
    cursor: str | None = None,
) -> Response:
    """The received events, newest first; ``HX-Request`` answers only the table."""
    filters, errors = _filters(
        source=source,
        event=event,
        status=status,
        handler=[h for h in handler or () if h],
        received_after=received_after,
        received_before=received_before,
        troubled=troubled,
    )
    found, after = await deps.store.inbox.page(
        filters=filters, after=decode_cursor(cursor), limit=PAGE_SIZE
    )
    copies = await deps.store.inbox.copy_states([e.id for e in found])
    query = [(k, v) for k, v in request.query_params.multi_items() if k != "cursor"]
    context = {
        "rows": [EventRow(e, copies.get(e.id, {})) for e in found],
        "sources": [s.name for s in deps.config.sources],
        "statuses": [s.value for s in RunStatus],
        "handler_states": [s.value for s in HandlerState],
        "chosen": {s.value for s in filters.handler_states},
        "filters": {
            "source": source,
            "event": event,
            "status": status,
            "received_after": received_after,
            "received_before": received_before,
            "troubled": troubled,
        },
        "errors": errors,
        "query": urlencode(query),
        "next_query": urlencode([*query, ("cursor", encode_cursor(after))]) if after else None,
        "live": cursor is None,
        "refresh_seconds": REFRESH_SECONDS,
    }
    name = "receiver/events_table.html" if is_htmx(request) else "receiver/events.html"
    return site.page(name, context, viewer=viewer, current="/events")


def handler_name(handler: Handler) -> str:
    """``module.function`` of a registered handler (an object: its class)."""
    named = handler if hasattr(handler, "__qualname__") else type(handler)
    return f"{named.__module__}.{named.__qualname__}"


def without_query(url: str) -> str:
    """A copy's URL without its query: presigned URLs carry their credentials there."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def _live(event: InboxEvent, copies: list[Copy]) -> bool:
    return event.handler_state in UNSETTLED_HANDLERS or any(
        c.state in UNSETTLED_COPIES for c in copies
    )


async def _found(deps: ReceiveDeps, text: str) -> tuple[InboxEvent, list[Receipt], list[Copy]]:
    parsed = uuid_or_none(text)
    found = None if parsed is None else await deps.store.inbox.event(parsed)
    if found is None:
        raise NotFoundError(f"there is no event {text}", code="EVENT_NOT_FOUND")
    return found


@router.get("/events/{event_id}")
async def event_page(
    request: Request, event_id: str, site: CurrentSite, deps: Deps, viewer: CurrentViewer
) -> Response:
    """One event: what it said, how it was verified, its copies and its handlers' outcome."""
    event, receipts, copies = await _found(deps, event_id)
    context = {
        "event": event,
        "receipts": receipts,
        "payload": receipts[-1].body if receipts else None,
        "copies": copies,
        "handlers": [handler_name(h) for h in deps.handlers.for_event(event.event)],
        "verified_by": VERIFIED_BY,
        "without_query": without_query,
        "can_replay": event.handler_state != HandlerState.RUNNING,
        "live": _live(event, copies),
        "refresh_seconds": REFRESH_SECONDS,
    }
    name = "receiver/event_live.html" if is_htmx(request) else "receiver/event.html"
    return site.page(name, context, viewer=viewer, current="/events")


@router.post("/events/{event_id}/replay")
async def replay_event(
    event_id: str, site: CurrentSite, deps: Deps, viewer: CheckedViewer
) -> Response:
    """Run the event's handlers again and retry its lost copies (``runback inbox replay``)."""
    event, _, _ = await _found(deps, event_id)
    if event.handler_state == HandlerState.RUNNING:
        # Replaying now would run the handlers twice at once.
        message = f"The handlers of event {event.id} are running: replay it once they end."
    else:
        await deps.store.inbox.replay(event.id, now=site.clock.now())
        message = (
            f"Event {event.id} replayed: its handlers run again, and its lost copies are "
            "fetched again where their URLs have not expired."
        )
    await flash(site, viewer, message)
    return site.redirect(f"/events/{event.id}")
