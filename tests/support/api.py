"""An in-process API client (no sockets) over the real SQLite store and the twins."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any

import httpx

from runback.blobs import BlobStore
from runback.core.thin import DEFAULT_MAX_CALLBACK_BYTES
from runback.models import register_builtins
from runback.outbound.sender import OutboundRequest
from runback.provider.api.app import create_app
from runback.provider.registry import ModelRegistry
from runback.store import Store
from runback.testing import Handler, ManualClock, respond
from support.harness import Harness, make_harness

BODY_LIMIT = 64 * 1024


@dataclass
class Api:
    client: httpx.AsyncClient
    harness: Harness
    key: str
    woken: list[bool]

    def auth(self, key: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.key}"}

    async def submit(
        self,
        body: dict[str, Any],
        model: str = "runback/echo",
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        return await self.client.post(
            f"/v1/models/{model}/runs", json=body, headers={**self.auth(), **(headers or {})}
        )

    async def run_id(self, body: dict[str, Any] | None = None, model: str = "runback/echo") -> str:
        """Submit a run (echo, with a callback URL by default) and answer its id."""
        response = await self.submit(
            body or {"input": {"n": 1}, "callback_url": "https://receiver.example/hook"}, model
        )
        assert response.status_code == 201, response.text
        run_id: str = response.json()["id"]
        return run_id

    async def get(self, path: str, key: str | None = None) -> httpx.Response:
        return await self.client.get(path, headers=self.auth(key))

    async def post(
        self, path: str, body: dict[str, Any] | None = None, key: str | None = None
    ) -> httpx.Response:
        return await self.client.post(path, json=body, headers=self.auth(key))

    async def deliver_one(self) -> OutboundRequest:
        """Run one echo run with a callback to its end; answer the request its attempt sent."""
        sent = len(self.harness.sender.requests)
        await self.run_id()
        await self.harness.executor.run_until_idle()
        await self.harness.dispatcher.deliver_due()
        [request] = self.harness.sender.requests[sent:]
        return request

    async def other_organization_key(self, name: str = "other") -> str:
        """A key of a new organization that shares nothing with this one."""
        store, clock = self.harness.store, self.harness.clock
        other = await store.accounts.create_organization(name, now=clock.now())
        return await store.accounts.create_api_key([other.id], now=clock.now())


@asynccontextmanager
async def api_client(
    store: Store,
    clock: ManualClock,
    *,
    registry: ModelRegistry | None = None,
    handler: Handler | None = None,
    blobs: BlobStore | None = None,
    callback_max_bytes: int = DEFAULT_MAX_CALLBACK_BYTES,
) -> AsyncIterator[Api]:
    """An ``Api`` over a fresh harness; its key belongs to the default organization.
    ``handler`` answers the callbacks (200 by default)."""
    registry = registry or register_builtins(ModelRegistry())
    harness = await make_harness(
        store,
        clock,
        registry=registry,
        handler=handler or (lambda _request: respond(200)),
        callback_allow=("127.0.0.0/8",),
        blobs=blobs,
        callback_max_bytes=callback_max_bytes,
    )
    key = await store.accounts.create_api_key([harness.organization_id], now=clock.now())
    woken: list[bool] = []
    app = create_app(replace(harness.runtime.api, on_run_created=lambda: woken.append(True)))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://runback.test") as client:
        yield Api(client, harness, key, woken)
