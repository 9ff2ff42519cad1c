"""The process's metrics: bounded labels, the families the dispatcher and outbox feed, and
the backlog gauges read from the store when ``/metrics`` is scraped."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from runback import metrics
from runback.core.destinations import BreakerState, destination_of
from runback.core.states import RunStatus
from runback.metrics.hosts import OTHER, HostLabels
from runback.store import Store
from runback.testing import ManualClock, respond
from support.api import api_client
from support.factories import ended_run
from support.harness import make_harness
from support.metrics import Scrape


@pytest.mark.parametrize(
    ("url", "label"),
    [
        # the query string carries a token: it never reaches a label
        ("https://hooks.example.com/cb/7?token=s3cr3t", "hooks.example.com:443"),
        # credentials, a fragment and a mixed-case host
        ("http://user:pw@Hooks.Example.com:8080/x?y=z#frag", "hooks.example.com:8080"),
        # an IPv6 literal, as urlsplit gives it
        ("http://[::1]:9000/a?b=c", "::1:9000"),
        # an escaped slash in the host is not a host
        ("http://a%2Fb.example/x", OTHER),
        # no host at all
        ("http:///path?token=s3cr3t", OTHER),
    ],
)
def test_a_host_label_is_a_host_and_port_never_a_path_query_or_credentials(
    url: str, label: str
) -> None:
    found = HostLabels()(destination_of(url))

    assert found == label
    for part in ("/", "?", "@", "=", "#", "s3cr3t", "token", "user"):
        assert part not in found


def test_hosts_past_the_cap_are_labelled_other_and_the_first_keep_their_names() -> None:
    labels = HostLabels(max_hosts=3)
    hosts = [f"h{n}.example:443" for n in range(10)]

    first = [labels(host) for host in hosts]
    again = [labels(host) for host in reversed(hosts)]

    assert first == [*hosts[:3], *[OTHER] * 7]
    assert again == list(reversed(first))


def test_a_hostile_flood_of_hosts_is_remembered_only_up_to_a_bound() -> None:
    labels = HostLabels(max_hosts=2)

    for n in range(10_000):
        assert labels(f"x{n}.attacker.example:80") in (f"x{n}.attacker.example:80", OTHER)

    assert len(labels._labels) <= 8  # four times the cap: refusals are not kept forever


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_a_run_of_a_model_the_registry_does_not_know_is_counted_as_other() -> None:
    before = _sample("runback_runs_total", model="other", status="failed")
    known = _sample("runback_runs_total", model="runback/echo", status="succeeded")
    durations = _sample("runback_run_duration_seconds_count", model="runback/echo")

    metrics.run_ended(ended_run(model="whatever/${jndi}", status=RunStatus.FAILED), known=False)
    metrics.run_ended(ended_run(model="runback/echo", status=RunStatus.SUCCEEDED), known=True)

    assert _sample("runback_runs_total", model="other", status="failed") == before + 1
    assert _sample("runback_runs_total", model="runback/echo", status="succeeded") == known + 1
    assert _sample("runback_run_duration_seconds_count", model="runback/echo") == durations + 1


def test_a_circuit_gauge_follows_its_host_and_reads_closed_once_it_recovers() -> None:
    host = "circuit-test.example:443"

    metrics.observe_circuits({host: BreakerState.OPEN})
    opened = _sample("runback_destination_circuit_state", host=host)
    metrics.observe_circuits({host: BreakerState.HALF_OPEN})
    probing = _sample("runback_destination_circuit_state", host=host)
    metrics.observe_circuits({})
    recovered = REGISTRY.get_sample_value("runback_destination_circuit_state", {"host": host})

    assert (opened, probing, recovered) == (2, 1, 0)


async def test_queued_runs_are_a_backlog_as_old_as_the_first_submitted(
    store: Store, clock: ManualClock
) -> None:
    async with api_client(store, clock) as api:
        await api.run_id()
        clock.advance(10)
        await api.run_id()
        clock.advance(20)

        response = await api.client.get("/metrics")

    scrape = Scrape(response.text)
    assert scrape.value("runback_queue_depth", queue="runs") == 2
    assert scrape.value("runback_queue_oldest_due_age_seconds", queue="runs") == 30
    assert scrape.value("runback_queue_depth", queue="deliveries") == 0
    assert scrape.value("runback_queue_oldest_due_age_seconds", queue="deliveries") == 0
    assert scrape.value("runback_queue_depth", queue="copies") is None  # the receiver's


async def test_a_pending_delivery_counts_in_the_depth_but_is_late_only_once_due(
    store: Store, clock: ManualClock
) -> None:
    harness = await make_harness(store, clock, handler=lambda _request: respond(500))
    backlogs = metrics.Backlogs(store, clock, queues=metrics.PROVIDER_QUEUES, ttl=0)

    async def deliveries() -> tuple[float | None, float | None]:
        scrape = Scrape((await backlogs.exposition()).decode())
        return (
            scrape.value("runback_queue_depth", queue="deliveries"),
            scrape.value("runback_queue_oldest_due_age_seconds", queue="deliveries"),
        )

    async with api_client(store, clock) as api:
        await api.run_id()
    await harness.executor.run_until_idle()
    clock.advance(3)
    due = await deliveries()
    await harness.dispatcher.deliver_due()  # a 500: its retry is scheduled ahead
    retrying = await deliveries()

    assert due == (1, 3)
    assert retrying == (1, 0)


async def test_a_scrape_within_the_cache_time_reads_nothing(
    store: Store, clock: ManualClock
) -> None:
    backlogs = metrics.Backlogs(store, clock, queues=metrics.PROVIDER_QUEUES, ttl=60)
    first = await backlogs.exposition()
    async with api_client(store, clock) as api:
        await api.run_id()

    with store.database.tracing() as statements:
        again = await backlogs.exposition()

    assert again == first
    assert statements == []
