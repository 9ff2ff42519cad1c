"""Batches at scale, on both databases: items run by several worker processes end with
exactly one callback per batch, never before the batch's last item has ended.

``RUNBACK_SCALE_BATCHES`` batches of 100 items (10 here; 100, so 10,000 items, in ``make
soak``)."""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from aiohttp import web

from support.cluster import Cluster, database_env
from support.receivers import LoopbackReceiver
from support.waiting import wait_for

BATCHES = int(os.environ.get("RUNBACK_SCALE_BATCHES", "10"))
ITEMS = 100
WORKERS = 3


@pytest.fixture(params=["sqlite", "postgresql"])
async def env(request: pytest.FixtureRequest) -> AsyncIterator[dict[str, str]]:
    async with database_env(request.param) as database:
        yield {"RUNBACK_POLL_INTERVAL": "0.2", "RUNBACK_CALLBACK_ALLOW": "127.0.0.0/8", **database}


@pytest.fixture
def cluster(tmp_path: Path, env: dict[str, str]) -> Iterator[Cluster]:
    with ExitStack() as stack:
        cluster = Cluster(tmp_path, env, stack)
        for _ in range(WORKERS):
            cluster.add_worker()
        yield cluster


class Batches:
    """A receiver that keeps every batch callback, as it arrived."""

    def __init__(self) -> None:
        self.arrived: list[dict[str, Any]] = []

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.arrived.append(orjson.loads(await request.read()))
        return web.Response(status=200)


async def _submit(client: httpx.AsyncClient, n: int, url: str) -> str:
    body = {"input": [{"batch": n, "item": i} for i in range(ITEMS)], "callback_url": url}
    for _ in range(20):  # a passing error is retried under the same key
        try:
            response = await client.post(
                "/v1/models/runback/echo/batches", json=body, headers={"Idempotency-Key": f"b{n}"}
            )
        except httpx.TransportError:
            continue
        if response.status_code == 201:
            batch_id: str = response.json()["id"]
            return batch_id
    raise AssertionError(f"batch {n} was never acknowledged")


@pytest.mark.timeout(90 + 6 * BATCHES)
async def test_every_batch_ends_with_exactly_one_callback_after_its_last_item(
    cluster: Cluster,
) -> None:
    batches = Batches()
    async with LoopbackReceiver(batches.handle) as receiver, cluster.client() as client:
        gate = asyncio.Semaphore(8)

        async def submitted(n: int) -> str:
            async with gate:
                return await _submit(client, n, receiver.url_for("/batches"))

        ids = await asyncio.gather(*(submitted(n) for n in range(BATCHES)))
        await wait_for(
            lambda: len(batches.arrived) >= BATCHES,
            timeout=60 + 5 * BATCHES,
            what="every batch callback",
        )
        logs = [(await client.get(f"/v1/batches/{i}/callback")).json() for i in ids]
        items = [await _all_items(client, i) for i in ids]

    assert Counter(body["batch_id"] for body in batches.arrived) == Counter(ids)  # once each
    assert all(len(log) == 1 for log in logs)
    for body, listed in zip(sorted(batches.arrived, key=lambda b: ids.index(b["batch_id"])),
                            items, strict=True):  # fmt: skip
        assert body["event"] == "batch.succeeded"
        assert body["output"]["total"] == body["output"]["succeeded"] == ITEMS
        assert [i["sequence_index"] for i in body["output"]["items"]] == list(range(ITEMS))
        ended = datetime.fromisoformat(body["completed_at"])
        assert all(datetime.fromisoformat(i["completed_at"]) <= ended for i in listed)


async def _all_items(client: httpx.AsyncClient, batch_id: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params: dict[str, str | int] = {"limit": 40, **({"cursor": cursor} if cursor else {})}
        page = (await client.get(f"/v1/batches/{batch_id}/items", params=params)).json()
        found += page["items"]
        cursor = page["next"]
        if cursor is None:
            return found
