"""``runback serve`` as a real process with a real receiver on loopback."""

from __future__ import annotations

import asyncio
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
from aiohttp import web
from standardwebhooks.webhooks import Webhook

from runback.core.signing import runflow_signature
from support.process import ServeProcess, cli
from support.receivers import LoopbackReceiver, answer
from support.waiting import eventually, wait_for


async def _submit(
    client: httpx.AsyncClient, body: dict[str, Any], model: str = "runback/echo"
) -> str:
    response = await client.post(f"/v1/models/{model}/runs", json=body)
    assert response.status_code == 201, response.text
    run_id: str = response.json()["id"]
    return run_id


async def _deliveries(client: httpx.AsyncClient, run_id: str) -> list[dict[str, Any]]:
    response = await client.get(f"/v1/runs/{run_id}/callback")
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()
    return found


async def test_a_callback_arrives_signed_both_ways_with_the_stored_bytes(
    client: httpx.AsyncClient,
) -> None:
    secret = (await client.post("/v1/callback-secrets", json={"label": "prod"})).json()
    plain = secret["plain_secret"]
    async with LoopbackReceiver(answer(200)) as receiver:
        run_id = await _submit(
            client,
            {
                "input": {"prompt": "ünïcode ✓"},
                "callback_url": receiver.url_for("/hook?token=a%2Fb&x=%7E"),
                "metadata": {"z": 1, "a": [True, None]},
            },
        )
        await wait_for(lambda: len(receiver.requests) == 1, timeout=15, what="the callback")

        async def recorded_as_succeeded() -> bool:
            [delivery] = await _deliveries(client, run_id)
            return bool(delivery["status_code"] == "succeeded")

        await eventually(recorded_as_succeeded, what="the 200 is recorded")

    [request] = receiver.requests
    assert request.raw_path == "/hook?token=a%2Fb&x=%7E"
    assert request.headers["Runflow-Signature"] == runflow_signature(plain, request.body)
    assert Webhook(plain).verify(request.body, dict(request.headers))["run_id"] == run_id
    payload = orjson.loads(request.body)
    assert list(payload) == [
        "event", "run_id", "status", "output", "duration_ms", "created_at", "completed_at",
        "metadata",
    ]  # fmt: skip
    assert payload["output"] == {"prompt": "ünïcode ✓"}
    assert payload["metadata"] == {"z": 1, "a": [True, None]}
    for field in ("created_at", "completed_at"):
        assert payload[field].endswith("+00:00")
        datetime.fromisoformat(payload[field])
    [delivery] = await _deliveries(client, run_id)
    assert delivery["payload_bytes"].encode() == request.body
    assert delivery["signing_secret_id"] == secret["id"]


async def test_every_callback_arrives_after_a_sigkill_and_a_restart(
    server: ServeProcess, client: httpx.AsyncClient
) -> None:
    healthy = asyncio.Event()
    accepted: set[str] = set()

    async def down_then_up(request: web.Request) -> web.StreamResponse:
        if not healthy.is_set():
            return web.Response(status=503)
        accepted.add(orjson.loads(await request.read())["run_id"])
        return web.Response(status=200)

    async with LoopbackReceiver(down_then_up) as receiver:
        url = receiver.url_for("/hook")
        quick = [await _submit(client, {"input": {"n": n}, "callback_url": url}) for n in range(15)]
        slow = [
            await _submit(client, {"input": {"seconds": 1}, "callback_url": url}, "runback/sleep")
            for _ in range(10)
        ]
        # Callbacks have been refused (retries pending) and sleeps are running when it dies.
        await wait_for(lambda: len(receiver.requests) >= 5, timeout=15, what="first attempts")
        server.kill()

        healthy.set()
        client.base_url = httpx.URL(server.start().url)  # a new process, a new port
        expected = set(quick + slow)
        await wait_for(lambda: accepted >= expected, timeout=60, what="every callback accepted")

    for run_id in expected:
        run = (await client.get(f"/v1/runs/{run_id}")).json()
        assert run["status_code"] == "succeeded", run


def test_a_second_server_on_the_same_data_dir_refuses_to_start(
    server: ServeProcess, data_dir: Path
) -> None:
    second = cli("serve", "--port", "0", "--data-dir", str(data_dir), timeout=30)

    assert second.returncode == 1
    assert "another 'runback serve' is using" in second.stderr
    assert "Traceback" not in second.stderr


def test_keys_create_prints_only_a_key_that_works(data_dir: Path, key: str) -> None:
    another = cli("keys", "create", "--data-dir", str(data_dir))

    assert another.returncode == 0
    assert another.stdout.count("\n") == 1
    assert another.stdout.startswith("rb_")
    assert another.stdout.strip() != key


async def test_the_first_start_shows_a_key_and_a_secret_that_signs_the_first_callback(
    tmp_path: Path,
) -> None:
    with ServeProcess(tmp_path / "fresh") as server:
        # The banner follows the line the start waits for.
        await wait_for(lambda: "-d '{" in server.log.read_text(), what="the whole banner")
        banner = server.log.read_text()
        [key] = re.findall(r"API key:\s+(rb_\S+)", banner)
        [secret] = re.findall(r"signing secret:\s+(whsec_\S+)", banner)
        async with (
            LoopbackReceiver(answer(200)) as receiver,
            httpx.AsyncClient(
                base_url=server.url, headers={"Authorization": f"Bearer {key}"}
            ) as client,
        ):
            await _submit(client, {"input": {}, "callback_url": receiver.url_for("/hook")})
            await wait_for(lambda: len(receiver.requests) == 1, timeout=15, what="the callback")

    [request] = receiver.requests
    assert request.headers["Runflow-Signature"] == runflow_signature(secret, request.body)
    Webhook(secret).verify(request.body, dict(request.headers))
    assert banner.count(secret) == 1  # shown once, not logged again
