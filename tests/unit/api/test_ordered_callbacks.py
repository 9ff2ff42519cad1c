"""``/v1/ordered-callbacks`` in process: switching ordering on and off, the listing of heads,
and releasing a stuck head."""

from __future__ import annotations

from typing import Any

import httpx

from runback.core.states import DeliveryStatus
from support.api import Api

URL = "https://receiver.example/hook"  # where ``api.run_id`` runs call back


async def _send(api: Api, method: str, body: dict[str, Any], path: str = "") -> httpx.Response:
    return await api.client.request(
        method, f"/v1/ordered-callbacks{path}", json=body, headers=api.auth()
    )


async def _listed(api: Api) -> list[dict[str, Any]]:
    response = await api.get("/v1/ordered-callbacks")
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def _stuck_callbacks(api: Api, count: int) -> list[str]:
    """``count`` runs whose callbacks to ``URL`` are in flight (no dispatcher is serving),
    ended one after the other: answers their ids, oldest first."""
    run_ids = []
    for _ in range(count):
        run_ids.append(await api.run_id())
        await api.harness.executor.run_until_idle()
    return run_ids


async def test_switching_on_answers_201_then_200_and_the_listing_shows_it(api: Api) -> None:
    first = await _send(api, "PUT", {"callback_url": URL})
    again = await _send(api, "PUT", {"callback_url": URL})

    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json() == again.json()
    assert first.json()["head"] is None
    assert [(item["callback_url"], item["in_flight"]) for item in await _listed(api)] == [(URL, 0)]


async def test_the_listing_shows_the_head_each_later_callback_waits_for(api: Api) -> None:
    await _send(api, "PUT", {"callback_url": URL})
    run_ids = await _stuck_callbacks(api, 2)

    [item] = await _listed(api)

    head = item["head"]
    assert item["in_flight"] == 2
    assert (head["run_id"], head["status_code"], head["attempt_count"]) == (
        run_ids[0],
        DeliveryStatus.PENDING.value,
        0,
    )
    assert set(head) >= {"delivery_id", "next_attempt_at", "failure_reason_code", "max_attempts"}


async def test_releasing_the_head_fails_it_as_released_and_the_next_becomes_head(
    api: Api,
) -> None:
    await _send(api, "PUT", {"callback_url": URL})
    run_ids = await _stuck_callbacks(api, 2)

    released = await _send(api, "POST", {"callback_url": URL}, "/release")

    assert released.status_code == 200, released.text
    body = released.json()
    assert (body["run_id"], body["status_code"], body["failure_reason_code"]) == (
        run_ids[0],
        "failed",
        "released",
    )
    [item] = await _listed(api)
    assert (item["head"]["run_id"], item["in_flight"]) == (run_ids[1], 1)


async def test_switching_off_answers_204_then_404(api: Api) -> None:
    await _send(api, "PUT", {"callback_url": URL})

    off = await _send(api, "DELETE", {"callback_url": URL})
    again = await _send(api, "DELETE", {"callback_url": URL})

    assert off.status_code == 204
    assert again.status_code == 404
    assert again.json()["code"] == "NOT_ORDERED"
    assert await _listed(api) == []


async def test_releasing_where_nothing_waits_is_404(api: Api) -> None:
    not_ordered = await _send(api, "POST", {"callback_url": URL}, "/release")
    await _send(api, "PUT", {"callback_url": URL})
    nothing_in_flight = await _send(api, "POST", {"callback_url": URL}, "/release")

    assert (not_ordered.status_code, not_ordered.json()["code"]) == (404, "NOT_ORDERED")
    assert (nothing_in_flight.status_code, nothing_in_flight.json()["code"]) == (
        404,
        "NO_HEAD",
    )


async def test_a_missing_or_refused_url_is_422_naming_the_field(api: Api) -> None:
    missing = await _send(api, "PUT", {})
    refused = await _send(api, "PUT", {"callback_url": "http://10.1.2.3/hook"})

    for response in (missing, refused):
        assert response.status_code == 422, response.text
        assert "callback_url" in response.text


async def test_ordering_is_the_callers_organizations_own(api: Api) -> None:
    await _send(api, "PUT", {"callback_url": URL})
    harness = api.harness
    other = await harness.store.accounts.create_organization("other", now=harness.clock.now())

    assert await harness.store.ordering.listing(other.id) == []


async def test_a_delivery_says_whether_it_is_ordered(api: Api) -> None:
    unordered = await _stuck_callbacks(api, 1)
    await _send(api, "PUT", {"callback_url": URL})
    ordered = await _stuck_callbacks(api, 1)

    before = (await api.get(f"/v1/runs/{unordered[0]}/callback")).json()
    after = (await api.get(f"/v1/runs/{ordered[0]}/callback")).json()

    assert [d["ordered"] for d in before] == [False]  # made before ordering was on
    assert [d["ordered"] for d in after] == [True]
