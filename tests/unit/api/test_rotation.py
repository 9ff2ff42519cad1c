"""Rotating the callback secret through the API and the dispatcher twin.

Receivers are checked with the independent ``standardwebhooks`` package, which tests the
timestamp against the real time: the clock here starts at the real now and is moved by hand.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from runback.core.delivery import SendResult
from runback.core.signing import runflow_signature
from runback.outbound.sender import OutboundRequest
from runback.store import Store
from runback.testing import ManualClock, respond
from support.api import Api, api_client

RETRY_DUE = 5.0
"""Seconds that make any retry of the harness's fast policy due."""


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime.now(UTC))


def _verifies(request: OutboundRequest, plain: str) -> bool:
    """Whether a receiver holding only ``plain`` accepts the request's webhook-signature."""
    try:
        Webhook(plain).verify(request.body, dict(request.headers))
    except WebhookVerificationError as exc:
        refusal = str(exc)
    else:
        return True
    # Refused for its signature alone: a stale timestamp would make the test meaningless.
    assert refusal == "No matching signature found"
    return False


def _signed_by(request: OutboundRequest, plain: str) -> bool:
    return request.headers["Runflow-Signature"] == runflow_signature(plain, request.body)


async def _create(api: Api, label: str) -> dict[str, Any]:
    response = await api.post("/v1/callback-secrets", {"label": label})
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def _promote(api: Api, secret_id: str) -> None:
    response = await api.client.patch(
        f"/v1/callback-secrets/{secret_id}", json={"is_current": True}, headers=api.auth()
    )
    assert response.status_code == 200, response.text


async def _delete(api: Api, secret_id: str) -> None:
    response = await api.client.delete(f"/v1/callback-secrets/{secret_id}", headers=api.auth())
    assert response.status_code == 200, response.text


PHASES = ("before", "cutover", "promoted", "old deleted")


async def _rotate_to(api: Api, phase: str) -> dict[str, str]:
    """Take the organization through the rotation up to ``phase``, a callback delivered at
    the start; answers the plain secrets by role (``old``, ``new``)."""
    old = await _create(api, "old")
    await api.deliver_one()
    plain = {"old": old["plain_secret"]}
    steps = PHASES.index(phase)
    if steps >= 1:  # a second secret, not current: receivers start accepting it
        new = await _create(api, "new")
        assert new["is_current"] is False
        plain["new"] = new["plain_secret"]
    if steps >= 2:
        await _promote(api, new["id"])
    if steps >= 3:
        await _delete(api, old["id"])
    return plain


@pytest.mark.parametrize(
    ("phase", "holder", "accepted"),
    [
        ("before", "old", True),  # one secret: it signs
        ("cutover", "old", True),  # receivers not yet updated keep working
        ("cutover", "new", True),  # receivers already updated work too
        ("promoted", "old", True),  # the old secret still signs until it is deleted
        ("promoted", "new", True),
        ("old deleted", "old", False),  # a deleted secret never signs again
        ("old deleted", "new", True),
    ],
)
async def test_a_receiver_holding_one_secret_verifies_webhook_signature_while_it_is_active(
    api: Api, phase: str, holder: str, accepted: bool
) -> None:
    plain = await _rotate_to(api, phase)

    request = await api.deliver_one()

    assert _verifies(request, plain[holder]) is accepted


@pytest.mark.parametrize(
    ("phase", "signer"),
    [
        ("before", "old"),  # the first secret is current from its creation
        ("cutover", "old"),  # a new secret does not sign Runflow-Signature until promoted
        ("promoted", "new"),  # promotion moves Runflow-Signature at once
        ("old deleted", "new"),
    ],
)
async def test_runflow_signature_is_made_with_the_current_secret_alone(
    api: Api, phase: str, signer: str
) -> None:
    plain = await _rotate_to(api, phase)

    request = await api.deliver_one()

    assert [role for role, secret in plain.items() if _signed_by(request, secret)] == [signer]


@pytest.mark.parametrize(
    ("phase", "count"),
    [
        ("before", 1),
        ("cutover", 2),  # one v1 entry per active secret
        ("promoted", 2),
        ("old deleted", 1),
    ],
)
async def test_webhook_signature_has_one_entry_per_active_secret(
    api: Api, phase: str, count: int
) -> None:
    await _rotate_to(api, phase)

    request = await api.deliver_one()

    entries = request.headers["webhook-signature"].split(" ")
    assert len(entries) == count
    assert all(entry.startswith("v1,") for entry in entries)


@dataclass
class Script:
    """A receiver twin that answers ``statuses`` in order, then 200."""

    statuses: list[int] = field(default_factory=list)

    def __call__(self, _request: OutboundRequest) -> SendResult:
        return respond(self.statuses.pop(0) if self.statuses else 200)


@pytest.fixture
def script() -> Script:
    return Script()


@pytest.fixture
async def scripted_api(store: Store, clock: ManualClock, script: Script) -> AsyncIterator[Api]:
    """``support.api.api_client`` with the receiver twin answering by ``script``."""
    async with api_client(store, clock, handler=script) as client:
        yield client


async def _attempt_again(api: Api) -> None:
    api.harness.clock.advance(RETRY_DUE)
    assert await api.harness.dispatcher.deliver_due() == 1


async def _callback(api: Api, run_id: str) -> dict[str, Any]:
    [delivery] = (await api.get(f"/v1/runs/{run_id}/callback")).json()
    found: dict[str, Any] = delivery
    return found


async def test_each_attempt_records_the_secret_current_when_it_was_sent(
    scripted_api: Api, script: Script
) -> None:
    api = scripted_api
    script.statuses = [500, 500]  # the first two attempts fail: the rotation happens between
    old = await _create(api, "old")
    run_id = await api.run_id()
    await api.harness.executor.run_until_idle()
    await api.harness.dispatcher.deliver_due()
    new = await _create(api, "new")
    await _promote(api, new["id"])
    await _attempt_again(api)
    await _delete(api, old["id"])
    await _attempt_again(api)

    delivery = await _callback(api, run_id)

    assert delivery["status_code"] == "succeeded"
    signers = [a["signing_secret_id"] for a in delivery["attempts"]]
    assert signers == [old["id"], new["id"], new["id"]]


async def test_the_delivery_records_the_secret_of_its_latest_attempt(
    scripted_api: Api, script: Script
) -> None:
    api = scripted_api
    script.statuses = [500]
    old = await _create(api, "old")
    run_id = await api.run_id()
    await api.harness.executor.run_until_idle()
    await api.harness.dispatcher.deliver_due()
    assert (await _callback(api, run_id))["signing_secret_id"] == old["id"]
    new = await _create(api, "new")
    await _promote(api, new["id"])

    await _attempt_again(api)

    delivery = await _callback(api, run_id)
    assert delivery["signing_secret_id"] == delivery["attempts"][-1]["signing_secret_id"]
    assert delivery["signing_secret_id"] == new["id"]


async def test_every_retry_sends_the_frozen_body_signed_with_the_secrets_active_then(
    scripted_api: Api, script: Script
) -> None:
    api = scripted_api
    script.statuses = [500, 500]
    old = await _create(api, "old")
    await api.run_id()
    await api.harness.executor.run_until_idle()
    await api.harness.dispatcher.deliver_due()
    new = await _create(api, "new")
    await _attempt_again(api)  # cutover: both secrets sign
    await _promote(api, new["id"])
    await _delete(api, old["id"])
    await _attempt_again(api)  # only the new secret signs

    first, second, third = api.harness.sender.requests
    assert first.body == second.body == third.body
    assert (
        first.headers["webhook-id"] == second.headers["webhook-id"] == third.headers["webhook-id"]
    )
    accepted = [
        (_verifies(r, old["plain_secret"]), _verifies(r, new["plain_secret"]))
        for r in (first, second, third)
    ]
    assert accepted == [(True, False), (True, True), (False, True)]
