"""``Idempotency-Key`` on ``POST .../runs``: one run per key and body, whatever the timing."""

from __future__ import annotations

import asyncio

from support.api import Api

BODY = {"input": {"prompt": "a cat"}, "callback_url": "https://receiver.example/hook"}


async def test_the_same_key_and_body_replay_the_first_run(api: Api) -> None:
    first = await api.submit(BODY, headers={"Idempotency-Key": "k-1"})
    again = await api.submit(BODY, headers={"Idempotency-Key": "k-1"})

    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert len((await api.get("/v1/runs")).json()["items"]) == 1
    assert api.woken == [True]


async def test_a_replay_answers_the_first_answer_even_after_the_run_ended(api: Api) -> None:
    first = await api.submit(BODY, headers={"Idempotency-Key": "k-done"})
    await api.harness.executor.run_until_idle()
    assert (await api.get(f"/v1/runs/{first.json()['id']}")).json()["status_code"] != "queued"

    again = await api.submit(BODY, headers={"Idempotency-Key": "k-done"})

    assert (again.status_code, again.content) == (first.status_code, first.content)


async def test_ten_concurrent_identical_requests_create_one_run(api: Api) -> None:
    answers = await asyncio.gather(
        *(api.submit(BODY, headers={"Idempotency-Key": "burst"}) for _ in range(10))
    )

    assert {a.status_code for a in answers} == {201}
    assert len({a.json()["id"] for a in answers}) == 1
    assert len((await api.get("/v1/runs")).json()["items"]) == 1


async def test_the_same_key_with_another_body_is_a_409(api: Api) -> None:
    await api.submit(BODY, headers={"Idempotency-Key": "k-2"})

    response = await api.submit({**BODY, "client_ref": "x"}, headers={"Idempotency-Key": "k-2"})

    assert (response.status_code, response.json()["code"]) == (409, "CONFLICT")
    assert "k-2" in response.json()["message"]


async def test_the_same_key_for_another_model_is_a_409(api: Api) -> None:
    await api.submit(BODY, headers={"Idempotency-Key": "k-3"})

    response = await api.submit(BODY, "runback/fail", headers={"Idempotency-Key": "k-3"})

    assert response.status_code == 409


async def test_key_order_and_spacing_of_the_body_do_not_matter(api: Api) -> None:
    headers = {**api.auth(), "Idempotency-Key": "k-4", "Content-Type": "application/json"}
    first = await api.client.post(
        "/v1/models/runback/echo/runs", content=b'{"input": {"a": 1, "b": 2}}', headers=headers
    )
    again = await api.client.post(
        "/v1/models/runback/echo/runs", content=b'{ "input":{"b":2,"a":1} }', headers=headers
    )

    assert again.json()["id"] == first.json()["id"]


async def test_after_24_hours_the_key_makes_a_new_run(api: Api) -> None:
    first = await api.submit(BODY, headers={"Idempotency-Key": "k-5"})
    api.harness.clock.advance(24 * 3600 + 1)

    later = await api.submit({**BODY, "client_ref": "new"}, headers={"Idempotency-Key": "k-5"})

    assert later.status_code == 201
    assert later.json()["id"] != first.json()["id"]


async def test_keys_are_per_organization(api: Api) -> None:
    first = await api.submit(BODY, headers={"Idempotency-Key": "shared"})
    other = await api.other_organization_key()

    theirs = await api.client.post(
        "/v1/models/runback/echo/runs",
        json=BODY,
        headers={**api.auth(other), "Idempotency-Key": "shared"},
    )

    assert theirs.status_code == 201
    assert theirs.json()["id"] != first.json()["id"]


async def test_without_a_key_every_request_creates_a_run(api: Api) -> None:
    ids = {(await api.submit(BODY)).json()["id"] for _ in range(3)}
    assert len(ids) == 3
