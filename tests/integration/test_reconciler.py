"""``/v1/expected`` and the reconciler in process: the receive app over the real store, a
sender's runs API played by a loopback server, output files served from loopback, all on a
manual clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from aiohttp import web

from runback.core.payload import run_callback_body
from runback.core.records import Run
from runback.core.signing import generate_secret
from runback.core.states import RunStatus
from runback.provider.api.views import run_view
from runback.receiver.config import ReceiveConfig, Sender, SourceConfig
from runback.store import Store
from runback.testing import ManualClock
from support.factories import ended_run
from support.inbox import RECONCILE_AFTER, Inbox, inbox_client, signed
from support.receivers import LoopbackReceiver, answer

SECRET = generate_secret()
RUN_ID = "0193b7e4-8c1a-7d2e-9f3a-1b2c3d4e5f60"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 16


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime.now(UTC).replace(microsecond=0))


class SenderApi:
    """A sender's ``GET /v1/runs/{id}``, answering the run it is given (or an error)."""

    def __init__(self) -> None:
        self.run: Run | None = None
        self.status = 200
        self.polls = 0

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.polls += 1
        if request.headers.get("Authorization") != "Bearer rb_sender_key":
            return web.json_response({"code": "UNAUTHORIZED", "message": "no"}, status=401)
        if self.status != 200 or self.run is None:
            error = {"code": "BOOM", "message": "the sender is unwell", "errors": None}
            return web.json_response(error, status=self.status)
        return web.Response(body=orjson.dumps(run_view(self.run)), content_type="application/json")


@pytest.fixture
async def sender() -> AsyncIterator[tuple[SenderApi, LoopbackReceiver]]:
    api = SenderApi()
    async with LoopbackReceiver(api.handle) as server:
        yield api, server


@pytest.fixture
async def files() -> AsyncIterator[LoopbackReceiver]:
    async with LoopbackReceiver(answer(200, PNG, {"Content-Type": "image/png"})) as server:
        yield server


def config(url: str, *, reconcile_after: float | None = None) -> ReceiveConfig:
    mine = SourceConfig(
        name="mine",
        secrets=(SECRET,),
        sender=Sender(url, "rb_sender_key"),
        reconcile_after=reconcile_after,
    )
    return ReceiveConfig(global_secrets=(SECRET,), sources=(mine,))


async def expect(box: Inbox, **body: Any) -> Any:
    return await box.client.post("/v1/expected", json=body, headers=box.auth())


def the_run(clock: ManualClock, **changes: Any) -> Run:
    moment = clock.now() - timedelta(minutes=1)
    fields: dict[str, Any] = {
        "created_at": moment - timedelta(seconds=30),
        "started_at": moment - timedelta(seconds=29),
        "completed_at": moment,
        "updated_at": moment,
        "metadata": '{"order":"A-17"}',
    }
    return ended_run(**(fields | changes))


def with_file(run: Run, url: str) -> Run:
    return replace(run, output=orjson.dumps({"outputs": [{"type": "image", "url": url}]}).decode())


# --- POST /v1/expected -----------------------------------------------------------------


async def test_expecting_a_run_answers_201_then_200_with_the_same_expectation(
    store: Store, clock: ManualClock
) -> None:
    async with inbox_client(store, clock, config=config("http://127.0.0.1:9")) as box:
        first = await expect(box, source="mine", run_id=RUN_ID)
        clock.advance(5)
        again = await expect(box, source="mine", run_id=RUN_ID)

    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()
    view = first.json()
    assert view["state"] == "waiting"
    assert (
        datetime.fromisoformat(view["expected_by"])
        == clock.now() - timedelta(seconds=5) + RECONCILE_AFTER
    )
    assert view["next_poll_at"] == view["expected_by"]


async def test_a_source_s_reconcile_after_and_a_given_deadline_set_the_deadline(
    store: Store, clock: ManualClock
) -> None:
    given = clock.now() + timedelta(hours=2)
    async with inbox_client(
        store, clock, config=config("http://127.0.0.1:9", reconcile_after=30)
    ) as box:
        by_source = (await expect(box, source="mine", run_id="run_a")).json()
        by_request = (
            await expect(box, source="mine", run_id="run_b", expected_by=given.isoformat())
        ).json()

    assert datetime.fromisoformat(by_source["expected_by"]) == clock.now() + timedelta(seconds=30)
    assert datetime.fromisoformat(by_request["expected_by"]) == given


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"source": "mine"}, "run_id"),  # missing
        ({"run_id": RUN_ID}, "source"),  # missing
        ({"source": "no spaces", "run_id": RUN_ID}, "source"),  # not a source name
        ({"source": "mine", "run_id": ""}, "run_id"),  # empty
        ({"source": "mine", "run_id": RUN_ID, "expected_by": "2026-12-06T12:00:00"}, "expected_by"),
        ({"source": "mine", "run_id": RUN_ID, "expected_by": "soon"}, "expected_by"),
        # no UTC instant: a 500 before
        (
            {"source": "mine", "run_id": RUN_ID, "expected_by": "0001-01-01T00:00+01:00"},
            "expected_by",
        ),
        ({"source": "other", "run_id": RUN_ID}, "source"),  # no sender to poll
        ({"source": "mine", "run_id": RUN_ID, "url": "x"}, "url"),  # unknown field
    ],
)
async def test_an_invalid_expectation_is_a_422_naming_its_field(
    store: Store, clock: ManualClock, body: dict[str, Any], field: str
) -> None:
    async with inbox_client(store, clock, config=config("http://127.0.0.1:9")) as box:
        response = await expect(box, **body)

    assert response.status_code == 422, response.text
    assert [e["field"] for e in response.json()["errors"]] == [field]


async def test_expecting_needs_the_inbox_api_key(store: Store, clock: ManualClock) -> None:
    async with inbox_client(store, clock, config=config("http://127.0.0.1:9")) as box:
        response = await box.client.post("/v1/expected", json={"source": "mine", "run_id": RUN_ID})
        listed = await box.client.get("/v1/expected")

    assert (response.status_code, listed.status_code) == (401, 401)


async def test_expectations_are_listed_by_state(store: Store, clock: ManualClock) -> None:
    async with inbox_client(store, clock, config=config("http://127.0.0.1:9")) as box:
        await expect(box, source="mine", run_id="run_a")
        await expect(box, source="mine", run_id="run_b")
        body = orjson.dumps({"event": "run.completed", "run_id": "run_a", "status": "succeeded"})
        await box.post("mine", body, signed(body, SECRET, clock=clock))
        waiting = await box.client.get("/v1/expected?state=waiting", headers=box.auth())
        arrived = await box.client.get("/v1/expected?state=arrived", headers=box.auth())
        wrong = await box.client.get("/v1/expected?state=lost", headers=box.auth())

    assert [e["run_id"] for e in waiting.json()["items"]] == ["run_b"]
    assert [e["run_id"] for e in arrived.json()["items"]] == ["run_a"]
    assert arrived.json()["items"][0]["event_id"] is not None
    assert wrong.status_code == 422
    assert [e["field"] for e in wrong.json()["errors"]] == ["state"]


# --- the reconciler --------------------------------------------------------------------


async def test_an_ended_run_without_its_callback_is_recorded_reconciled_with_its_copies(
    store: Store,
    clock: ManualClock,
    sender: tuple[SenderApi, LoopbackReceiver],
    files: LoopbackReceiver,
) -> None:
    api, server = sender
    api.run = with_file(the_run(clock), files.url_for("/out/cat.png"))
    async with inbox_client(store, clock, config=config(server.url)) as box:
        assert box.reconciler is not None
        await expect(box, source="mine", run_id=RUN_ID)
        assert await box.reconciler.reconcile_due() == 0  # not before its deadline
        clock.advance(RECONCILE_AFTER.total_seconds())
        assert await box.reconciler.reconcile_due() == 1
        [event] = await box.events()
        detail = await box.event(event["id"])
        await box.copier.copy_due()
        [copy] = await box.copies(event["id"])
        [item] = (await box.client.get("/v1/expected", headers=box.auth())).json()["items"]

    assert (event["event"], event["run_id"], event["reconciled"]) == (
        "run.completed",
        RUN_ID,
        True,
    )
    assert event["dedupe_key"] == f"run:{RUN_ID}:run.completed"
    [receipt] = detail["receipts"]
    assert receipt["scheme"] == "reconciled"
    assert receipt["body"].encode() == run_callback_body(api.run)
    assert (copy["state"], copy["size"]) == ("copied", len(PNG))
    assert (item["state"], item["event_id"], item["attempts"]) == ("reconciled", event["id"], 1)


async def test_the_real_callback_coming_after_a_reconciliation_is_a_duplicate(
    store: Store, clock: ManualClock, sender: tuple[SenderApi, LoopbackReceiver]
) -> None:
    api, server = sender
    api.run = the_run(clock)
    async with inbox_client(store, clock, config=config(server.url)) as box:
        assert box.reconciler is not None
        await expect(box, source="mine", run_id=RUN_ID)
        clock.advance(RECONCILE_AFTER.total_seconds())
        await box.reconciler.reconcile_due()
        body = run_callback_body(api.run)
        late = await box.post("mine", body, signed(body, SECRET, clock=clock))
        [event] = await box.events()

    assert late.json()["duplicate"] is True
    assert late.json()["event_id"] == event["id"]
    assert event["receipt_count"] == 2


@pytest.mark.parametrize(
    ("status", "running"),
    [
        (200, True),  # the run has not ended: poll again later
        (503, False),  # the sender failed: the error is kept, and it is polled again
        (404, False),
    ],
)
async def test_a_poll_that_finds_no_end_is_tried_again_later(
    store: Store,
    clock: ManualClock,
    sender: tuple[SenderApi, LoopbackReceiver],
    status: int,
    running: bool,
) -> None:
    api, server = sender
    api.status = status
    api.run = the_run(clock, status=RunStatus.RUNNING, completed_at=None)
    async with inbox_client(store, clock, config=config(server.url)) as box:
        assert box.reconciler is not None
        await expect(box, source="mine", run_id=RUN_ID)
        clock.advance(RECONCILE_AFTER.total_seconds())
        assert await box.reconciler.reconcile_due() == 1
        assert await box.reconciler.reconcile_due() == 0  # backing off
        clock.advance(40)
        assert await box.reconciler.reconcile_due() == 1
        [item] = (await box.client.get("/v1/expected", headers=box.auth())).json()["items"]
        events = await box.events()

    assert events == []
    assert (item["state"], item["attempts"]) == ("waiting", 2)
    assert (item["last_error"] is None) == running
    if not running:
        assert "unwell" in item["last_error"]


async def test_a_sender_that_is_down_is_an_error_kept_not_a_crash(
    store: Store, clock: ManualClock
) -> None:
    async with LoopbackReceiver() as gone:
        url = gone.url  # a port that was just closed
    async with inbox_client(store, clock, config=config(url)) as box:
        assert box.reconciler is not None
        await expect(box, source="mine", run_id=RUN_ID)
        clock.advance(RECONCILE_AFTER.total_seconds())
        assert await box.reconciler.reconcile_due() == 1
        [item] = (await box.client.get("/v1/expected", headers=box.auth())).json()["items"]

    assert item["state"] == "waiting"
    assert item["last_error"]


async def test_polling_stops_at_the_give_up_horizon(
    store: Store, clock: ManualClock, sender: tuple[SenderApi, LoopbackReceiver]
) -> None:
    api, server = sender
    api.run = the_run(clock, status=RunStatus.RUNNING, completed_at=None)
    async with inbox_client(store, clock, config=config(server.url)) as box:
        assert box.reconciler is not None
        await expect(box, source="mine", run_id=RUN_ID)
        clock.advance(RECONCILE_AFTER.total_seconds() + timedelta(days=7).total_seconds())
        await box.reconciler.reconcile_due()
        [item] = (await box.client.get("/v1/expected", headers=box.auth())).json()["items"]

    assert (item["state"], item["next_poll_at"]) == ("gave_up", None)
    assert item["settled_at"] is not None


async def test_a_callback_that_came_before_its_expectation_is_matched_at_once(
    store: Store, clock: ManualClock
) -> None:
    async with inbox_client(store, clock, config=config("http://127.0.0.1:9")) as box:
        body = orjson.dumps({"event": "run.failed", "run_id": RUN_ID, "status": "failed"})
        received = await box.post("mine", body, signed(body, SECRET, clock=clock))
        made = await expect(box, source="mine", run_id=RUN_ID)

    assert made.status_code == 201
    assert (made.json()["state"], made.json()["event_id"]) == (
        "arrived",
        received.json()["event_id"],
    )
