"""Thin callbacks over an S3-compatible bucket (moto's server on loopback): the full body is
kept in the bucket, served by its own presigned URL or through runback's ``/files``."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

import aiohttp
import orjson

from runback.core.payload import run_callback_body
from runback.store import Store
from runback.testing import ManualClock
from support.api import api_client
from support.harness import make_harness
from support.s3 import S3Server

LIMIT = 4096
BIG = {"text": "é" * 6000}


async def test_a_presigned_bucket_url_serves_the_full_body_as_json(
    store: Store, s3_server: S3Server
) -> None:
    # The bucket signs with the real time: the harness clock must agree.
    clock = ManualClock(datetime.now(UTC))
    bucket = s3_server.create_bucket("presigned-bodies")
    h = await make_harness(
        store, clock, blobs=bucket.blob_store(presign=True), callback_max_bytes=LIMIT
    )
    run = await h.submit(model="runback/echo", input=BIG)
    await h.executor.run_until_idle()
    await h.dispatcher.deliver_due()
    sent = h.sender.requests[0].body
    url = orjson.loads(sent)["output_url"]

    async with aiohttp.ClientSession() as http, http.get(url) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "application/json"
        full = await response.read()

    assert url.startswith(f"{s3_server.endpoint}/presigned-bodies/runs/{run.id}/callbacks/")
    assert full == run_callback_body(await h.run(run.id))
    assert len(sent) <= LIMIT < len(full)


async def test_without_presigning_the_full_body_in_the_bucket_is_served_at_files(
    store: Store, clock: ManualClock, s3_server: S3Server
) -> None:
    bucket = s3_server.create_bucket("served-bodies")
    async with api_client(store, clock, blobs=bucket.blob_store(), callback_max_bytes=LIMIT) as api:
        run_id = await api.run_id({"input": BIG, "callback_url": "https://receiver.example/h"})
        await api.harness.executor.run_until_idle()
        await api.harness.dispatcher.deliver_due()
        url = orjson.loads(api.harness.sender.requests[0].body)["output_url"]

        download = await api.client.get(url)
        run = await api.harness.run(UUID(run_id))

    assert url.startswith("http://runback.test/files/runs/")
    assert download.status_code == 200
    assert download.headers["content-type"] == "application/json"
    assert download.content == run_callback_body(run)
