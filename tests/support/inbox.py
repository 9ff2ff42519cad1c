"""The receiving side in process: the receive app over httpx (no sockets), its copier on a
real aiohttp session (files are fetched from loopback servers) and its handler runner, all
on one manual clock and a fixed random source, over the real store."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import aiohttp
import httpx
import orjson
from fastapi import FastAPI

from runback.blobs import BlobStore
from runback.config import ReceivingConfig
from runback.core.signing import runflow_signature, signature_headers
from runback.core.urlpolicy import UrlPolicy
from runback.receiver.config import ReceiveConfig
from runback.receiver.handlers import HandlerRegistry
from runback.receiving.app import ReceiveDeps, create_receive_app
from runback.receiving.copier import Copier
from runback.receiving.full_bodies import body_fetcher
from runback.receiving.handling import HandlerRunner
from runback.receiving.reconciler import Reconciler
from runback.store import Store
from runback.testing import ManualClock

MAX_BODY_BYTES = 1024 * 1024
MAX_COPY_BYTES = 16 * 1024 * 1024
URL_TTL = timedelta(hours=24)
RECONCILE_AFTER = timedelta(minutes=10)
GIVE_UP_AFTER = timedelta(days=7)
FIXED_RANDOM = 0.5  # jitter in the middle: every retry delay is the schedule's x 1.1


def signed(
    body: bytes,
    secret: str,
    *,
    clock: ManualClock,
    msg_id: str | None = "msg_1",
    standard: bool = True,
    runflow: bool = True,
) -> dict[str, str]:
    """JSON headers signing ``body`` with ``secret``: the Standard Webhooks ``v1`` headers
    (stamped with ``clock``'s time) and/or ``Runflow-Signature``, as runback sends them."""
    headers = {"Content-Type": "application/json"}
    if standard:
        assert msg_id is not None, "the Standard Webhooks headers need a webhook-id"
        stamp = int(clock.now().timestamp())
        headers |= signature_headers(
            body=body, msg_id=msg_id, timestamp=stamp, current=None, active=[secret]
        )
    if runflow:
        headers["Runflow-Signature"] = runflow_signature(secret, body)
    return headers


@dataclass
class Inbox:
    """One receiver: post callbacks to it, run its background work, inspect its inbox."""

    client: httpx.AsyncClient
    store: Store
    clock: ManualClock
    blobs: BlobStore
    key: str
    copier: Copier
    runner: HandlerRunner
    woken: list[bool] = field(default_factory=list)
    reconciler: Reconciler | None = None
    app: FastAPI | None = None
    """The receive app itself, for a test that serves it on a socket (a browser's)."""

    def auth(self, key: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.key}"}

    async def post(
        self,
        source: str,
        body: bytes | dict[str, Any],
        headers: Mapping[str, str] | None = None,
        *,
        params: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """``POST /webhooks/<source>`` with ``body`` (a dict is sent as JSON) as given."""
        content = body if isinstance(body, bytes) else orjson.dumps(body)
        sent = {"Content-Type": "application/json"} if headers is None else dict(headers)
        return await self.client.post(
            f"/webhooks/{source}", content=content, headers=sent, params=params
        )

    async def page(self, **params: str | int) -> dict[str, Any]:
        """One page of ``GET /v1/inbox`` (``items`` and ``next``)."""
        response = await self.client.get("/v1/inbox", params=params, headers=self.auth())
        assert response.status_code == 200, response.text
        found: dict[str, Any] = response.json()
        return found

    async def events(self, **params: str | int) -> list[dict[str, Any]]:
        """The first page's events, newest first."""
        items: list[dict[str, Any]] = (await self.page(**params))["items"]
        return items

    async def event(self, event_id: str) -> dict[str, Any]:
        """``GET /v1/inbox/<id>``: the event with its receipts, copies and handler outcome."""
        response = await self.client.get(f"/v1/inbox/{event_id}", headers=self.auth())
        assert response.status_code == 200, response.text
        found: dict[str, Any] = response.json()
        return found

    async def copies(self, event_id: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = (await self.event(event_id))["copies"]
        return found

    async def stored(self, key: str) -> bytes:
        """The bytes the blob store holds under ``key``."""
        return b"".join([chunk async for chunk in self.blobs.read(key)])


@asynccontextmanager
async def inbox_client(
    store: Store,
    clock: ManualClock,
    *,
    config: ReceiveConfig,
    handlers: HandlerRegistry | None = None,
    blobs: BlobStore | None = None,
) -> AsyncIterator[Inbox]:
    """An ``Inbox`` receiving with ``config``; copies go to ``blobs`` (memory by default) and
    may be fetched from loopback only (``127.0.0.0/8``)."""
    handlers = handlers if handlers is not None else HandlerRegistry()
    blobs = blobs if blobs is not None else BlobStore.memory()
    organization, _ = await store.accounts.ensure_default_organization(now=clock.now())
    key = await store.accounts.create_api_key([organization.id], now=clock.now())
    async with aiohttp.ClientSession() as session:
        copier = Copier(
            store=store,
            blobs=blobs,
            session=session,
            clock=clock,
            random=lambda: FIXED_RANDOM,
            worker_id="test-copier",
            config=ReceivingConfig(
                url_policy=UrlPolicy.from_allow_list(["127.0.0.0/8"]),
                copy_concurrency=8,
                poll_interval=0.05,
                max_copy_bytes=MAX_COPY_BYTES,
                copy_timeout=10.0,
            ),
        )
        runner = HandlerRunner(
            store=store,
            handlers=handlers,
            clock=clock,
            random=lambda: FIXED_RANDOM,
            worker_id="test-runner",
            capacity=4,
            poll_interval=0.05,
        )
        woken: list[bool] = []
        reconciler = Reconciler(
            store=store,
            sources=config,
            handlers=handlers,
            clock=clock,
            random=lambda: FIXED_RANDOM,
            give_up_after=GIVE_UP_AFTER,
            url_ttl=URL_TTL,
            on_recorded=lambda copies, handler: woken.append(True),
            poll_interval=0.05,
        )
        app = create_receive_app(
            ReceiveDeps(
                store=store,
                config=config,
                handlers=handlers,
                clock=clock,
                max_body_bytes=MAX_BODY_BYTES,
                url_ttl=URL_TTL,
                on_received=lambda copies, handler: woken.append(True),
                verifiers={},
                fetch_body=body_fetcher(
                    session, url_policy=UrlPolicy.from_allow_list(["127.0.0.0/8"])
                ),
                reconcile_after=RECONCILE_AFTER,
            )
        )
        transport = httpx.ASGITransport(app=app)
        try:
            async with httpx.AsyncClient(
                transport=transport, base_url="http://receiver.test"
            ) as client:
                yield Inbox(
                    client, store, clock, blobs, key, copier, runner, woken, reconciler, app
                )
        finally:
            await copier.close()
            await runner.close()
            await reconciler.close()
