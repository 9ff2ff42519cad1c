"""Output files end to end: a real server makes a thumbnail, the callback's URL serves it."""

from __future__ import annotations

import hashlib
import io
from typing import Any

import httpx
import orjson
from PIL import Image

from support.process import ServeProcess
from support.receivers import LoopbackReceiver, answer
from support.waiting import wait_for


async def _thumbnail_callback(client: httpx.AsyncClient) -> dict[str, Any]:
    async with LoopbackReceiver(answer(200)) as receiver:
        response = await client.post(
            "/v1/models/runback/thumbnail/runs",
            json={"input": {"width": 64, "height": 48}, "callback_url": receiver.url_for("/h")},
        )
        assert response.status_code == 201, response.text
        await wait_for(lambda: len(receiver.requests) == 1, timeout=30, what="the callback")
    payload: dict[str, Any] = orjson.loads(receiver.requests[0].body)
    return payload


async def test_the_callbacks_url_downloads_the_png_it_describes(client: httpx.AsyncClient) -> None:
    payload = await _thumbnail_callback(client)

    assert payload["status"] == "succeeded", payload
    [entry] = payload["output"]["outputs"]
    download = await client.get(entry["url"])
    assert download.status_code == 200
    assert download.headers["content-type"] == "image/png"
    assert hashlib.sha256(download.content).hexdigest() == entry["sha256"]
    assert len(download.content) == entry["size"]
    assert Image.open(io.BytesIO(download.content)).size == (64, 48)


async def test_a_tampered_url_is_refused_with_a_json_403(client: httpx.AsyncClient) -> None:
    [entry] = (await _thumbnail_callback(client))["output"]["outputs"]
    tampered = entry["url"].replace("expires=", "expires=9")

    refused = await client.get(tampered)

    assert refused.status_code == 403
    assert refused.headers["content-type"] == "application/json"
    assert refused.json()["message"]


async def test_urls_stay_valid_across_a_restart(
    server: ServeProcess, client: httpx.AsyncClient
) -> None:
    [entry] = (await _thumbnail_callback(client))["output"]["outputs"]
    before = await client.get(entry["url"])
    server.stop()
    server.start()
    # The URL names the address the first process served on; ask the new one for the path.
    path = entry["url"].split("/files/", 1)[1]

    async with httpx.AsyncClient(base_url=server.url) as fresh:
        after = await fresh.get(f"/files/{path}")

    assert after.status_code == 200
    assert after.content == before.content
