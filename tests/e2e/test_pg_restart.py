"""PostgreSQL restarted under a load of submissions and deliveries, on a private cluster:
the API and the worker recover by themselves, every accepted run is delivered, and a
request that fails meanwhile gets a ``503`` in the envelope (safe to retry with its key)."""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import orjson
import pytest
from aiohttp import web

from support.postgres_cluster import PrivatePostgres
from support.process import ServeProcess, cli
from support.receivers import LoopbackReceiver
from support.s3 import free_port
from support.waiting import wait_for

RUNS = int(os.environ.get("RUNBACK_RESTART_RUNS", "300"))


@pytest.fixture
def postgres() -> Iterator[PrivatePostgres]:
    with PrivatePostgres() as server:
        yield server


async def test_a_postgresql_restart_under_load_loses_nothing(
    tmp_path: Path, postgres: PrivatePostgres
) -> None:
    api_port = free_port()
    env = {
        "RUNBACK_DATABASE_URL": postgres.url,
        "RUNBACK_PUBLIC_URL": f"http://127.0.0.1:{api_port}",
        "RUNBACK_FILES_SHARED": "true",
        "RUNBACK_CALLBACK_ALLOW": "127.0.0.0/8",
        "RUNBACK_ATTEMPT_TIMEOUT": "2",
        "RUNBACK_LEASE_SECONDS": "7",
    }
    data = tmp_path / "shared"
    assert cli("migrate", env=env).returncode == 0
    key = cli("keys", "create", "--data-dir", str(data), env=env).stdout.strip()
    seen: Counter[str] = Counter()

    async def count(request: web.Request) -> web.StreamResponse:
        seen[orjson.loads(await request.read())["run_id"]] += 1
        return web.Response(status=200)

    answers: Counter[int] = Counter()
    with ExitStack() as stack:
        api = ServeProcess(data, command="api", args=(), env=env, port=api_port, name="api")
        stack.enter_context(api)
        stack.enter_context(ServeProcess(data, command="worker", args=(), env=env, name="w"))
        async with (
            LoopbackReceiver(count) as receiver,
            httpx.AsyncClient(
                base_url=api.url, headers={"Authorization": f"Bearer {key}"}, timeout=30
            ) as client,
        ):
            acknowledged: list[str] = []
            gate = asyncio.Semaphore(8)

            async def submit(n: int) -> None:
                body = {"input": {"n": n}, "callback_url": receiver.url_for("/hook")}
                async with gate:
                    for _ in range(200):
                        try:
                            response = await client.post(
                                "/v1/models/runback/echo/runs",
                                json=body,
                                headers={"Idempotency-Key": f"k{n}"},
                            )
                        except httpx.TransportError:
                            await asyncio.sleep(0.05)  # a pause between retries, not a wait
                            continue
                        answers[response.status_code] += 1
                        if response.status_code == 201:
                            acknowledged.append(response.json()["id"])
                            return
                        assert response.status_code == 503, response.text
                        assert response.json()["code"] == "SERVICE_UNAVAILABLE"
                        await asyncio.sleep(0.05)
                    raise AssertionError(f"run {n} was never acknowledged")

            load = asyncio.gather(*(submit(n) for n in range(RUNS)))
            await wait_for(lambda: len(acknowledged) >= RUNS // 3, timeout=60, what="a third")
            await asyncio.to_thread(postgres.restart)
            await load
            await wait_for(
                lambda: set(seen) >= set(acknowledged), timeout=120, what="every callback"
            )

    assert len(set(acknowledged)) == RUNS
    assert set(answers) <= {201, 503}  # never a 500
