"""Expected runs in the store, on both databases: made once, matched by a callback whether it
comes before or after, claimed when due, polled, given up, and reconciled into the inbox."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest

from runback.core.expected import ExpectedState
from runback.core.ids import new_id
from runback.core.inbox import Receipt
from runback.store import EventDraft, Store
from runback.store.arrivals import Arrival

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
LATER = NOW + timedelta(minutes=10)
LEASE = timedelta(minutes=5)


def end_draft(run_id: str, *, event: str = "run.completed", reconciled: bool = False) -> EventDraft:
    return EventDraft(
        source="mine",
        dedupe_key=f"run:{run_id}:{event}",
        event=event,
        run_id=run_id,
        batch_id=None,
        headshots_id=None,
        task_uuid=None,
        status="succeeded",
        webhook_id=None,
        wants_handler=False,
        reconciled=reconciled,
    )


def receipt(at: datetime, scheme: str = "v1") -> Receipt:
    return Receipt(new_id(), None, "mine", b"{}", "{}", scheme, None, at)


async def callback(store: Store, run_id: str, *, at: datetime = NOW, **draft: object) -> UUID:
    event_id, _ = await store.inbox.accept(receipt(at), end_draft(run_id, **draft), [])  # type: ignore[arg-type]
    return event_id


async def test_an_expectation_is_made_once(store: Store) -> None:
    first, created = await store.expected.expect("mine", "run_1", expected_by=LATER, now=NOW)
    again, created_again = await store.expected.expect(
        "mine", "run_1", expected_by=LATER + LEASE, now=LATER
    )

    assert (created, created_again) == (True, False)
    assert first.state is ExpectedState.WAITING
    assert first.next_poll_at == LATER
    assert again == first


async def test_a_callback_coming_later_settles_it_arrived(store: Store) -> None:
    await store.expected.expect("mine", "run_1", expected_by=LATER, now=NOW)

    event_id = await callback(store, "run_1", at=NOW + LEASE)

    found = await store.expected.get("mine", "run_1")
    assert found is not None
    assert (found.state, found.event_id, found.settled_at) == (
        ExpectedState.ARRIVED,
        event_id,
        NOW + LEASE,
    )
    assert found.next_poll_at is None


async def test_a_callback_that_came_first_is_matched_when_the_expectation_comes(
    store: Store,
) -> None:
    event_id = await callback(store, "run_1")

    found, created = await store.expected.expect("mine", "run_1", expected_by=LATER, now=NOW)

    assert created
    assert (found.state, found.event_id) == (ExpectedState.ARRIVED, event_id)


@pytest.mark.parametrize(
    ("source", "event"),
    [
        ("other", "run.completed"),  # the same run id from another source
        ("mine", "run.started"),  # an event that does not end the run
    ],
)
async def test_only_the_run_s_end_from_its_source_settles_it(
    store: Store, source: str, event: str
) -> None:
    await store.expected.expect(source, "run_1", expected_by=LATER, now=NOW)
    await callback(store, "run_1", event=event)

    found = await store.expected.get(source, "run_1")
    assert found is not None
    assert found.state is ExpectedState.WAITING


async def test_the_due_are_claimed_earliest_first_and_held_by_a_lease(store: Store) -> None:
    await store.expected.expect("mine", "late", expected_by=LATER + LEASE, now=NOW)
    await store.expected.expect("mine", "second", expected_by=LATER, now=NOW)
    await store.expected.expect("mine", "first", expected_by=LATER - LEASE, now=NOW)

    claimed = await store.expected.claim_due(now=LATER, limit=5, lease_until=LATER + LEASE)
    again = await store.expected.claim_due(now=LATER, limit=5, lease_until=LATER + LEASE)

    assert [e.run_id for e in claimed] == ["first", "second"]
    assert all(e.next_poll_at == LATER + LEASE for e in claimed)
    assert again == []
    assert await store.expected.next_due_at() == LATER + LEASE


async def test_a_claim_takes_at_most_its_limit(store: Store) -> None:
    for n in range(3):
        await store.expected.expect("mine", f"run_{n}", expected_by=NOW + n * LEASE, now=NOW)

    claimed = await store.expected.claim_due(now=LATER + LEASE, limit=2, lease_until=LATER)

    assert [e.run_id for e in claimed] == ["run_0", "run_1"]


async def test_an_end_that_came_unmatched_is_settled_at_the_claim_not_polled(
    store: Store,
) -> None:
    # On PostgreSQL an expectation and its callback written at once may miss each other:
    # a reconciled draft skips the inbox's own match, leaving it as that race would.
    await store.expected.expect("mine", "run_1", expected_by=LATER, now=NOW)
    event_id = await callback(store, "run_1", reconciled=True)

    claimed = await store.expected.claim_due(now=LATER, limit=5, lease_until=LATER + LEASE)

    found = await store.expected.get("mine", "run_1")
    assert claimed == []
    assert found is not None
    assert (found.state, found.event_id) == (ExpectedState.ARRIVED, event_id)


async def test_a_poll_that_did_not_see_the_end_plans_the_next_or_gives_up(store: Store) -> None:
    await store.expected.expect("mine", "run_1", expected_by=LATER, now=NOW)
    await store.expected.expect("mine", "run_2", expected_by=LATER, now=NOW)

    await store.expected.polled(
        "mine", "run_1", attempts=1, error="ConnectError: refused", next_poll_at=LATER, now=NOW
    )
    await store.expected.polled("mine", "run_2", attempts=9, error=None, next_poll_at=None, now=NOW)

    going, gone = (
        await store.expected.get("mine", "run_1"),
        await store.expected.get("mine", "run_2"),
    )
    assert going is not None
    assert gone is not None
    assert (going.state, going.attempts, going.last_error, going.next_poll_at) == (
        ExpectedState.WAITING,
        1,
        "ConnectError: refused",
        LATER,
    )
    assert (gone.state, gone.attempts, gone.next_poll_at, gone.settled_at) == (
        ExpectedState.GAVE_UP,
        9,
        None,
        NOW,
    )


async def test_a_reconciled_end_is_an_event_a_late_callback_only_repeats(store: Store) -> None:
    await store.expected.expect("mine", "run_1", expected_by=LATER, now=NOW)
    arrival = Arrival(receipt(LATER, "reconciled"), end_draft("run_1", reconciled=True), ())

    event_id, duplicate = await store.expected.reconcile(arrival, attempts=1)
    late_id = await callback(store, "run_1", at=LATER + LEASE)

    found = await store.expected.get("mine", "run_1")
    event = await store.inbox.event(event_id)
    assert not duplicate
    assert late_id == event_id
    assert found is not None
    assert (found.state, found.event_id, found.attempts) == (
        ExpectedState.RECONCILED,
        event_id,
        1,
    )
    assert event is not None
    assert event[0].reconciled
    assert event[0].receipt_count == 2
    assert [r.scheme for r in event[1]] == ["reconciled", "v1"]


async def test_a_callback_that_beat_the_poll_makes_the_reconciled_end_a_duplicate(
    store: Store,
) -> None:
    await store.expected.expect("mine", "run_1", expected_by=LATER, now=NOW)
    await store.expected.claim_due(now=LATER, limit=1, lease_until=LATER + LEASE)
    event_id = await callback(store, "run_1", at=LATER)
    arrival = Arrival(receipt(LATER, "reconciled"), end_draft("run_1", reconciled=True), ())

    again, duplicate = await store.expected.reconcile(arrival, attempts=1)

    found = await store.expected.get("mine", "run_1")
    event = await store.inbox.event(event_id)
    assert duplicate
    assert again == event_id
    assert found is not None
    assert found.state is ExpectedState.ARRIVED
    assert event is not None
    assert not event[0].reconciled


async def test_expectations_are_listed_newest_first_by_state(store: Store) -> None:
    for n in range(3):
        await store.expected.expect("mine", f"run_{n}", expected_by=LATER, now=NOW + n * LEASE)
    await callback(store, "run_1")

    waiting, after = await store.expected.page(
        state=ExpectedState.WAITING, source=None, after=None, limit=1
    )
    rest, end = await store.expected.page(
        state=ExpectedState.WAITING, source="mine", after=after, limit=5
    )

    assert [e.run_id for e in waiting + rest] == ["run_2", "run_0"]
    assert end is None


async def test_expectations_made_at_once_by_two_receivers_are_one(
    store_pair: tuple[Store, Store],
) -> None:
    first, second = store_pair

    made = await asyncio.gather(
        *(
            (first if n % 2 else second).expected.expect(
                "mine", "run_1", expected_by=LATER, now=NOW
            )
            for n in range(6)
        )
    )

    assert sorted(created for _, created in made) == [False] * 5 + [True]
    assert len({found for found, _ in made}) == 1
