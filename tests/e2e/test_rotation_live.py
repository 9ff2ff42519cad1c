"""Rotating the callback secret against a real ``runback serve``, with real receivers that each
hold one secret and verify with the independent ``standardwebhooks`` package."""

from __future__ import annotations

from typing import Any

import httpx
from aiohttp import web
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from support.receivers import Handler, LoopbackReceiver
from support.waiting import eventually

DEADLINE = 20.0
"""Seconds any one callback may take to be recorded."""


def verifying(secret: str) -> Handler:
    """A receiver holding only ``secret``: 200 when webhook-signature verifies, else 401."""
    webhook = Webhook(secret)

    async def handle(request: web.Request) -> web.StreamResponse:
        try:
            webhook.verify(await request.read(), dict(request.headers))
        except WebhookVerificationError as exc:
            return web.Response(status=401, text=str(exc))
        return web.Response(status=200)

    return handle


async def _secret(client: httpx.AsyncClient, label: str) -> dict[str, Any]:
    response = await client.post("/v1/callback-secrets", json={"label": label})
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def _submit(client: httpx.AsyncClient, receiver: LoopbackReceiver) -> str:
    body = {"input": {"n": 1}, "callback_url": receiver.url_for("/hook")}
    response = await client.post("/v1/models/runback/echo/runs", json=body)
    assert response.status_code == 201, response.text
    run_id: str = response.json()["id"]
    return run_id


async def _first_attempt(client: httpx.AsyncClient, run_id: str) -> dict[str, Any]:
    """The first attempt of the run's callback, once recorded."""
    found: list[dict[str, Any]] = []

    async def first_attempt_recorded() -> bool:
        response = await client.get(f"/v1/runs/{run_id}/callback")
        assert response.status_code == 200, response.text
        deliveries = response.json()
        if deliveries and deliveries[0]["attempts"]:
            found.append(deliveries[0]["attempts"][0])
        return bool(found)

    await eventually(first_attempt_recorded, DEADLINE, what=f"run {run_id}'s first attempt")
    return found[0]


async def _answers(
    client: httpx.AsyncClient, receivers: dict[str, LoopbackReceiver]
) -> dict[str, tuple[int, str]]:
    """One run per receiver; each receiver's status and body on its callback's first attempt."""
    runs = {role: await _submit(client, receiver) for role, receiver in receivers.items()}
    answers: dict[str, tuple[int, str]] = {}
    for role, run_id in runs.items():
        attempt = await _first_attempt(client, run_id)
        answers[role] = (attempt["status_code"], attempt["response_body"] or "")
    return answers


async def _promote(client: httpx.AsyncClient, secret_id: str) -> None:
    response = await client.patch(f"/v1/callback-secrets/{secret_id}", json={"is_current": True})
    assert response.status_code == 200, response.text


ACCEPTED = (200, "")
REFUSED = (401, "No matching signature found")  # the signature, not a stale timestamp


async def test_during_the_cutover_receivers_holding_either_secret_accept_callbacks(
    client: httpx.AsyncClient,
) -> None:
    old = await _secret(client, "old")
    new = await _secret(client, "new")
    async with (
        LoopbackReceiver(verifying(old["plain_secret"])) as holds_old,
        LoopbackReceiver(verifying(new["plain_secret"])) as holds_new,
    ):
        receivers = {"old": holds_old, "new": holds_new}
        before_promotion = await _answers(client, receivers)
        await _promote(client, new["id"])
        after_promotion = await _answers(client, receivers)

    assert before_promotion == {"old": ACCEPTED, "new": ACCEPTED}
    assert after_promotion == {"old": ACCEPTED, "new": ACCEPTED}


async def test_once_the_old_secret_is_deleted_its_receiver_refuses_and_the_new_one_accepts(
    client: httpx.AsyncClient,
) -> None:
    old = await _secret(client, "old")
    new = await _secret(client, "new")
    await _promote(client, new["id"])
    async with (
        LoopbackReceiver(verifying(old["plain_secret"])) as holds_old,
        LoopbackReceiver(verifying(new["plain_secret"])) as holds_new,
    ):
        receivers = {"old": holds_old, "new": holds_new}
        before_deletion = await _answers(client, receivers)
        deleted = await client.delete(f"/v1/callback-secrets/{old['id']}")
        assert deleted.status_code == 200, deleted.text
        after_deletion = await _answers(client, receivers)

    assert before_deletion == {"old": ACCEPTED, "new": ACCEPTED}
    assert after_deletion == {"old": REFUSED, "new": ACCEPTED}
