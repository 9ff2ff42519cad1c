"""Retention: old ended runs and inbox events go, with their files, a batch at a time; work
in flight stays however old it is."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import orjson
import pytest
from obstore.store import MemoryStore
from sqlalchemy import func, select, update

from runback.blobs import BlobError, BlobStore
from runback.core.delivery import new_delivery
from runback.core.ids import new_id
from runback.core.inbox import CopyState, Receipt
from runback.core.records import Run
from runback.core.retry import DEFAULT_RETRY_POLICY
from runback.errors import ConfigError
from runback.provider.context import RunContext
from runback.provider.registry import ModelRegistry
from runback.pruner import Pruner
from runback.settings import load_settings
from runback.store import CopyDraft, EventDraft, Store
from runback.store.schema import delivery_attempts, runs
from runback.testing import ManualClock, respond
from support.harness import FAST_POLICY, Harness, make_harness

RETENTION = timedelta(days=30)
DAY = 86400.0


def _registry() -> ModelRegistry:
    registry = ModelRegistry()

    @registry.model("acme/draw")
    async def draw(input: dict[str, Any], context: RunContext) -> dict[str, Any]:
        await context.save_output(b"\x89PNG fake", content_type="image/png")
        return {}

    return registry


async def _harness(store: Store, clock: ManualClock, **options: Any) -> Harness:
    return await make_harness(store, clock, registry=_registry(), **options)


async def _ended(h: Harness) -> Run:
    """A run that drew one file, ended, and had its callback delivered."""
    run = await h.submit(model="acme/draw")
    await h.executor.run_until_idle()
    await h.dispatcher.deliver_due()
    return await h.run(run.id)


async def _file_keys(h: Harness, run_id: UUID) -> list[str]:
    return [output.key for output in (await h.store.outputs.for_runs([run_id]))[run_id]]


async def _attempt_count(store: Store) -> int:
    async with store.database.read() as conn:
        count: int = (
            await conn.execute(select(func.count()).select_from(delivery_attempts))
        ).scalar_one()
    return count


def _pruner(h: Harness, *, batch: int = 100, what: Any = "runs") -> Pruner:
    return Pruner(
        store=h.store, blobs=h.blobs, clock=h.clock, retention=RETENTION, batch=batch, what=what
    )


async def test_an_old_ended_run_goes_with_its_deliveries_attempts_and_files(
    store: Store, clock: ManualClock
) -> None:
    h = await _harness(store, clock)
    run = await _ended(h)
    (key,) = await _file_keys(h, run.id)
    assert await _attempt_count(store) == 1
    clock.advance(31 * DAY)

    counts = await _pruner(h).prune()

    assert counts == {"runs": 1, "deliveries": 0, "batches": 0}
    assert await store.runs.get(run.id) is None
    assert await h.deliveries(run.id) == []
    assert await _file_keys(h, run.id) == []
    assert await _attempt_count(store) == 0
    assert await h.blobs.size(key) is None


async def test_prune_runs_answers_the_file_keys_for_the_caller_to_delete(
    store: Store, clock: ManualClock
) -> None:
    h = await _harness(store, clock)
    run = await _ended(h)
    keys = await _file_keys(h, run.id)
    clock.advance(31 * DAY)

    pruned = await store.retention.prune_runs(clock.now() - RETENTION, limit=10)

    assert (pruned.rows, list(pruned.blob_keys)) == (1, keys)
    assert await h.blobs.size(keys[0]) is not None  # deleting files is the caller's part


async def test_a_run_s_uploads_go_with_it_and_only_its_own(
    store: Store, clock: ManualClock
) -> None:
    h = await _harness(store, clock)
    submitted = await h.submit(model="acme/draw")
    mine = await h.runtime.outputs.save_upload(submitted.id, 0, b"a photo")
    other = await h.runtime.outputs.save_upload(uuid4(), 0, b"someone else's")
    async with store.database.write() as conn:  # as a front door that takes files names them
        await conn.execute(
            update(runs)
            .where(runs.c.id == submitted.id)
            .values(input=orjson.dumps({"uploads": [mine, other]}).decode())
        )
    await h.executor.run_until_idle()
    await h.dispatcher.deliver_due()
    clock.advance(31 * DAY)

    await _pruner(h).prune()

    assert await h.blobs.size(mine) is None
    assert await h.blobs.size(other) is not None  # named in the input, but not its upload


async def test_a_run_younger_than_the_retention_stays(store: Store, clock: ManualClock) -> None:
    h = await _harness(store, clock)
    old = await _ended(h)
    clock.advance(20 * DAY)
    recent = await _ended(h)
    clock.advance(11 * DAY)

    await _pruner(h).prune()

    assert await store.runs.get(old.id) is None
    assert await store.runs.get(recent.id) is not None
    (key,) = await _file_keys(h, recent.id)
    assert await h.blobs.size(key) is not None


async def test_a_run_whose_delivery_is_still_pending_stays_however_old(
    store: Store, clock: ManualClock
) -> None:
    h = await _harness(store, clock, handler=lambda _request: respond(500))
    run = await h.submit(model="acme/draw")
    await h.executor.run_until_idle()
    await h.dispatcher.deliver_due()  # the first attempt fails: a retry is pending
    clock.advance(1000 * DAY)

    assert await _pruner(h).prune() == {"runs": 0, "deliveries": 0, "batches": 0}

    assert await store.runs.get(run.id) is not None
    delivery, _ = await h.only_delivery(run.id)
    assert delivery.status == "pending"


async def test_a_run_that_never_ended_stays_however_old(store: Store, clock: ManualClock) -> None:
    h = await _harness(store, clock)
    queued = await h.submit(model="acme/draw")
    clock.advance(1000 * DAY)

    await _pruner(h).prune()

    assert await store.runs.get(queued.id) is not None


async def test_a_run_whose_deliveries_all_failed_goes(store: Store, clock: ManualClock) -> None:
    h = await _harness(store, clock, handler=lambda _request: respond(500))
    run = await h.submit(model="acme/draw")
    await h.executor.run_until_idle()
    for _ in range(FAST_POLICY.max_attempts):
        await h.dispatcher.deliver_due()
        clock.advance(5)
    delivery, _ = await h.only_delivery(run.id)
    assert delivery.status == "failed"
    clock.advance(31 * DAY)

    await _pruner(h).prune()

    assert await store.runs.get(run.id) is None


async def test_runs_are_pruned_in_batches_of_the_limit(store: Store, clock: ManualClock) -> None:
    h = await _harness(store, clock)
    runs = [await _ended(h) for _ in range(5)]
    clock.advance(31 * DAY)
    before = clock.now() - RETENTION

    batches = [(await store.retention.prune_runs(before, limit=2)).rows for _ in range(4)]

    assert batches == [2, 2, 1, 0]
    assert [await store.runs.get(run.id) for run in runs] == [None] * 5


async def test_the_pruner_goes_batch_after_batch_until_one_comes_back_short(
    store: Store, clock: ManualClock
) -> None:
    h = await _harness(store, clock)
    runs = [await _ended(h) for _ in range(5)]
    keys = [key for run in runs for key in await _file_keys(h, run.id)]
    clock.advance(31 * DAY)

    assert await _pruner(h, batch=2).prune() == {"runs": 5, "deliveries": 0, "batches": 0}

    assert [await h.blobs.size(key) for key in keys] == [None] * 5


class _StuckBlobs(BlobStore):
    """A blob store whose deletes fail."""

    async def delete(self, key: str) -> None:
        raise BlobError(f"deleting {key} failed: the bucket said no")


async def test_a_file_that_fails_to_delete_is_logged_and_left_behind(
    store: Store, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    h = await _harness(store, clock)
    run = await _ended(h)
    clock.advance(31 * DAY)
    pruner = Pruner(
        store=store, blobs=_StuckBlobs(MemoryStore()), clock=clock, retention=RETENTION, batch=10
    )

    with caplog.at_level(logging.WARNING):
        assert await pruner.prune() == {"runs": 1, "deliveries": 0, "batches": 0}

    assert await store.runs.get(run.id) is None
    assert "a pruned file stays behind" in caplog.text


async def test_a_draining_pruner_starts_no_batch(store: Store, clock: ManualClock) -> None:
    h = await _harness(store, clock)
    run = await _ended(h)
    clock.advance(31 * DAY)
    pruner = _pruner(h)

    await pruner.drain(grace=0)

    assert await pruner.prune() == {"runs": 0, "deliveries": 0, "batches": 0}
    assert await store.runs.get(run.id) is not None


async def test_ended_deliveries_of_no_run_go_too(store: Store, clock: ManualClock) -> None:
    h = await _harness(store, clock)
    run = await _ended(h)
    # An operational callback (``delivery.exhausted``...): a delivery that belongs to no run.
    draft = new_delivery(
        run, delivery_id=new_id(), now=clock.now(), policy=FAST_POLICY, is_automatic=True
    )
    operational = replace(draft, run_id=None, webhook_id="msg_operational")
    await store.outbox.add(operational)
    await h.dispatcher.deliver_due()
    clock.advance(31 * DAY)

    assert await _pruner(h).prune() == {"runs": 1, "deliveries": 1, "batches": 0}

    found = await store.deliveries.get(operational.id, organization_id=h.organization_id)
    assert found is None
    assert await _attempt_count(store) == 0


# The inbox, through its store: events as ``runback receive`` accepts them.


def _receipt(received_at: datetime) -> Receipt:
    return Receipt(
        id=new_id(),
        event_id=None,
        source="runback",
        body=b'{"event":"run.completed"}',
        headers="{}",
        scheme="v1",
        rejected_reason=None,
        received_at=received_at,
    )


def _draft(dedupe_key: str, *, wants_handler: bool = False) -> EventDraft:
    return EventDraft(
        source="runback",
        dedupe_key=dedupe_key,
        event="run.completed",
        run_id=None,
        batch_id=None,
        headshots_id=None,
        task_uuid=None,
        status=None,
        webhook_id=None,
        wants_handler=wants_handler,
    )


async def _accept(
    store: Store, clock: ManualClock, key: str, *, copies: int = 0, wants_handler: bool = False
) -> UUID:
    drafts = [
        CopyDraft(f"outputs.{n}", f"https://files.example/{n}", clock.now() + RETENTION, None)
        for n in range(copies)
    ]
    event_id, _ = await store.inbox.accept(
        _receipt(clock.now()), _draft(key, wants_handler=wants_handler), drafts
    )
    return event_id


async def _copy_everything(store: Store, blobs: BlobStore, clock: ManualClock) -> list[str]:
    """Claim every pending copy and store it, as the copier would; answers the blob keys."""
    claimed = await store.inbox.claim_copies(
        worker="test", limit=100, now=clock.now(), lease_until=clock.now() + timedelta(minutes=1)
    )
    keys = []
    for copy in claimed:
        key = f"inbox/{copy.id}"
        stored = await blobs.put(key, b"copied")
        await store.inbox.finish_copy(
            copy.id,
            now=clock.now(),
            state=CopyState.COPIED,
            attempts=1,
            next_attempt_at=None,
            last_error=None,
            stored_key=key,
            size=stored.size,
            sha256=stored.sha256,
            content_type="image/png",
        )
        keys.append(key)
    return keys


async def test_an_old_inbox_event_goes_with_its_receipts_copies_and_files(
    store: Store, clock: ManualClock
) -> None:
    blobs = BlobStore.memory()
    event_id = await _accept(store, clock, "run:1", copies=2)
    keys = await _copy_everything(store, blobs, clock)
    clock.advance(31 * DAY)
    pruner = Pruner(
        store=store, blobs=blobs, clock=clock, retention=RETENTION, batch=100, what="inbox"
    )

    assert await pruner.prune() == {"inbox rows": 1}

    assert await store.inbox.event(event_id) is None
    assert [await blobs.size(key) for key in keys] == [None, None]


async def test_prune_inbox_answers_the_stored_keys(store: Store, clock: ManualClock) -> None:
    blobs = BlobStore.memory()
    await _accept(store, clock, "run:1", copies=2)
    keys = await _copy_everything(store, blobs, clock)
    clock.advance(31 * DAY)

    pruned = await store.retention.prune_inbox(clock.now() - RETENTION, limit=10)

    assert pruned.rows == 1
    assert sorted(pruned.blob_keys) == sorted(keys)


async def test_an_event_received_again_recently_stays(store: Store, clock: ManualClock) -> None:
    event_id = await _accept(store, clock, "run:1")
    clock.advance(25 * DAY)
    await _accept(store, clock, "run:1")  # a redelivery of the same callback
    clock.advance(6 * DAY)

    pruned = await store.retention.prune_inbox(clock.now() - RETENTION, limit=10)

    assert pruned.rows == 0
    found = await store.inbox.event(event_id)
    assert found is not None
    assert len(found[1]) == 2  # both receipts


async def test_an_event_with_work_under_way_stays(store: Store, clock: ManualClock) -> None:
    handler_pending = await _accept(store, clock, "run:1", wants_handler=True)
    copy_pending = await _accept(store, clock, "run:2", copies=1)
    clock.advance(1000 * DAY)

    pruned = await store.retention.prune_inbox(clock.now() - RETENTION, limit=10)

    assert pruned.rows == 0
    assert await store.inbox.event(handler_pending) is not None
    assert await store.inbox.event(copy_pending) is not None


async def test_old_receipts_that_never_became_events_go(store: Store, clock: ManualClock) -> None:
    await store.inbox.reject(_receipt(clock.now()))
    clock.advance(31 * DAY)
    await store.inbox.reject(_receipt(clock.now()))

    pruned = await store.retention.prune_inbox(clock.now() - RETENTION, limit=10)

    assert pruned.rows == 1


async def test_inbox_events_are_pruned_in_batches_of_the_limit(
    store: Store, clock: ManualClock
) -> None:
    for n in range(5):
        await _accept(store, clock, f"run:{n}")
    clock.advance(31 * DAY)
    before = clock.now() - RETENTION

    batches = [(await store.retention.prune_inbox(before, limit=2)).rows for _ in range(4)]

    assert batches == [2, 2, 1, 0]


# Settings.


@pytest.mark.parametrize(
    ("days", "accepted"),
    [
        (30, True),  # the default
        (0, True),  # pruning off
        (2.5, True),  # just past the retry window and its margin (about 2.45 days)
        (2.4, False),  # inside it
        (1, False),  # far inside it
    ],
)
def test_retention_must_outlast_the_retry_window(days: float, accepted: bool) -> None:
    assert DEFAULT_RETRY_POLICY.window * 1.1 / DAY == pytest.approx(2.453, abs=0.001)
    if accepted:
        assert load_settings(retention_days=days).retention_days == days
    else:
        with pytest.raises(ConfigError, match=r"^--retention-days .*more than 2\.45 days"):
            load_settings(retention_days=days)


def test_retention_defaults() -> None:
    settings = load_settings()

    assert (settings.retention_days, settings.prune_batch) == (30, 500)


async def test_the_copier_waits_for_copies_only_not_for_a_due_handler(
    store: Store, clock: ManualClock
) -> None:
    await _accept(store, clock, "handled", wants_handler=True)  # its handler is due now
    assert await store.inbox.next_copy_at() is None  # the copier has nothing to wake for

    await _accept(store, clock, "copied", copies=1)

    assert await store.inbox.next_copy_at() == clock.now()


async def test_settled_expectations_are_pruned_waiting_ones_stay(
    store: Store, clock: ManualClock
) -> None:
    by = clock.now() + timedelta(minutes=10)
    await store.expected.expect("mine", "old", expected_by=by, now=clock.now())
    await store.expected.expect("mine", "still", expected_by=by, now=clock.now())
    await store.expected.polled(
        "mine", "old", attempts=1, error=None, next_poll_at=None, now=clock.now()
    )
    clock.advance(31 * DAY)

    pruned = await store.retention.prune_inbox(clock.now() - RETENTION, limit=10)

    assert pruned.rows == 1
    assert await store.expected.get("mine", "old") is None
    assert await store.expected.get("mine", "still") is not None
