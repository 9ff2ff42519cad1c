"""What a callback's body says, as the drafts the inbox writes: its event's keys and its
output copies. One rule for a callback received and for a run's end the reconciler built
from a poll, so both dedupe, copy and reach handlers alike."""

from __future__ import annotations

from datetime import datetime, timedelta

from runback.receiver.config import SourceConfig
from runback.receiver.events import event_keys, output_refs, ref_expiry
from runback.receiver.handlers import HandlerRegistry
from runback.store import CopyDraft, EventDraft


def drafts(
    payload: object,
    body: bytes,
    *,
    source: SourceConfig,
    webhook_id: str | None,
    handlers: HandlerRegistry,
    received_at: datetime,
    url_ttl: timedelta,
    reconciled: bool = False,
) -> tuple[EventDraft, list[CopyDraft]]:
    """The event ``payload`` (parsed from ``body``) makes, and the copies of its outputs."""
    keys = event_keys(payload, webhook_id=webhook_id, body=body)
    draft = EventDraft(
        source=source.name,
        dedupe_key=keys.dedupe_key,
        event=keys.event,
        run_id=keys.run_id,
        batch_id=keys.batch_id,
        headshots_id=keys.headshots_id,
        task_uuid=keys.task_uuid,
        status=keys.status,
        webhook_id=webhook_id,
        wants_handler=bool(handlers.for_event(keys.event)),
        sequence=keys.sequence,
        reconciled=reconciled,
    )
    copies = [
        CopyDraft(
            ref.path, ref.url, ref_expiry(ref, received_at=received_at, default=url_ttl), ref.sha256
        )
        for ref in output_refs(payload, extra_paths=source.output_paths)
    ]
    return draft, copies
