"""Payloads: every delivery the outbox makes passes here before it is stored.

A body at or under the deployment's ``callback_max_bytes`` goes through untouched (no blob
write, the same bytes). A longer one is written whole to blob storage under its run's (or
batch's) prefix, so retention deletes it with them, and the delivery freezes the thin body
of ``runback.core.thin`` instead, whose ``output_url`` serves exactly those bytes. The URL
lives as long as the run's output URLs, and never less than the delivery's retry window, so
its last retry still carries a link that works. A redelivery builds its body afresh, so it
gets a fresh blob and URL.

The blob is written before the delivery commits, as output files are: a delivery row never
points at a missing body.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import timedelta

from runback.blobs import BlobError, BlobStore
from runback.core.records import Delivery, Run
from runback.core.thin import full_body_key, thin_body
from runback.provider.outputs import Outputs

log = logging.getLogger(__name__)

JSON = "application/json"


class Payloads:
    """Makes deliveries whose bodies are too big thin."""

    def __init__(self, *, blobs: BlobStore, outputs: Outputs, max_bytes: int) -> None:
        self._blobs = blobs
        self._outputs = outputs
        self._max_bytes = max_bytes

    async def fit(self, delivery: Delivery, *, run: Run | None = None) -> Delivery:
        """``delivery`` as it is to be stored: unchanged when its body is within the limit,
        else thin, its full body kept for ``output_url`` (``run``: whose URL lifetime)."""
        body = delivery.payload_bytes
        if len(body) <= self._max_bytes:
            return delivery
        key = full_body_key(
            delivery_id=delivery.id, run_id=delivery.run_id, batch_id=delivery.batch_id
        )
        lifetime = max(
            self._outputs.default_lifetime if run is None else self._outputs.lifetime(run),
            timedelta(seconds=delivery.retry_policy.window),
        )
        url = await self._outputs.sign(key, expires_at=self._outputs.expires_after(lifetime))
        thin = thin_body(body, url)
        if thin is None:
            log.warning(
                "delivery %s: a %d-byte body that is not a JSON object is sent whole",
                delivery.id,
                len(body),
            )
            return delivery
        await self._blobs.put(key, body, content_type=JSON)
        return replace(delivery, payload_bytes=thin)

    async def discard(self, delivery: Delivery | None) -> None:
        """Delete the full body ``fit`` kept for a delivery that was never committed (its
        run was ended by another writer first, its batch callback committed elsewhere)."""
        if delivery is None or len(delivery.payload_bytes) > self._max_bytes:
            return  # sent whole: nothing was kept
        key = full_body_key(
            delivery_id=delivery.id, run_id=delivery.run_id, batch_id=delivery.batch_id
        )
        try:
            await self._blobs.delete(key)
        except BlobError as exc:  # a stray body costs storage only: say so, go on
            log.warning("delivery %s: its uncommitted body %s stays: %s", delivery.id, key, exc)
