"""``runback verify --event``: a callback as ``runback receive`` kept it, read from its inbox.

The server half of ``runback verify`` (which is light): it opens the receiver's database the
way ``runback inbox`` does and answers the event's latest receipt, with the secrets and
strictness its source verifies with (``RUNBACK_RECEIVE_SECRETS`` and ``--config``'s file).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import datetime
from uuid import UUID

import uvloop

from runback.cli.common import with_store
from runback.cli.verify import EventOptions, StoredReceipt, UsageError
from runback.core.inbox import InboxEvent, Receipt
from runback.errors import RunbackError
from runback.receiver.config import load_receive_config
from runback.settings import load_settings
from runback.store import DATABASE_FILE, Store


def read_receipt(options: EventOptions) -> StoredReceipt:
    """The latest receipt of event ``options.event_id``; ``UsageError`` says why not."""
    try:
        event_id = UUID(options.event_id)
    except ValueError:
        raise UsageError(
            f"{options.event_id!r} is not an event id (see 'runback inbox ls')"
        ) from None
    try:
        settings = load_settings(
            receive_data_dir=options.data_dir, database_url=options.database_url
        )
        database = settings.receive_data_dir / DATABASE_FILE
        if settings.database_url is None and not database.is_file():
            # Opening it would make an empty one: say where we looked instead.
            raise UsageError(
                f"there is no runback receive database at {database}: give the receiver's "
                "--data-dir (or RUNBACK_RECEIVE_DATA_DIR), or --database-url"
            )
        found = uvloop.run(with_store(settings, _reader(event_id), receiving=True))
        config = load_receive_config(
            settings.receive_config, global_secrets=settings.receive_secrets
        )
    except RunbackError as exc:
        raise UsageError(str(exc)) from None
    if found is None or not found[1]:
        raise UsageError(f"there is no event {event_id} (see 'runback inbox ls')")
    event, receipts = found
    receipt = receipts[-1]
    source = config.source(receipt.source)
    return StoredReceipt(
        body=receipt.body,
        headers=_headers(receipt.headers),
        received_at=receipt.received_at,
        secrets=source.secrets,
        require_standard=source.require_standard,
        label=f"event {event.id} (receipt {len(receipts)} of {len(receipts)}, "
        f"source {receipt.source})",
    )


_Found = tuple[InboxEvent, list[Receipt]] | None


def _reader(event_id: UUID) -> Callable[[Store, datetime], Awaitable[_Found]]:
    async def read(store: Store, _now: datetime) -> _Found:
        found = await store.inbox.event(event_id)
        return None if found is None else (found[0], found[1])

    return read


def _headers(text: str) -> list[tuple[str, str]]:
    kept = json.loads(text)
    return [(str(name), str(value)) for name, value in kept.items()]
