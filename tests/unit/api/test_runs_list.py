"""``GET /v1/runs``: newest first, cursor pages, filters; ``GET /v1/runs/statuses``."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from support.api import Api


async def _walk(api: Api, query: str = "", limit: int = 3) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    cursor = None
    while True:
        suffix = f"&cursor={cursor}" if cursor else ""
        response = await api.get(f"/v1/runs?limit={limit}{query}{suffix}")
        assert response.status_code == 200, response.text
        page = response.json()
        seen += page["items"]
        cursor = page["next"]
        if cursor is None:
            return seen


async def test_runs_are_listed_newest_first(api: Api) -> None:
    ids = []
    for _ in range(4):
        ids.append(await api.run_id())
        api.harness.clock.advance(1)

    listed = (await api.get("/v1/runs")).json()

    assert [run["id"] for run in listed["items"]] == ids[::-1]
    assert listed["next"] is None


async def test_pages_walk_every_run_exactly_once_while_runs_are_added(api: Api) -> None:
    before = [await api.run_id() for _ in range(10)]
    seen: list[str] = []
    cursor = None
    added = []
    while True:
        suffix = f"&cursor={cursor}" if cursor else ""
        page = (await api.get(f"/v1/runs?limit=3{suffix}")).json()
        seen += [run["id"] for run in page["items"]]
        added.append(await api.run_id())  # lands at the head, before the walk's position
        cursor = page["next"]
        if cursor is None:
            break

    assert len(seen) == len(set(seen))
    assert set(seen) == set(before)


async def test_runs_created_in_the_same_instant_are_still_paged_once(api: Api) -> None:
    # The clock stands still: every run has the same created_at, the id breaks the tie.
    ids = {await api.run_id() for _ in range(7)}

    seen = [run["id"] for run in await _walk(api, limit=2)]

    assert sorted(seen) == sorted(ids)


async def test_filters_narrow_the_list(api: Api) -> None:
    await api.run_id({"input": {}, "client_ref": "a"})
    failing = await api.run_id({"input": {}, "client_ref": "b"}, model="runback/fail")
    await api.harness.executor.run_until_idle()
    api.harness.clock.advance(60)
    late = await api.run_id({"input": {}, "client_ref": "a"})

    async def ids(query: str) -> set[str]:
        return {run["id"] for run in await _walk(api, query)}

    assert await ids("&status=failed") == {failing}
    assert await ids("&status=failed&status=queued") == {failing, late}
    assert await ids("&model=runback/fail") == {failing}
    assert len(await ids("&client_ref=a")) == 2
    boundary = (api.harness.clock.now() - timedelta(seconds=30)).isoformat()
    assert await ids(f"&created_after={boundary.replace('+', '%2B')}") == {late}
    assert late not in await ids(f"&created_before={boundary.replace('+', '%2B')}")


@pytest.mark.parametrize(
    ("query", "status", "field"),
    [
        ("limit=501", 422, "limit"),  # above the page maximum
        ("limit=0", 422, "limit"),  # a page holds at least one run
        ("status=done", 422, "status"),  # not a run status (a repeated parameter, by name)
        ("cursor=bm90LWEtY3Vyc29y", 400, None),  # base64, but not a cursor we gave
        ("created_after=yesterday", 422, "created_after"),  # not a datetime
    ],
)
async def test_bad_list_parameters_are_named(
    api: Api, query: str, status: int, field: str | None
) -> None:
    response = await api.get(f"/v1/runs?{query}")

    assert response.status_code == status
    if field is not None:
        assert [e["field"] for e in response.json()["errors"]] == [field]


async def test_the_statuses_are_listed_in_lifecycle_order(api: Api) -> None:
    response = await api.get("/v1/runs/statuses")

    assert response.json() == [
        "queued",
        "dispatching",
        "running",
        "succeeded",
        "failed",
        "canceled",
        "partial_succeeded",
    ]


async def test_a_bound_with_no_utc_date_is_a_422_not_a_500(api: Api) -> None:
    response = await api.get("/v1/runs?created_before=9999-12-31T23:59:59-01:00")
    assert (response.status_code, response.json()["errors"][0]["field"]) == (
        422,
        "created_before",
    )
