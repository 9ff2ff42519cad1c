"""Batches: runs of one model submitted together, with one callback once all have ended.

A batch's items are ordinary runs (``batch_id``, ``sequence_index``), executed, retried and
cancelled like any other; an item sends a callback of its own only when it names its own
``callback_url``. Each item's end counts into its batch in the transaction that ends it, so
the batch knows, exactly once, when its last item ended: that transaction marks the batch's
callback due, and the callback is committed with the mark cleared (``runback.store``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any
from uuid import UUID

import orjson

from runback.core.clock import isoformat, whole_ms
from runback.core.payload import raw
from runback.core.records import Batch, JsonText, Run
from runback.core.states import BATCH_EVENTS, BatchStatus, RunStatus

MAX_ITEMS = 100


@dataclass(frozen=True, slots=True)
class Tally:
    """How many of a batch's items ended each way, in one transaction."""

    succeeded: int = 0
    failed: int = 0
    cancelled: int = 0

    @classmethod
    def of(cls, status: RunStatus) -> Tally:
        """One item that ended in ``status``: a partial success counts as succeeded (some
        of its outputs landed), as it does for the batch's own status."""
        if status is RunStatus.CANCELED:
            return cls(cancelled=1)
        if status in (RunStatus.SUCCEEDED, RunStatus.PARTIAL_SUCCEEDED):
            return cls(succeeded=1)
        return cls(failed=1)

    def __add__(self, other: Tally) -> Tally:
        return Tally(
            self.succeeded + other.succeeded,
            self.failed + other.failed,
            self.cancelled + other.cancelled,
        )


def new_batch(
    *,
    batch_id: UUID,
    organization_id: UUID,
    model: str,
    items: int,
    now: datetime,
    callback_url: str | None = None,
    metadata: JsonText | None = None,
) -> Batch:
    """A batch as it is submitted: every item queued."""
    if not 1 <= items <= MAX_ITEMS:
        raise ValueError(f"a batch has 1 to {MAX_ITEMS} items, not {items}")
    return Batch(
        id=batch_id,
        organization_id=organization_id,
        model=model,
        status=BatchStatus.QUEUED,
        metadata=metadata,
        callback_url=callback_url,
        items_total=items,
        items_succeeded=0,
        items_failed=0,
        items_cancelled=0,
        created_at=now,
        completed_at=None,
        updated_at=now,
    )


def ended_status(succeeded: int, failed: int, cancelled: int) -> BatchStatus:
    """The terminal status of a batch whose items all ended so."""
    if succeeded and not failed and not cancelled:
        return BatchStatus.SUCCEEDED
    if succeeded:
        return BatchStatus.PARTIAL_SUCCEEDED
    return BatchStatus.CANCELED if not failed else BatchStatus.FAILED


def as_submitted(batch: Batch) -> Batch:
    """``batch`` as first answered, whatever happened since (a replayed key's answer)."""
    return replace(
        batch,
        status=BatchStatus.QUEUED,
        items_succeeded=0,
        items_failed=0,
        items_cancelled=0,
        completed_at=None,
        updated_at=batch.created_at,
        callback_due=False,
    )


def item_output(run: Run, output: JsonText | None) -> orjson.Fragment | None:
    """An item's ``output`` in its batch's callback, as its own callback would carry it."""
    return None if run.status is RunStatus.CANCELED else raw(output or run.output)


def batch_callback_body(
    batch: Batch, items: Sequence[Run], outputs: dict[UUID, JsonText | None]
) -> bytes:
    """The frozen body of the callback about a batch whose items have all ended: the run
    callback's envelope with ``batch_id``, its items in order in ``output``."""
    if batch.completed_at is None or not batch.status.is_terminal:
        raise ValueError(f"batch {batch.id} has not completed")
    listed: list[dict[str, Any]] = [
        {
            "sequence_index": run.sequence_index,
            "run_id": str(run.id),
            "client_ref": run.client_ref,
            "status": run.status.value,
            "output": item_output(run, outputs.get(run.id)),
        }
        for run in sorted(items, key=lambda run: run.sequence_index or 0)
    ]
    return orjson.dumps(
        {
            "event": BATCH_EVENTS[batch.status],
            "batch_id": str(batch.id),
            "status": batch.status.value,
            "output": {
                "items": listed,
                "succeeded": batch.items_succeeded,
                "failed": batch.items_failed,
                "cancelled": batch.items_cancelled,
                "total": batch.items_total,
            },
            "duration_ms": whole_ms(batch.created_at, batch.completed_at),
            "created_at": isoformat(batch.created_at),
            "completed_at": isoformat(batch.completed_at),
            "metadata": raw(batch.metadata),
        }
    )
