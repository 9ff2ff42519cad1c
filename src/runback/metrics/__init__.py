"""Prometheus metrics of the process, served at ``/metrics`` by every role.

Counters, histograms and the circuit gauges are the process's own (Prometheus sums them
across processes); the backlog gauges (``metrics.backlogs``) are global views of the store,
read at scrape time. Every label is bounded: outcomes and statuses are enums, models the
registry's names, hosts a capped set of ``host:port`` (``metrics.hosts``). ``docs/metrics.md``
lists every family.
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from runback.metrics.backlogs import PROVIDER_QUEUES, RECEIVER_QUEUES, Backlogs, Queue
from runback.metrics.delivery import (
    attempt_refused,
    attempted,
    delivery_failed,
    destination_transition,
    observe_circuits,
)
from runback.metrics.receiving import acknowledged
from runback.metrics.runs import run_ended


async def exposition(backlogs: Backlogs | None = None) -> tuple[bytes, str]:
    """The metrics in Prometheus' text format (with ``backlogs``' gauges), and its content
    type."""
    body = generate_latest()
    if backlogs is not None:
        body += await backlogs.exposition()
    return body, CONTENT_TYPE_LATEST


__all__ = [
    "PROVIDER_QUEUES",
    "RECEIVER_QUEUES",
    "Backlogs",
    "Queue",
    "acknowledged",
    "attempt_refused",
    "attempted",
    "delivery_failed",
    "destination_transition",
    "exposition",
    "observe_circuits",
    "run_ended",
]
