"""The API's other resources: batches, callback deliveries, callback secrets, models.

Calls that change something are retried only when a repeat is harmless: a batch's create
carries an ``Idempotency-Key``; cancels, promotions and disables end where they would have
anyway. A redelivery, a recovery and a new secret each make something new, so they are sent
once.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import quote

from runback.client.feed import follow
from runback.client.records import (
    Batch,
    BatchItem,
    CallbackTest,
    Delivery,
    DeliveryMessage,
    Model,
    Recovery,
    Secret,
    array_of,
    items_of,
)
from runback.client.runs import model_path, run_path
from runback.client.transport import Transport


def _path(prefix: str, item_id: str, *rest: str) -> str:
    return "/".join((prefix, quote(item_id, safe=""), *rest))


def _deliveries(answer: object) -> list[Delivery]:
    return [Delivery.from_json(item) for item in array_of(answer)]


class Batches:
    """``client.batches``."""

    def __init__(self, transport: Transport) -> None:
        self._transport = transport

    async def create(
        self,
        model: str,
        inputs: Sequence[Mapping[str, Any]],
        *,
        callback_url: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> Batch:
        """Submit 1 to 100 runs of one model as a batch (an item may carry its own
        ``client_ref`` and ``callback_url``); answered at once, every item ``queued``."""
        body: dict[str, Any] = {"input": [dict(item) for item in inputs]}
        if callback_url is not None:
            body["callback_url"] = callback_url
        if metadata is not None:
            body["metadata"] = dict(metadata)
        key = idempotency_key or str(uuid.uuid4())
        answer = await self._transport.call(
            "POST", model_path(model, "batches"), body=body, headers={"Idempotency-Key": key}
        )
        return Batch.from_json(answer)

    async def get(self, batch_id: str) -> Batch:
        """The batch as it stands, its items, and how its callback is doing."""
        return Batch.from_json(await self._transport.call("GET", _path("/v1/batches", batch_id)))

    async def items(self, batch_id: str, *, page_size: int = 100) -> AsyncIterator[BatchItem]:
        """The batch's items in order, with their outputs."""
        path = _path("/v1/batches", batch_id, "items")
        async for item in self._transport.pages(path, {"limit": str(page_size)}):
            yield BatchItem.from_json(item)

    async def cancel(self, batch_id: str) -> Batch:
        """Cancel every item not yet ended."""
        path = _path("/v1/batches", batch_id, "cancel")
        return Batch.from_json(await self._transport.call("POST", path))

    async def deliveries(self, batch_id: str) -> list[Delivery]:
        """The deliveries of the batch's own callback, oldest first."""
        path = _path("/v1/batches", batch_id, "callback")
        return _deliveries(await self._transport.call("GET", path))

    async def redeliver(self, batch_id: str) -> Delivery:
        """A new delivery of the ended batch's callback."""
        path = _path("/v1/batches", batch_id, "callback-redeliveries")
        return Delivery.from_json(await self._transport.call("POST", path, retry=False))


class Deliveries:
    """``client.deliveries``: callback deliveries, their attempts, sending them again."""

    def __init__(self, transport: Transport) -> None:
        self._transport = transport

    async def list(self, run_id: str) -> list[Delivery]:
        """A run's deliveries, oldest first, attempts inline."""
        return _deliveries(await self._transport.call("GET", run_path(run_id, "callback")))

    async def get(self, delivery_id: str) -> Delivery:
        """One delivery, attempts inline."""
        path = _path("/v1/callback-deliveries", delivery_id)
        return Delivery.from_json(await self._transport.call("GET", path))

    async def redeliver(
        self, run_id: str, *, result_id: str | None = None, sequence: int | None = None
    ) -> Delivery:
        """A new delivery of the ended run's callback; of one of its results with
        ``result_id``, of one of its progress events with ``sequence``."""
        body: dict[str, Any] = {}
        if result_id is not None:
            body["result_id"] = result_id
        if sequence is not None:
            body["sequence"] = sequence
        path = run_path(run_id, "callback-redeliveries")
        return Delivery.from_json(
            await self._transport.call("POST", path, body=body or None, retry=False)
        )

    async def test(self, url: str) -> CallbackTest:
        """Send a signed ``test.ping`` to ``url`` now, through the same URL policy and
        signing as every callback; answers what came back (never retried: each call sends
        one)."""
        answer = await self._transport.call(
            "POST", "/v1/callback-tests", body={"url": url}, retry=False
        )
        return CallbackTest.from_json(answer)

    async def recover(
        self, from_: datetime, to: datetime, *, destination: str | None = None
    ) -> Recovery:
        """Queue again every failed delivery created in ``[from_, to)`` (to one
        ``host:port`` if given)."""
        body = {"from": from_.isoformat(), "to": to.isoformat()}
        if destination is not None:
            body["destination"] = destination
        answer = await self._transport.call(
            "POST", "/v1/callback-deliveries/recoveries", body=body, retry=False
        )
        return Recovery.from_json(answer)

    async def recovery(self, recovery_id: str) -> Recovery:
        """A recovery's progress."""
        path = _path("/v1/callback-deliveries/recoveries", recovery_id)
        return Recovery.from_json(await self._transport.call("GET", path))

    def stream(
        self,
        *,
        url_prefix: str | None = None,
        model: str | None = None,
        since: datetime | None = None,
        last_event_id: str | None = None,
    ) -> AsyncGenerator[DeliveryMessage, None]:
        """The organization's deliveries as they are made (from ``since``, default now; or
        after the message whose ``cursor`` is ``last_event_id``), each with its exact body
        and headers signed now. It never ends: a dropped stream is resumed where it stopped."""
        found = {
            "url_prefix": url_prefix,
            "model": model,
            "since": None if since is None else since.isoformat(),
        }
        params = {key: value for key, value in found.items() if value is not None}
        return follow(self._transport, params, last_event_id)

    async def message(self, delivery_id: str) -> DeliveryMessage:
        """One stored delivery as ``stream`` gives it, its headers signed now: to replay it."""
        path = _path("/v1/callback-deliveries", delivery_id, "message")
        return DeliveryMessage.from_json(await self._transport.call("GET", path))


class Secrets:
    """``client.secrets``: the organization's callback secrets, and their rotation."""

    def __init__(self, transport: Transport) -> None:
        self._transport = transport

    async def create(self, *, type: str = "hmac", label: str | None = None) -> Secret:
        """A new secret, ``hmac`` (its ``plain_secret`` in this answer only) or
        ``ed25519`` (its ``public_key``); the first of its type becomes current."""
        body: dict[str, Any] = {"type": type}
        if label is not None:
            body["label"] = label
        answer = await self._transport.call("POST", "/v1/callback-secrets", body=body, retry=False)
        return Secret.from_json(answer)

    async def list(self) -> list[Secret]:
        """Every secret, oldest first, disabled ones included."""
        answer = await self._transport.call("GET", "/v1/callback-secrets")
        return [Secret.from_json(item) for item in items_of(answer)]

    async def get(self, secret_id: str) -> Secret:
        path = _path("/v1/callback-secrets", secret_id)
        return Secret.from_json(await self._transport.call("GET", path))

    async def promote(self, secret_id: str) -> Secret:
        """Make the secret current for its type (the previous one stays active)."""
        path = _path("/v1/callback-secrets", secret_id)
        return Secret.from_json(
            await self._transport.call("PATCH", path, body={"is_current": True})
        )

    async def rename(self, secret_id: str, label: str) -> Secret:
        path = _path("/v1/callback-secrets", secret_id)
        return Secret.from_json(await self._transport.call("PATCH", path, body={"label": label}))

    async def disable(self, secret_id: str) -> Secret:
        """Disable the secret for good: it never signs again."""
        path = _path("/v1/callback-secrets", secret_id)
        return Secret.from_json(await self._transport.call("DELETE", path))


class Models:
    """``client.models``."""

    def __init__(self, transport: Transport) -> None:
        self._transport = transport

    async def list(self) -> list[Model]:
        """Every model the server runs."""
        answer = await self._transport.call("GET", "/v1/models")
        return [Model.from_json(item) for item in items_of(answer)]
