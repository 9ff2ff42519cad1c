"""The store reads and writes the dashboard added: destinations disabled by hand, their
statistics, and batches a page at a time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from runback.store import Store
from runback.store.destination_stats import destination_stats, percentile
from runback.testing import ManualClock
from support.api import Api, api_client

HOST = "receiver.example:443"


@pytest.fixture
async def api(store: Store, clock: ManualClock) -> AsyncIterator[Api]:
    async with api_client(store, clock) as client:
        yield client


@pytest.mark.parametrize(
    ("values", "fraction", "expected"),
    [
        ([], 0.95, None),  # nothing measured
        ([7], 0.95, 7),  # one value is every percentile
        (list(range(1, 101)), 0.95, 95),  # nearest rank
        ([30, 10, 20], 0.5, 20),  # order does not matter
    ],
)
def test_percentile_is_the_nearest_rank(
    values: list[int], fraction: float, expected: int | None
) -> None:
    assert percentile(values, fraction) == expected


async def test_a_disabled_destination_gets_nothing_until_it_is_enabled(api: Api) -> None:
    harness = api.harness
    await harness.store.destinations.disable(HOST, now=harness.clock.now())
    await api.run_id()  # its callback goes to receiver.example
    await harness.executor.run_until_idle()

    await harness.dispatcher.deliver_due()
    assert harness.sender.requests == []

    assert await harness.store.destinations.enable(HOST, now=harness.clock.now())
    await harness.dispatcher.deliver_due()
    assert len(harness.sender.requests) == 1


async def test_disabling_holds_what_was_waiting_and_keeps_the_failures(api: Api) -> None:
    harness = api.harness
    await api.run_id()
    await harness.executor.run_until_idle()

    await harness.store.destinations.disable(HOST, now=harness.clock.now())
    await harness.store.destinations.disable(HOST, now=harness.clock.now() + timedelta(hours=1))

    [destination] = (await harness.store.destinations.troubled()).values()
    assert destination.disabled_at == harness.clock.now()  # the first decision stands
    harness.clock.advance(3600)
    await harness.dispatcher.deliver_due()
    assert harness.sender.requests == []


async def test_stats_count_attempts_successes_latency_and_backlog(api: Api) -> None:
    await api.deliver_one()
    await api.run_id()  # a second callback, not yet sent
    await api.harness.executor.run_until_idle()
    since = api.harness.clock.now() - timedelta(hours=1)

    [stats] = await destination_stats(
        api.harness.store.database, api.harness.organization_id, since=since
    )

    assert (stats.host, stats.attempts, stats.succeeded, stats.backlog) == (HOST, 1, 1, 1)
    assert stats.success_rate == 1.0
    assert stats.p95_ms is not None
    other = await api.harness.store.accounts.create_organization("other", now=since)
    assert await destination_stats(api.harness.store.database, other.id, since=since) == []


async def test_batches_come_newest_first_a_page_at_a_time(api: Api) -> None:
    made = []
    for _ in range(3):
        created = await api.post("/v1/models/runback/echo/batches", {"input": [{}]})
        made.append(created.json()["id"])
        api.harness.clock.advance(1)
    org = api.harness.organization_id

    first, after = await api.harness.store.batches.page(org, after=None, limit=2)
    second, end = await api.harness.store.batches.page(org, after=after, limit=2)

    assert [str(b.id) for b in first + second] == made[::-1]
    assert end is None
