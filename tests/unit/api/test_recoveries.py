"""Bulk recovery: every failed delivery of a time range queued again, its progress counted."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from runback.core.delivery import SendResult
from runback.outbound.sender import OutboundRequest
from runback.store import Store
from runback.testing import ManualClock, respond
from support.api import Api, api_client

DOWN = "https://down.example/hook"
OTHER = "https://other.example/hook"


class Switch:
    """A receiver twin that fails until it is turned on."""

    def __init__(self) -> None:
        self.up = False

    def __call__(self, request: OutboundRequest) -> SendResult:
        return respond(200 if self.up else 503)


@pytest.fixture
def switch() -> Switch:
    return Switch()


@pytest.fixture
async def api(store: Store, clock: ManualClock, switch: Switch) -> AsyncIterator[Api]:
    async with api_client(store, clock, handler=switch) as client:
        yield client


async def _exhaust(api: Api, url: str, count: int) -> list[str]:
    ids = [await api.run_id({"input": {}, "callback_url": url}) for _ in range(count)]
    await api.harness.executor.run_until_idle()
    for _ in range(5):  # the harness policy gives four attempts
        await api.harness.dispatcher.deliver_due()
        api.harness.clock.advance(5)
    return ids


def _range(api: Api, **extra: str) -> dict[str, str]:
    now = api.harness.clock.now()
    return {
        "from": (now - timedelta(hours=1)).isoformat(),
        "to": (now + timedelta(hours=1)).isoformat(),
        **extra,
    }


async def test_failed_deliveries_are_queued_again_and_their_progress_counted(
    api: Api, switch: Switch
) -> None:
    await _exhaust(api, DOWN, 3)
    switch.up = True

    created = await api.post("/v1/callback-deliveries/recoveries", _range(api))
    assert created.status_code == 201, created.text
    assert (created.json()["queued"], created.json()["pending"]) == (3, 3)

    await api.harness.dispatcher.deliver_due()
    progress = (await api.get(f"/v1/callback-deliveries/recoveries/{created.json()['id']}")).json()
    assert (progress["delivered"], progress["failed"], progress["pending"]) == (3, 0, 0)


async def test_a_recovery_may_be_limited_to_one_destination(api: Api, switch: Switch) -> None:
    await _exhaust(api, DOWN, 2)
    await _exhaust(api, OTHER, 1)

    created = await api.post(
        "/v1/callback-deliveries/recoveries", _range(api, destination="other.example:443")
    )

    assert created.json()["queued"] == 1


async def test_a_run_with_a_delivery_in_flight_is_skipped(api: Api) -> None:
    [run_id] = await _exhaust(api, DOWN, 1)
    await api.post(f"/v1/runs/{run_id}/callback-redeliveries")  # now one is pending

    created = await api.post("/v1/callback-deliveries/recoveries", _range(api))

    assert (created.json()["queued"], created.json()["skipped"]) == (0, 1)


async def test_a_range_that_ends_before_it_starts_is_a_422(api: Api) -> None:
    now = api.harness.clock.now().isoformat()
    response = await api.post("/v1/callback-deliveries/recoveries", {"from": now, "to": now})
    assert (response.status_code, response.json()["errors"][0]["field"]) == (422, "to")


async def test_an_instant_with_no_utc_date_is_a_422_not_a_500(api: Api) -> None:
    body = {"from": "0001-01-01T00:00:00+01:00", "to": "2020-01-01T00:00:00Z"}
    response = await api.post("/v1/callback-deliveries/recoveries", body)
    assert (response.status_code, response.json()["errors"][0]["field"]) == (422, "from")


async def test_another_organizations_recovery_is_a_404(api: Api) -> None:
    created = await api.post("/v1/callback-deliveries/recoveries", _range(api))
    other = await api.other_organization_key()

    response = await api.get(
        f"/v1/callback-deliveries/recoveries/{created.json()['id']}", key=other
    )

    assert (response.status_code, response.json()["code"]) == (404, "RECOVERY_NOT_FOUND")
