"""Scaled out on PostgreSQL: one API process and several workers as real subprocesses,
sharing a database schema of their own; a loopback receiver counts every callback."""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
from aiohttp import web

from runback.core.signing import generate_secret, signature_headers
from support.cluster import POSTGRES_URL, Cluster, postgres_schema
from support.process import ServeProcess, cli
from support.receivers import LoopbackReceiver, answer
from support.waiting import eventually, wait_for

RUNS = int(os.environ.get("RUNBACK_SCALE_RUNS", "500"))
WORKER_KILLS = int(os.environ.get("RUNBACK_WORKER_KILLS", "2"))


@pytest.fixture
async def schema() -> AsyncIterator[str]:
    async with postgres_schema() as name:
        yield name


@pytest.fixture
def env(schema: str) -> dict[str, str]:
    return {
        "RUNBACK_DATABASE_URL": POSTGRES_URL,
        "RUNBACK_DATABASE_SCHEMA": schema,
        "RUNBACK_POLL_INTERVAL": "0.2",
        "RUNBACK_CALLBACK_ALLOW": "127.0.0.0/8",
        # Short leases, so a dead worker's work comes back within the test.
        "RUNBACK_ATTEMPT_TIMEOUT": "2",
        "RUNBACK_LEASE_SECONDS": "7",
    }


@pytest.fixture
def cluster(tmp_path: Path, env: dict[str, str]) -> Iterator[Cluster]:
    with ExitStack() as stack:
        yield Cluster(tmp_path, env, stack)


class Counting:
    """A receiver that counts callbacks per run."""

    def __init__(self) -> None:
        self.seen: Counter[str] = Counter()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.seen[orjson.loads(await request.read())["run_id"]] += 1
        return web.Response(status=200)


async def _submit(
    client: httpx.AsyncClient, count: int, url: str, *, model: str = "runback/echo", **input: Any
) -> list[str]:
    """Submit ``count`` runs, each retried with its idempotency key until acknowledged."""
    gate = asyncio.Semaphore(16)

    async def one(n: int) -> str:
        body = {"input": {"n": n, **input}, "callback_url": url}
        async with gate:
            for _ in range(50):
                try:
                    response = await client.post(
                        f"/v1/models/{model}/runs", json=body, headers={"Idempotency-Key": f"k{n}"}
                    )
                except httpx.TransportError:
                    continue
                if response.status_code == 201:
                    run_id: str = response.json()["id"]
                    return run_id
            raise AssertionError(f"run {n} was never acknowledged")

    return list(await asyncio.gather(*(one(n) for n in range(count))))


async def test_three_workers_deliver_every_callback_once(cluster: Cluster) -> None:
    for _ in range(3):
        cluster.add_worker()
    counting = Counting()
    async with LoopbackReceiver(counting.handle) as receiver, cluster.client() as client:
        ids = await _submit(client, RUNS, receiver.url_for("/hook"))
        await wait_for(lambda: set(counting.seen) >= set(ids), timeout=120, what="every callback")

    assert len(set(ids)) == RUNS
    assert set(counting.seen.values()) == {1}  # none twice while the leases held


async def test_a_worker_made_output_downloads_through_the_callbacks_url(
    cluster: Cluster,
) -> None:
    cluster.add_worker()
    async with LoopbackReceiver(answer(200)) as receiver, cluster.client() as client:
        made = await client.post(
            "/v1/models/runback/thumbnail/runs",
            json={"input": {"width": 32, "height": 24}, "callback_url": receiver.url_for("/h")},
        )
        assert made.status_code == 201, made.text
        await wait_for(lambda: len(receiver.requests) == 1, timeout=30, what="the callback")
        [entry] = orjson.loads(receiver.requests[0].body)["output"]["outputs"]
        assert entry["url"].startswith(cluster.api.url)  # the API, not the worker

        download = await client.get(entry["url"])

    assert download.status_code == 200, download.text
    assert hashlib.sha256(download.content).hexdigest() == entry["sha256"]


@pytest.mark.parametrize(
    ("command", "env", "says"),
    [
        ("api", {}, "RUNBACK_PUBLIC_URL"),
        ("worker", {}, "RUNBACK_PUBLIC_URL"),
        ("worker", {"RUNBACK_PUBLIC_URL": "http://api.internal:8000"}, "RUNBACK_FILES_SHARED"),
    ],
)
def test_a_split_process_without_what_it_needs_refuses_to_start_in_one_line(
    tmp_path: Path, env: dict[str, str], command: str, says: str
) -> None:
    result = cli(command, "--port", "0", "--data-dir", str(tmp_path), env=env)

    assert result.returncode == 1
    assert result.stderr.count("\n") == 1, result.stderr
    assert says in result.stderr


async def _held_by(schema: str, pid: int) -> int:
    conn = await asyncpg.connect(POSTGRES_URL, server_settings={"search_path": schema})
    try:
        count: int = await conn.fetchval(
            "SELECT count(*) FROM runs WHERE status = 'running' AND claimed_by LIKE $1", f"%:{pid}"
        )
        return count
    finally:
        await conn.close()


async def test_a_killed_workers_runs_are_finished_by_the_others(
    cluster: Cluster, schema: str
) -> None:
    victim = cluster.add_worker()
    counting = Counting()
    async with LoopbackReceiver(counting.handle) as receiver, cluster.client() as client:
        ids = await _submit(client, 20, receiver.url_for("/hook"), model="runback/sleep", seconds=1)

        async def victim_holds_runs() -> bool:
            return await _held_by(schema, victim.pid) > 0

        await eventually(victim_holds_runs, timeout=20, what="the victim runs some")
        victim.kill()
        cluster.add_worker()
        cluster.add_worker()
        await wait_for(lambda: set(counting.seen) >= set(ids), timeout=90, what="every callback")

        statuses = {(await client.get(f"/v1/runs/{i}")).json()["status_code"] for i in ids}
    assert statuses == {"succeeded"}


async def test_workers_killed_at_random_lose_nothing(cluster: Cluster) -> None:
    # SIGKILLed while runs execute and callbacks are in flight, then started again: every
    # run calls back, and a callback is sent again at most once per kill it lived through.
    workers = [cluster.add_worker(), cluster.add_worker()]
    counting = Counting()
    chooser = random.Random(7)
    async with LoopbackReceiver(counting.handle) as receiver, cluster.client() as client:
        submitting = asyncio.create_task(
            _submit(client, RUNS, receiver.url_for("/hook"), model="runback/sleep", seconds=0.05)
        )
        for _ in range(WORKER_KILLS):
            before = len(counting.seen)
            await wait_for(
                lambda before=before: len(counting.seen) >= before + 10,  # type: ignore[misc]
                timeout=60,
                what="progress between kills",
            )
            victim = chooser.choice(workers)
            victim.kill()
            victim.start()
        ids = await submitting
        await wait_for(lambda: set(counting.seen) >= set(ids), timeout=180, what="every callback")

    assert len(set(ids)) == RUNS
    assert max(counting.seen.values()) <= 1 + WORKER_KILLS


async def test_killing_every_database_connection_loses_nothing(
    cluster: Cluster, schema: str
) -> None:
    cluster.add_worker()
    cluster.add_worker()
    counting = Counting()
    admin = await asyncpg.connect(POSTGRES_URL)
    try:
        async with LoopbackReceiver(counting.handle) as receiver, cluster.client() as client:
            submitting = asyncio.create_task(_submit(client, 200, receiver.url_for("/hook")))
            await wait_for(lambda: len(counting.seen) >= 20, timeout=30, what="work under way")
            killed = await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = $1",
                f"runback:{schema}",
            )
            assert killed > 0
            ids = await submitting
            await wait_for(
                lambda: set(counting.seen) >= set(ids), timeout=90, what="every callback"
            )
    finally:
        await admin.close()
    assert len(set(ids)) == 200


def test_the_worker_answers_readyz(cluster: Cluster) -> None:
    worker = cluster.add_worker()
    assert httpx.get(f"{worker.url}/readyz").json() == {"status": "ready"}


def test_a_worker_stops_cleanly_on_sigterm(cluster: Cluster) -> None:
    worker = cluster.add_worker()
    assert worker.stop() == 0


async def test_two_receivers_sharing_one_inbox_process_duplicates_once(
    tmp_path: Path, env: dict[str, str]
) -> None:
    secret = generate_secret()
    fetched: Counter[str] = Counter()

    async def serve_file(request: web.Request) -> web.StreamResponse:
        fetched[request.path] += 1
        return web.Response(body=b"x" * 100, content_type="image/png")

    with ExitStack() as stack:
        receivers = [
            stack.enter_context(
                ServeProcess(
                    tmp_path / f"inbox{n}", command="receive", args=("--secret", secret), env=env
                )
            )
            for n in range(2)
        ]
        key = cli("keys", "create", "--data-dir", str(tmp_path / "keys"), env=env).stdout.strip()
        async with LoopbackReceiver(serve_file) as files:
            payload = {
                "event": "headshots.completed",
                "headshots_id": "a1b2c3d4-e5f6-7890-abcd-ef1234567890",
                "image_urls": [files.url_for(f"/out{n}.png") for n in range(5)],
            }
            body = orjson.dumps(payload)
            headers = {
                **signature_headers(
                    body=body,
                    msg_id="msg_shared",
                    timestamp=int(time.time()),
                    current=secret,
                    active=[secret],
                ),
                "Content-Type": "application/json",
            }
            async with httpx.AsyncClient(timeout=30) as http:
                answers = await asyncio.gather(
                    *(
                        http.post(
                            f"{receivers[n % 2].url}/webhooks/runflow",
                            content=body,
                            headers=headers,
                        )
                        for n in range(100)
                    )
                )
                assert {a.status_code for a in answers} == {200}
                inbox = {"Authorization": f"Bearer {key}"}

                async def copied() -> bool:
                    [event] = (
                        await http.get(f"{receivers[0].url}/v1/inbox", headers=inbox)
                    ).json()["items"]
                    detail = (
                        await http.get(f"{receivers[1].url}/v1/inbox/{event['id']}", headers=inbox)
                    ).json()
                    return all(c["state"] == "copied" for c in detail["copies"])

                await eventually(copied, timeout=30, what="every output copied once")
    assert sum(not a.json()["duplicate"] for a in answers) == 1
    assert sorted(fetched.values()) == [1] * 5
