"""What ``runback listen`` follows, against a real ``runback serve``: the organization's
deliveries as they are made, filtered, each with its exact body and headers signed now; one
stored delivery the same way, to replay it."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from runback.core.verification import Verifier
from support.process import ServeProcess
from support.waiting import wait_for


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    with ServeProcess(tmp_path / "data") as server:
        await wait_for(lambda: "-d '{" in server.log.read_text(), what="the whole banner")
        banner = server.log.read_text()
        [key] = re.findall(r"API key:\s+(rb_\S+)", banner)
        [secret] = re.findall(r"signing secret:\s+(whsec_\S+)", banner)
        headers = {"Authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=30) as client:
            yield client, secret


async def _first_message(response: httpx.Response) -> dict[str, Any]:
    fields: dict[str, str] = {}
    async for line in response.aiter_lines():
        if line and not line.startswith(":"):
            name, _, value = line.partition(": ")
            fields[name] = value
        elif not line and "event" in fields:
            assert fields["event"] == "delivery"
            message: dict[str, Any] = orjson.loads(fields["data"])
            message["id"] = fields["id"]
            return message
    raise AssertionError("the stream ended")


@pytest.mark.timeout(60)
async def test_listen_follows_new_deliveries_signed_now(
    served: tuple[httpx.AsyncClient, str],
) -> None:
    client, secret = served
    wanted = "http://127.0.0.1:9/listened"
    params = {"url_prefix": wanted}
    async with client.stream("GET", "/v1/callback-deliveries/stream", params=params) as stream:
        assert stream.status_code == 200
        for url in ("http://127.0.0.1:9/elsewhere", f"{wanted}?token=a"):  # one passes
            made = await client.post(
                "/v1/models/runback/echo/runs", json={"input": {"to": url}, "callback_url": url}
            )
            assert made.status_code == 201, made.text
        message = await _first_message(stream)

    body = message["body"].encode()
    assert orjson.loads(body)["output"] == {"to": f"{wanted}?token=a"}
    assert message["delivery"]["callback_url"] == f"{wanted}?token=a"
    verified = Verifier([secret]).verify(body, message["headers"])
    assert verified.webhook_id == message["delivery"]["webhook_id"]

    replayed = await client.get(f"/v1/callback-deliveries/{message['delivery']['id']}/message")
    assert replayed.status_code == 200
    assert replayed.json()["body"] == message["body"]
    Verifier([secret]).verify(body, replayed.json()["headers"])
    missing = await client.get("/v1/callback-deliveries/not-an-id/message")
    assert missing.json()["code"] == "DELIVERY_NOT_FOUND"
