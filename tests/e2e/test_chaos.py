"""Chaos: ``runback serve`` killed (SIGKILL) at random moments while runs keep coming.
Every acknowledged run ends in exactly one terminal state and its callback arrives; the
receiver dedupes on ``webhook-id``. ``make soak`` runs the long version."""

from __future__ import annotations

import asyncio
import os
import random
from collections import Counter
from pathlib import Path

import httpx
import orjson
from aiohttp import web

from support.process import ServeProcess, cli
from support.receivers import LoopbackReceiver
from support.waiting import wait_for

KILLS = int(os.environ.get("RUNBACK_CHAOS_KILLS", "3"))
TERMINAL = {"succeeded", "failed", "canceled", "partial_succeeded"}


class Submitter:
    """Submits runs until stopped, each retried with its idempotency key until a 201."""

    def __init__(self, key: str, hook: str) -> None:
        self.key = key
        self.hook = hook
        self.base_url = ""
        self.acknowledged: set[str] = set()
        self.stopped = asyncio.Event()

    async def run(self) -> None:
        n = 0
        async with httpx.AsyncClient(headers={"Authorization": f"Bearer {self.key}"}) as http:
            while not self.stopped.is_set():
                n += 1
                body = {"input": {"seconds": random.choice([0, 0, 0.2])}, "callback_url": self.hook}
                while not self.stopped.is_set():
                    try:
                        response = await http.post(
                            f"{self.base_url}/v1/models/runback/sleep/runs",
                            json=body,
                            headers={"Idempotency-Key": f"chaos-{n}"},
                            timeout=5,
                        )
                    except httpx.TransportError:
                        await asyncio.sleep(0.05)  # the server is restarting
                        continue
                    if response.status_code == 201:
                        self.acknowledged.add(response.json()["id"])
                        break


async def test_every_acknowledged_run_calls_back_across_random_sigkills(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    key = cli("keys", "create", "--data-dir", str(data_dir)).stdout.strip()
    seen: Counter[str] = Counter()
    runs_called_back: set[str] = set()

    async def receive(request: web.Request) -> web.StreamResponse:
        seen[request.headers["webhook-id"]] += 1
        runs_called_back.add(orjson.loads(await request.read())["run_id"])
        return web.Response()

    async with LoopbackReceiver(receive) as receiver:
        submitter = Submitter(key, receiver.url_for("/hook"))
        with ServeProcess(data_dir) as server:
            submitter.base_url = server.url
            submitting = asyncio.create_task(submitter.run())
            for _ in range(KILLS):
                target = len(submitter.acknowledged) + random.randint(5, 30)

                def reached(target: int = target) -> bool:
                    return len(submitter.acknowledged) >= target

                await wait_for(reached, timeout=30, what="more runs acknowledged")
                server.kill()
                submitter.base_url = server.start().url
            submitter.stopped.set()
            await submitting
            acknowledged = set(submitter.acknowledged)
            await wait_for(lambda: runs_called_back >= acknowledged, timeout=60, what="callbacks")

            async with httpx.AsyncClient(
                base_url=server.url, headers={"Authorization": f"Bearer {key}"}
            ) as http:
                statuses = {
                    (await http.get(f"/v1/runs/{run_id}")).json()["status_code"]
                    for run_id in acknowledged
                }
    assert statuses <= TERMINAL
    assert len(acknowledged) > KILLS * 5
