"""``POST /v1/runs/{id}/callback-redeliveries`` and ``GET /v1/callback-deliveries/{id}``."""

from __future__ import annotations

import asyncio

import pytest

from support.api import Api

HOOK = "https://receiver.example/hook"


async def _delivered(api: Api) -> str:
    """A run whose automatic callback has been delivered."""
    run_id = await api.run_id({"input": {"x": 1}, "callback_url": HOOK})
    await api.harness.executor.run_until_idle()
    await api.harness.dispatcher.deliver_due()
    return run_id


async def test_a_redelivery_is_a_new_manual_delivery_sent_like_the_first(api: Api) -> None:
    run_id = await _delivered(api)

    response = await api.post(f"/v1/runs/{run_id}/callback-redeliveries")

    assert response.status_code == 201
    redelivery = response.json()
    assert (redelivery["is_automatic"], redelivery["status_code"]) == (False, "pending")
    assert redelivery["attempts"] == []
    await api.harness.dispatcher.deliver_due()
    first, second = api.harness.sender.requests
    assert second.body == first.body  # the run has not changed since
    assert second.headers["webhook-id"] == first.headers["webhook-id"]
    assert second.headers["Runflow-Request-Id"] == redelivery["id"]
    deliveries = (await api.get(f"/v1/runs/{run_id}/callback")).json()
    assert [d["status_code"] for d in deliveries] == ["succeeded", "succeeded"]


async def test_one_delivery_is_shown_with_its_attempts(api: Api) -> None:
    run_id = await _delivered(api)
    [delivery] = (await api.get(f"/v1/runs/{run_id}/callback")).json()

    response = await api.get(f"/v1/callback-deliveries/{delivery['id']}")

    assert (response.status_code, response.json()) == (200, delivery)


@pytest.mark.parametrize("delivery_id", ["01a217ca-0000-7000-8000-000000000000", "nope"])
async def test_an_unknown_delivery_is_a_404(api: Api, delivery_id: str) -> None:
    response = await api.get(f"/v1/callback-deliveries/{delivery_id}")
    assert (response.status_code, response.json()["code"]) == (404, "DELIVERY_NOT_FOUND")


async def test_a_run_that_has_not_ended_cannot_be_redelivered(api: Api) -> None:
    run_id = await api.run_id()

    response = await api.post(f"/v1/runs/{run_id}/callback-redeliveries")

    assert (response.status_code, response.json()["code"]) == (409, "RUN_NOT_TERMINAL")


async def test_a_run_without_callback_url_cannot_be_redelivered(api: Api) -> None:
    run_id = await api.run_id({"input": {}})
    await api.harness.executor.run_until_idle()

    response = await api.post(f"/v1/runs/{run_id}/callback-redeliveries")

    assert (response.status_code, response.json()["code"]) == (409, "NO_CALLBACK_URL")


async def test_a_redelivery_while_one_is_in_flight_is_a_422_conflict(api: Api) -> None:
    run_id = await api.run_id()
    await api.harness.executor.run_until_idle()  # the automatic delivery is pending

    response = await api.post(f"/v1/runs/{run_id}/callback-redeliveries")

    assert (response.status_code, response.json()["code"]) == (422, "CONFLICT")


async def test_of_concurrent_redeliveries_exactly_one_wins(api: Api) -> None:
    run_id = await _delivered(api)

    answers = await asyncio.gather(
        *(api.post(f"/v1/runs/{run_id}/callback-redeliveries") for _ in range(8))
    )

    assert sorted(a.status_code for a in answers) == [201] + [422] * 7
    assert len((await api.get(f"/v1/runs/{run_id}/callback")).json()) == 2
