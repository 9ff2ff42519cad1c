"""``POST /v1/callback-tests`` over the sender's twin: signed as a callback with every active
secret of the caller's organization, and nothing recorded."""

from __future__ import annotations

import json

from runback.receiver import verify
from runback.store import Store
from runback.testing import ManualClock, respond
from support.api import Api, api_client


async def test_a_ping_is_signed_with_every_active_secret_hmac_and_ed25519(api: Api) -> None:
    hmac_secret = (await api.post("/v1/callback-secrets", {})).json()["plain_secret"]
    public_key = (await api.post("/v1/callback-secrets", {"type": "ed25519"})).json()["public_key"]

    response = await api.post("/v1/callback-tests", {"url": "https://receiver.example/hook"})

    assert response.status_code == 200, response.text
    [sent] = api.harness.sender.requests
    now = api.harness.clock.now()
    assert verify(sent.body, sent.headers, [hmac_secret], now=now).scheme == "v1"
    assert verify(sent.body, sent.headers, [public_key], now=now).scheme == "v1a"
    assert "Runflow-Signature" in sent.headers
    assert response.json()["request"]["headers"] == dict(sent.headers)
    assert json.loads(sent.body)["event"] == "test.ping"
    assert sent.timeout == 5.0  # the ping's own bound, not the attempts'


async def test_a_ping_acts_for_the_callers_organization_and_is_not_a_delivery(api: Api) -> None:
    other = await api.other_organization_key()

    mine = (await api.post("/v1/callback-tests", {"url": "https://a.example/"})).json()
    theirs = (await api.post("/v1/callback-tests", {"url": "https://a.example/"}, key=other)).json()

    organizations = {json.loads(r["request"]["body"])["organization_id"] for r in (mine, theirs)}
    assert len(organizations) == 2
    assert mine["id"] != theirs["id"]
    assert mine["request"]["webhook_id"] == "msg_" + mine["id"].replace("-", "")
    assert await api.harness.store.deliveries.next_due_at() is None


async def test_an_unsigned_organization_still_gets_its_ping_unsigned(api: Api) -> None:
    response = await api.post("/v1/callback-tests", {"url": "https://receiver.example/hook"})

    headers = response.json()["request"]["headers"]
    assert "webhook-signature" not in headers
    assert {"webhook-id", "webhook-timestamp", "Content-Type"} <= set(headers)


async def test_an_answer_429_is_http_4xx(store: Store, clock: ManualClock) -> None:
    async with api_client(store, clock, handler=lambda _request: respond(429, "wait")) as api:
        found = (await api.post("/v1/callback-tests", {"url": "https://receiver.example/"})).json()

    assert (found["ok"], found["failure"], found["status_code"]) == (False, "http_4xx", 429)
    assert found["response_excerpt"] == "wait"
