"""Thin callbacks end to end: a real server runs a ~1 MB echo, its callback goes out thin to a
loopback receiver, and ``runback receive`` records the whole event."""

from __future__ import annotations

from pathlib import Path

import httpx
import orjson

from runback.core.thin import DEFAULT_MAX_CALLBACK_BYTES, thin_body
from runback.receiver import verify
from support.process import ServeProcess, cli
from support.receivers import LoopbackReceiver, answer
from support.waiting import eventually, wait_for

BIG_INPUT = {"text": "a megabyte of output, " * 48_000}  # about 1 MB echoed back


async def _secret(client: httpx.AsyncClient) -> str:
    created = await client.post("/v1/callback-secrets", json={"label": "thin"})
    assert created.status_code == 201, created.text
    secret: str = created.json()["plain_secret"]
    return secret


async def test_a_megabyte_output_is_sent_thin_and_fetched_whole(client: httpx.AsyncClient) -> None:
    secret = await _secret(client)
    async with LoopbackReceiver(answer(200)) as receiver:
        created = await client.post(
            "/v1/models/runback/echo/runs",
            json={"input": BIG_INPUT, "callback_url": receiver.url_for("/hook")},
        )
        assert created.status_code == 201, created.text
        await wait_for(lambda: len(receiver.requests) == 1, timeout=30, what="the callback")
    [request] = receiver.requests
    thin = orjson.loads(request.body)

    assert len(request.body) <= DEFAULT_MAX_CALLBACK_BYTES
    assert thin["output"] is None
    assert verify(request.body, request.headers.items(), [secret]).scheme == "v1"
    fetched = await client.get(thin["output_url"], headers={"Authorization": ""})
    assert fetched.status_code == 200
    assert fetched.headers["content-type"] == "application/json"
    full = fetched.content
    assert len(full) > 1_000_000
    assert orjson.loads(full)["output"] == BIG_INPUT
    assert thin_body(full, thin["output_url"]) == request.body


async def test_runback_receive_records_the_whole_event_of_a_thin_callback(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    secret = await _secret(client)
    inbox_dir = tmp_path / "inbox"
    inbox_key = cli("keys", "create", "--data-dir", str(inbox_dir)).stdout.strip()
    args = ("--secret", secret, "--callback-allow", "127.0.0.0/8")
    with ServeProcess(inbox_dir, command="receive", args=args) as receiver:
        async with httpx.AsyncClient(
            base_url=receiver.url, headers={"Authorization": f"Bearer {inbox_key}"}, timeout=10
        ) as inbox:
            created = await client.post(
                "/v1/models/runback/echo/runs",
                json={"input": BIG_INPUT, "callback_url": f"{receiver.url}/webhooks/runback"},
            )
            run_id = created.json()["id"]

            async def received() -> bool:
                return bool((await inbox.get("/v1/inbox")).json()["items"])

            await eventually(received, timeout=30, what="the thin callback recorded")
            [event] = (await inbox.get("/v1/inbox")).json()["items"]
            detail = (await inbox.get(f"/v1/inbox/{event['id']}")).json()

    assert (event["run_id"], event["event"], event["status"]) == (
        run_id,
        "run.completed",
        "succeeded",
    )
    [receipt] = detail["receipts"]
    assert orjson.loads(receipt["body"])["output"] == BIG_INPUT
