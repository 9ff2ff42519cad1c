"""Operational callbacks: telling the operator what needs a human, at a URL they configure.

``delivery.exhausted`` (a delivery failed for good), ``destination.disabled`` and
``destination.recovered`` are delivered like every callback (outbox, retries, signatures of
the organization concerned), so an alert is not lost to the very outage it reports.
Deliveries to the operator's URL never raise alerts of their own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import UUID

import orjson

from runback.core.clock import Clock, isoformat
from runback.core.delivery import NextStep
from runback.core.destinations import Destination, Transition, destination_of
from runback.core.ids import new_id
from runback.core.records import Delivery
from runback.core.retry import RetryPolicy
from runback.core.states import DeliveryStatus
from runback.store import Store


class Operations:
    """Creates operational deliveries to ``url``."""

    def __init__(
        self,
        *,
        store: Store,
        clock: Clock,
        url: str,
        policy: RetryPolicy,
        on_delivery: Callable[[], None],
    ) -> None:
        self._store = store
        self._clock = clock
        self._url = url
        self._policy = policy
        self._on_delivery = on_delivery

    async def exhausted(self, delivery: Delivery, step: NextStep) -> None:
        """A run's delivery failed for good."""
        await self._send(
            delivery.organization_id,
            {
                "event": "delivery.exhausted",
                "delivery_id": str(delivery.id),
                "run_id": str(delivery.run_id),
                "callback_url": delivery.callback_url,
                "failure_reason_code": step.failure_reason_code,
                "failure_detail": step.failure_detail,
            },
        )

    async def destination(self, destination: Destination, transition: Transition) -> None:
        """A destination was disabled, or recovered."""
        organization, _ = await self._store.accounts.ensure_default_organization(
            now=self._clock.now()
        )
        await self._send(
            organization.id,
            {
                "event": transition.value,
                "destination": destination.host,
                "failing_since": isoformat(destination.failing_since),
                "disabled_at": isoformat(destination.disabled_at),
            },
        )

    async def _send(self, organization_id: UUID, fields: dict[str, Any]) -> None:
        now = self._clock.now()
        delivery_id = new_id()
        body = orjson.dumps({**fields, "created_at": isoformat(now)})
        await self._store.outbox.add(
            Delivery(
                id=delivery_id,
                organization_id=organization_id,
                run_id=None,
                batch_id=None,
                callback_url=self._url,
                webhook_id=f"msg_{delivery_id.hex}",
                payload_bytes=body,
                is_automatic=True,
                status=DeliveryStatus.PENDING,
                failure_reason_code=None,
                failure_detail=None,
                attempt_count=0,
                retry_policy=self._policy,
                next_attempt_at=now,
                signing_secret_id=None,
                created_at=now,
                updated_at=now,
                completed_at=None,
                destination=destination_of(self._url),
            )
        )
        self._on_delivery()
