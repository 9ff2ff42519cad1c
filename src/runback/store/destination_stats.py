"""How an organization's callback destinations are doing: the dashboard's read.

Per ``host:port``, over a recent window: attempts, how many succeeded, the 95th percentile
of their latency, and the deliveries waiting (pending or in flight). The percentile is taken
here, over at most ``MAX_SAMPLED`` of the latest attempts, so both dialects read alike.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from sqlalchemy import func, select

from runback.core.states import DeliveryStatus
from runback.store.database import Database
from runback.store.schema import deliveries, delivery_attempts

MAX_SAMPLED = 20_000
_WAITING = (DeliveryStatus.PENDING.value, DeliveryStatus.DELIVERING.value)


@dataclass(frozen=True, slots=True)
class DestinationStats:
    """One destination's recent attempts and its backlog."""

    host: str
    attempts: int = 0
    succeeded: int = 0
    p95_ms: int | None = None
    backlog: int = 0

    @property
    def success_rate(self) -> float | None:
        return self.succeeded / self.attempts if self.attempts else None


def percentile(values: list[int], fraction: float) -> int | None:
    """The nearest-rank percentile of ``values``; None for none."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


async def destination_stats(
    database: Database, organization_id: UUID, *, since: datetime
) -> list[DestinationStats]:
    """The organization's destinations with attempts since ``since`` or a backlog, by host."""
    attempts = (
        select(
            deliveries.c.destination,
            delivery_attempts.c.failure_reason_code,
            delivery_attempts.c.response_time_ms,
        )
        .join(deliveries, deliveries.c.id == delivery_attempts.c.delivery_id)
        .where(
            delivery_attempts.c.organization_id == organization_id,
            delivery_attempts.c.created_at >= since,
            delivery_attempts.c.refused_reason.is_(None),
        )
        .order_by(delivery_attempts.c.created_at.desc())
        .limit(MAX_SAMPLED)
    )
    backlog = (
        select(deliveries.c.destination, func.count().label("waiting"))
        .where(
            deliveries.c.organization_id == organization_id,
            deliveries.c.status.in_(_WAITING),
        )
        .group_by(deliveries.c.destination)
    )
    latencies: dict[str, list[int]] = defaultdict(list)
    succeeded: dict[str, int] = defaultdict(int)
    async with database.read() as conn:
        for row in await conn.execute(attempts):
            host = row.destination or ""
            latencies[host].append(row.response_time_ms)
            succeeded[host] += row.failure_reason_code is None
        waiting = {row.destination or "": row.waiting for row in await conn.execute(backlog)}
    return [
        DestinationStats(
            host=host,
            attempts=len(latencies[host]),
            succeeded=succeeded[host],
            p95_ms=percentile(latencies[host], 0.95),
            backlog=waiting.get(host, 0),
        )
        for host in sorted(set(latencies) | set(waiting))
    ]
