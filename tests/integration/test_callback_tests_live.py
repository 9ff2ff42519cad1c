"""``POST /v1/callback-tests`` against real receivers on loopback, through the real sender.

Good, failing, slow, redirecting and refused receivers; the ping verifies with the
organization's secret as a callback does, and nothing is recorded as a delivery.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace

import httpx
import pytest
from aiohttp import web

from runback.core.signing import new_callback_secret
from runback.core.urlpolicy import UrlPolicy
from runback.outbound.sender import AiohttpSender
from runback.provider.api.app import create_app
from runback.receiver import verify
from runback.store import Store
from runback.testing import ManualClock
from support.harness import Harness, make_harness
from support.receivers import LoopbackReceiver, answer, block_until
from support.waiting import wait_for

LOOPBACK = ("127.0.0.0/8",)


@asynccontextmanager
async def _api(
    store: Store, clock: ManualClock, *, allow: tuple[str, ...] = LOOPBACK, wait: float = 5.0
) -> AsyncIterator[tuple[httpx.AsyncClient, Harness]]:
    """The API app over the real sender, with its key's authorization set."""
    harness = await make_harness(store, clock, callback_allow=allow)
    key = await store.accounts.create_api_key([harness.organization_id], now=clock.now())
    await store.secrets.create(
        new_callback_secret(harness.organization_id, label=None, now=clock.now())
    )
    policy = UrlPolicy.from_allow_list(allow)
    async with AiohttpSender(url_policy=policy) as sender:
        deps = replace(harness.runtime.api, sender=sender, url_policy=policy, ping_timeout=wait)
        transport = httpx.ASGITransport(app=create_app(deps))
        async with httpx.AsyncClient(
            transport=transport,
            base_url="http://runback.test",
            headers={"Authorization": f"Bearer {key}"},
        ) as client:
            yield client, harness


async def _secrets(harness: Harness) -> list[str]:
    found = await harness.store.secrets.signing([harness.organization_id])
    return [s.secret for s in found[harness.organization_id]]


async def test_a_good_receiver_gets_a_ping_that_verifies_with_the_organizations_secret(
    store: Store, clock: ManualClock
) -> None:
    async with (
        LoopbackReceiver(answer(200, "thanks")) as receiver,
        _api(store, clock) as (client, harness),
    ):
        response = await client.post("/v1/callback-tests", json={"url": receiver.url_for("/hook")})
        secrets = await _secrets(harness)

    assert response.status_code == 200, response.text
    found = response.json()
    [received] = receiver.requests
    assert found["ok"] is True
    assert found["status_code"] == 200
    assert found["failure"] is None
    assert found["response_excerpt"] == "thanks"
    assert found["latency_ms"] >= 0
    verified = verify(received.body, received.headers.items(), secrets, now=clock.now())
    assert verified.webhook_id == found["request"]["webhook_id"]
    body = json.loads(received.body)
    assert body["event"] == "test.ping"
    assert body["test_id"] == found["id"]
    assert body["organization_id"] == str(harness.organization_id)
    assert received.body.decode() == found["request"]["body"]
    for name, value in found["request"]["headers"].items():
        assert received.headers[name] == value
    assert not any(s in response.text for s in secrets)  # signatures shown, secrets never


async def test_a_failing_receiver_is_http_5xx_with_its_answer(
    store: Store, clock: ManualClock
) -> None:
    async with (
        LoopbackReceiver(answer(500, "boom")) as receiver,
        _api(store, clock) as (client, _),
    ):
        response = await client.post("/v1/callback-tests", json={"url": receiver.url_for("/hook")})

    assert response.status_code == 200
    found = response.json()
    assert (found["ok"], found["status_code"], found["failure"]) == (False, 500, "http_5xx")
    assert found["response_excerpt"] == "boom"
    assert found["failure_detail"] == "receiver answered HTTP 500"


async def test_a_slow_receiver_is_a_timeout_within_the_pings_bound(
    store: Store, clock: ManualClock
) -> None:
    release = asyncio.Event()
    async with (
        LoopbackReceiver(block_until(release), shutdown_timeout=0.1) as receiver,
        _api(store, clock, wait=0.3) as (client, _),
    ):
        response = await client.post("/v1/callback-tests", json={"url": receiver.url_for("/hook")})
        release.set()

    found = response.json()
    assert (found["ok"], found["status_code"], found["failure"]) == (False, None, "timeout")
    assert 250 <= found["latency_ms"] < 5000
    assert len(receiver.requests) == 1


async def test_a_redirect_is_not_followed(store: Store, clock: ManualClock) -> None:
    async with LoopbackReceiver() as target:
        moved = answer(302, headers={"Location": target.url_for("/new")})
        async with LoopbackReceiver(moved) as receiver, _api(store, clock) as (client, _):
            response = await client.post(
                "/v1/callback-tests", json={"url": receiver.url_for("/old")}
            )

    found = response.json()
    assert (found["ok"], found["status_code"], found["failure"]) == (False, 302, "redirect")
    assert target.requests == []


async def test_a_loopback_url_without_the_allow_list_is_refused_naming_url(
    store: Store, clock: ManualClock
) -> None:
    async with LoopbackReceiver() as receiver, _api(store, clock, allow=()) as (client, _):
        response = await client.post("/v1/callback-tests", json={"url": receiver.url_for("/hook")})

    assert response.status_code == 422
    assert response.json()["code"] == "VALIDATION_ERROR"
    assert [e["field"] for e in response.json()["errors"]] == ["url"]
    assert receiver.requests == []


async def test_nothing_listening_is_a_connection_error(store: Store, clock: ManualClock) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    async with _api(store, clock) as (client, _):
        response = await client.post(
            "/v1/callback-tests", json={"url": f"http://127.0.0.1:{port}/"}
        )

    found = response.json()
    assert (found["ok"], found["status_code"], found["failure"]) == (
        False,
        None,
        "connection_error",
    )


async def test_a_long_answer_is_cut_and_no_delivery_is_recorded(
    store: Store, clock: ManualClock
) -> None:
    async def long(_request: web.Request) -> web.StreamResponse:
        return web.Response(status=404, text="x" * 5000)

    async with LoopbackReceiver(long) as receiver, _api(store, clock) as (client, harness):
        response = await client.post("/v1/callback-tests", json={"url": receiver.url_for("/hook")})
        due = await harness.store.deliveries.next_due_at()

    found = response.json()
    assert (found["failure"], len(found["response_excerpt"])) == ("http_4xx", 1024)
    assert due is None


@pytest.mark.parametrize("body", [{}, {"url": ""}, {"url": "x", "extra": 1}])
async def test_a_body_without_a_url_is_refused(
    store: Store, clock: ManualClock, body: dict[str, object]
) -> None:
    async with _api(store, clock) as (client, _):
        response = await client.post("/v1/callback-tests", json=body)

    assert response.status_code == 422


async def test_an_organization_has_two_pings_in_flight_at_most(
    store: Store, clock: ManualClock
) -> None:
    release = asyncio.Event()
    async with (
        LoopbackReceiver(block_until(release)) as receiver,
        _api(store, clock) as (client, _),
    ):
        url = {"url": receiver.url_for("/hook")}
        held = [asyncio.create_task(client.post("/v1/callback-tests", json=url)) for _ in "ab"]
        await wait_for(lambda: len(receiver.requests) == 2)
        refused = await client.post("/v1/callback-tests", json=url)
        release.set()
        answered = await asyncio.gather(*held)
        again = await client.post("/v1/callback-tests", json=url)

    assert refused.status_code == 429
    assert refused.json()["code"] == "RATE_LIMITED"
    assert [r.json()["ok"] for r in answered] == [True, True]
    assert again.json()["ok"] is True


async def test_a_ping_needs_an_api_key(store: Store, clock: ManualClock) -> None:
    async with _api(store, clock) as (client, _):
        response = await client.post(
            "/v1/callback-tests",
            json={"url": "http://127.0.0.1:9/"},
            headers={"Authorization": "Bearer nope"},
        )

    assert response.status_code == 401
