"""Output files in an S3-compatible bucket (moto's server on loopback), served either by the
bucket's own presigned URLs or through runback's ``/files`` route."""

from __future__ import annotations

import hashlib
import io
from datetime import UTC, datetime
from typing import Any

import aiohttp
import orjson
from PIL import Image

from runback.store import Store
from runback.testing import ManualClock
from support.api import api_client
from support.harness import Harness, make_harness
from support.s3 import S3Server


async def _thumbnail_entry(h: Harness) -> dict[str, Any]:
    await h.submit(model="runback/thumbnail", input={"width": 40, "height": 30})
    await h.executor.run_until_idle()
    await h.dispatcher.deliver_due()
    entry: dict[str, Any] = orjson.loads(h.sender.requests[0].body)["output"]["outputs"][0]
    return entry


async def test_a_presigned_bucket_url_downloads_the_thumbnail(
    store: Store, s3_server: S3Server
) -> None:
    # The bucket signs with the real time: the harness clock must agree.
    clock = ManualClock(datetime.now(UTC))
    bucket = s3_server.create_bucket("presigned-outputs")
    h = await make_harness(store, clock, blobs=bucket.blob_store(presign=True))

    entry = await _thumbnail_entry(h)

    assert entry["url"].startswith(f"{s3_server.endpoint}/presigned-outputs/runs/")
    assert "X-Amz-Expires" in entry["url"]
    async with aiohttp.ClientSession() as http, http.get(entry["url"]) as response:
        assert response.status == 200
        body = await response.read()
    assert hashlib.sha256(body).hexdigest() == entry["sha256"]
    assert Image.open(io.BytesIO(body)).size == (40, 30)


async def test_without_presigning_files_in_the_bucket_are_served_at_files(
    store: Store, clock: ManualClock, s3_server: S3Server
) -> None:
    bucket = s3_server.create_bucket("served-outputs")
    async with api_client(store, clock, blobs=bucket.blob_store()) as api:
        run_id = await api.run_id({"input": {"width": 8, "height": 8}}, model="runback/thumbnail")
        await api.harness.executor.run_until_idle()
        [entry] = (await api.get(f"/v1/runs/{run_id}")).json()["output"]["outputs"]

        download = await api.client.get(entry["url"])

    assert entry["url"].startswith("http://runback.test/files/runs/")
    assert download.status_code == 200
    assert hashlib.sha256(download.content).hexdigest() == entry["sha256"]
