"""The receiving side with real parts: the receive app in process over the SQLite store, output
files fetched from loopback servers into a local directory or an S3-compatible bucket, and the
user's handlers, all on a manual clock."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import orjson
import pytest
from aiohttp import web

from runback.blobs import BlobStore
from runback.core.inbox import HANDLER_RETRY
from runback.core.signing import generate_secret
from runback.receiver.config import ReceiveConfig, SourceConfig
from runback.receiver.handlers import HandlerRegistry, ReceivedEvent
from runback.store import Store
from runback.testing import ManualClock
from support.inbox import Inbox, inbox_client, signed
from support.receivers import Handler, LoopbackReceiver, answer
from support.s3 import S3Server

SECRET = generate_secret()
SIGNED = ReceiveConfig(global_secrets=(SECRET,))
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 64
PNG_SHA256 = hashlib.sha256(PNG).hexdigest()


@pytest.fixture
def clock() -> ManualClock:
    # The verifier judges webhook-timestamp by the wall clock: start the manual one there.
    return ManualClock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture
async def files() -> AsyncIterator[LoopbackReceiver]:
    """A file server on loopback that serves ``PNG`` at every path until told otherwise."""
    async with LoopbackReceiver(serving(PNG)) as server:
        yield server


def serving(content: bytes, content_type: str = "image/png") -> Handler:
    return answer(200, content, {"Content-Type": content_type})


def by_path(routes: dict[str, Handler]) -> Handler:
    """Answers each path with its own handler; other paths with 404."""

    async def handle(request: web.Request) -> web.StreamResponse:
        return await routes.get(request.path, answer(404))(request)

    return handle


def amz_query(signed_at: datetime, seconds: int) -> str:
    """The expiry part of an AWS SigV4 presigned URL's query."""
    return (
        f"?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Date={signed_at:%Y%m%dT%H%M%SZ}"
        f"&X-Amz-Expires={seconds}&X-Amz-Signature=00ff"
    )


def run_completed(url: str, *, run_id: str = "run_1", **entry: Any) -> dict[str, Any]:
    """A runback-style ``run.completed`` callback with one output file at ``url``."""
    return {
        "event": "run.completed",
        "run_id": run_id,
        "status": "succeeded",
        "output": {"outputs": [{"url": url, **entry}]},
    }


async def receive_signed(
    box: Inbox, payload: dict[str, Any], *, source: str = "runflow", msg_id: str = "msg_1"
) -> str:
    """Post ``payload`` signed with ``SECRET``; answer the event's id."""
    body = orjson.dumps(payload)
    response = await box.post(source, body, signed(body, SECRET, clock=box.clock, msg_id=msg_id))
    assert response.status_code == 200, response.text
    event_id: str = response.json()["event_id"]
    return event_id


async def only_copy(box: Inbox, event_id: str) -> dict[str, Any]:
    [copy] = await box.copies(event_id)
    return copy


def moment(text: str) -> datetime:
    return datetime.fromisoformat(text)


# --- copying outputs -------------------------------------------------------------------


@pytest.fixture(
    params=[
        "local",  # a directory, the default of `runback receive`
        "s3",  # an S3-compatible bucket (moto's server on loopback)
    ]
)
def copy_store(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    if request.param == "local":
        return BlobStore.local(tmp_path / "copies")
    server: S3Server = request.getfixturevalue("s3_server")
    return server.create_bucket(f"inbox-{uuid4().hex[:12]}").blob_store()


async def test_a_signed_callback_s_output_is_copied_with_its_size_checksum_and_type(
    store: Store, clock: ManualClock, files: LoopbackReceiver, copy_store: BlobStore
) -> None:
    payload = run_completed(files.url_for("/out/cat.png"), sha256=PNG_SHA256)
    async with inbox_client(store, clock, config=SIGNED, blobs=copy_store) as box:
        event_id = await receive_signed(box, payload)

        assert await box.copier.copy_due() == 1

        copy = await only_copy(box, event_id)
        assert copy["state"] == "copied"
        assert (copy["size"], copy["sha256"]) == (len(PNG), PNG_SHA256)
        assert copy["content_type"] == "image/png"
        assert copy["attempts"] == 1
        assert await box.stored(copy["stored_key"]) == PNG


async def test_a_copy_whose_bytes_miss_the_announced_sha256_is_retried(
    store: Store, clock: ManualClock, files: LoopbackReceiver
) -> None:
    payload = run_completed(files.url_for("/out/cat.png"), sha256="ab" * 32)
    async with inbox_client(store, clock, config=SIGNED) as box:
        event_id = await receive_signed(box, payload)

        await box.copier.copy_due()

        copy = await only_copy(box, event_id)
    assert (copy["state"], copy["attempts"]) == ("pending", 1)
    assert "SHA-256" in copy["last_error"]
    assert copy["stored_key"] is None


async def test_a_failing_file_server_is_retried_with_backoff_until_it_recovers(
    store: Store, clock: ManualClock, files: LoopbackReceiver
) -> None:
    files.handler = answer(500)
    async with inbox_client(store, clock, config=SIGNED) as box:
        event_id = await receive_signed(box, run_completed(files.url_for("/out/cat.png")))
        failed_at = clock.now()
        await box.copier.copy_due()
        failed = await only_copy(box, event_id)
        files.handler = serving(PNG)

        not_yet = await box.copier.copy_due()
        clock.set(moment(failed["next_attempt_at"]))
        retried = await box.copier.copy_due()

        copy = await only_copy(box, event_id)
    assert (failed["state"], failed["attempts"]) == ("pending", 1)
    assert "HTTP 500" in failed["last_error"]
    assert moment(failed["next_attempt_at"]) > failed_at
    assert (not_yet, retried) == (0, 1)
    assert (copy["state"], copy["attempts"], copy["size"]) == ("copied", 2, len(PNG))
    assert len(files.requests) == 2


@pytest.mark.parametrize(
    "told_by",
    [
        "query",  # an AWS SigV4 presigned URL (X-Amz-Date + X-Amz-Expires), valid a minute
        "payload",  # the output entry's own expires_at, a minute away
    ],
)
async def test_a_copy_that_has_not_succeeded_when_its_url_expires_is_lost_for_good(
    store: Store, clock: ManualClock, files: LoopbackReceiver, told_by: str
) -> None:
    files.handler = answer(503)
    signed_at = clock.now()
    expires_at = signed_at + timedelta(seconds=60)
    if told_by == "query":
        url, entry = files.url_for("/out/cat.png" + amz_query(signed_at, 60)), {}
    else:
        url, entry = files.url_for("/out/cat.png"), {"expires_at": expires_at.isoformat()}
    async with inbox_client(store, clock, config=SIGNED) as box:
        event_id = await receive_signed(box, run_completed(url, **entry))
        copy = await only_copy(box, event_id)
        for _ in range(20):  # 1.1 s doubling: the sixth retry would fall past the expiry
            await box.copier.copy_due()
            copy = await only_copy(box, event_id)
            if copy["state"] != "pending":
                break
            clock.set(moment(copy["next_attempt_at"]))
        fetched = len(files.requests)

        clock.advance(3600)
        again = await box.copier.copy_due()

        after = await only_copy(box, event_id)
    assert copy["state"] == "lost"
    assert moment(copy["expires_at"]) == expires_at
    assert copy["last_error"].startswith("the URL expired at")
    assert "HTTP 503" in copy["last_error"]
    assert copy["next_attempt_at"] is None
    assert again == 0
    assert after == copy
    assert len(files.requests) == fetched


async def test_a_redelivery_with_a_fresh_url_recovers_a_lost_copy_without_handling_again(
    store: Store, clock: ManualClock, files: LoopbackReceiver
) -> None:
    files.handler = by_path({"/old/cat.png": answer(500), "/new/cat.png": serving(PNG)})
    handled: list[ReceivedEvent] = []
    handlers = HandlerRegistry()

    @handlers.on("run.completed")
    async def record(event: ReceivedEvent) -> None:
        handled.append(event)

    # Valid for a second: the first retry, 1.1 s after a failure, would come too late.
    old = files.url_for("/old/cat.png" + amz_query(clock.now(), 1))
    async with inbox_client(store, clock, config=SIGNED, handlers=handlers) as box:
        event_id = await receive_signed(box, run_completed(old))
        await box.runner.handle_due()
        await box.copier.copy_due()
        lost = await only_copy(box, event_id)
        clock.advance(60)

        fresh = files.url_for("/new/cat.png" + amz_query(clock.now(), 3600))
        redelivered = await receive_signed(box, run_completed(fresh))
        pending = await only_copy(box, event_id)
        await box.copier.copy_due()
        ran_again = await box.runner.handle_due()

        copy = await only_copy(box, event_id)
        assert await box.stored(copy["stored_key"]) == PNG
    assert lost["state"] == "lost"
    assert redelivered == event_id
    assert (pending["state"], pending["source_url"]) == ("pending", fresh)
    assert (copy["state"], copy["id"]) == ("copied", lost["id"])
    assert ran_again == 0
    assert len(handled) == 1


# --- receiving once ---------------------------------------------------------------------


async def test_a_duplicate_answers_200_as_a_duplicate_of_the_same_event(
    store: Store, clock: ManualClock, files: LoopbackReceiver
) -> None:
    body = orjson.dumps(run_completed(files.url_for("/out/cat.png")))
    async with inbox_client(store, clock, config=SIGNED) as box:
        first = await box.post("runflow", body, signed(body, SECRET, clock=clock))
        second = await box.post("runflow", body, signed(body, SECRET, clock=clock))

        events = await box.events()
        event = await box.event(first.json()["event_id"])
    assert (first.status_code, first.json()["duplicate"]) == (200, False)
    assert (second.status_code, second.json()["duplicate"]) == (200, True)
    assert second.json()["event_id"] == first.json()["event_id"]
    assert [e["id"] for e in events] == [first.json()["event_id"]]
    assert event["receipt_count"] == 2
    assert len(event["receipts"]) == 2
    assert len(event["copies"]) == 1


async def test_runware_results_of_one_task_are_one_event_each(
    store: Store, clock: ManualClock, files: LoopbackReceiver
) -> None:
    config = ReceiveConfig(sources=(SourceConfig(name="runware", token="t0k"),))
    async with inbox_client(store, clock, config=config) as box:
        answers = [
            await box.post("runware", runware_result(files, image), params={"token": "t0k"})
            for image in ("img-1", "img-2")
        ]

        events = await box.events()
    assert [r.status_code for r in answers] == [200, 200]
    assert [r.json()["duplicate"] for r in answers] == [False, False]
    assert len({r.json()["event_id"] for r in answers}) == 2
    assert {e["task_uuid"] for e in events} == {"task-1"}


async def test_a_runware_result_posted_twice_is_one_event(
    store: Store, clock: ManualClock, files: LoopbackReceiver
) -> None:
    config = ReceiveConfig(sources=(SourceConfig(name="runware", token="t0k"),))
    result = runware_result(files, "img-1")
    async with inbox_client(store, clock, config=config) as box:
        first = await box.post("runware", result, params={"token": "t0k"})
        clock.advance(5)
        second = await box.post("runware", result, params={"token": "t0k"})

        events = await box.events()
    assert second.json() == {**first.json(), "duplicate": True}
    assert len(events) == 1
    assert events[0]["dedupe_key"] == "task:task-1:img-1"


def runware_result(files: LoopbackReceiver, image: str) -> dict[str, Any]:
    """One image of a Runware task, as Runware posts each result on its own."""
    return {
        "taskType": "imageInference",
        "taskUUID": "task-1",
        "imageUUID": image,
        "imageURL": files.url_for(f"/runware/{image}.png"),
    }


# --- handlers ---------------------------------------------------------------------------


async def test_a_handler_that_raises_is_retried_until_it_succeeds(
    store: Store, clock: ManualClock, files: LoopbackReceiver
) -> None:
    attempts: list[int] = []
    handlers = HandlerRegistry()

    @handlers.on("run.completed")
    async def flaky(event: ReceivedEvent) -> None:
        attempts.append(event.attempt)
        if event.attempt == 1:
            raise RuntimeError("the database is down")

    async with inbox_client(store, clock, config=SIGNED, handlers=handlers) as box:
        event_id = await receive_signed(box, run_completed(files.url_for("/out/cat.png")))
        await box.runner.handle_due()
        failed = (await box.event(event_id))["handler"]
        clock.set(moment(failed["next_at"]))
        await box.runner.handle_due()

        handled = (await box.event(event_id))["handler"]
    assert (failed["state"], failed["attempts"]) == ("pending", 1)
    assert failed["error"] == "RuntimeError: the database is down"
    assert (handled["state"], handled["attempts"], handled["error"]) == ("succeeded", 2, None)
    assert attempts == [1, 2]


async def test_a_handler_that_fails_every_attempt_ends_failed(
    store: Store, clock: ManualClock, files: LoopbackReceiver
) -> None:
    calls: list[int] = []
    handlers = HandlerRegistry()

    @handlers.on("*")
    def broken(event: ReceivedEvent) -> None:
        calls.append(event.attempt)
        raise ValueError("no such order")

    async with inbox_client(store, clock, config=SIGNED, handlers=handlers) as box:
        event_id = await receive_signed(box, run_completed(files.url_for("/out/cat.png")))
        for _ in HANDLER_RETRY.delays:
            await box.runner.handle_due()
            clock.set(moment((await box.event(event_id))["handler"]["next_at"]))
        await box.runner.handle_due()

        handler = (await box.event(event_id))["handler"]
        clock.advance(86_400)
        again = await box.runner.handle_due()
    assert handler["state"] == "failed"
    assert handler["attempts"] == len(HANDLER_RETRY.delays) + 1
    assert handler["error"] == "ValueError: no such order"
    assert handler["next_at"] is None
    assert calls == list(range(1, len(HANDLER_RETRY.delays) + 2))
    assert again == 0


class Notifier:
    """A handler object whose ``__call__`` is a coroutine function (a valid ``Handler``)."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    async def __call__(self, event: ReceivedEvent) -> None:
        self.seen.append(event.dedupe_key)


# While the bug lasts, the dropped coroutine is reported as never awaited when collected.
async def test_a_handler_object_with_an_async_call_is_awaited(
    store: Store, clock: ManualClock, files: LoopbackReceiver
) -> None:
    notifier = Notifier()
    handlers = HandlerRegistry()
    handlers.on("run.completed")(notifier)
    async with inbox_client(store, clock, config=SIGNED, handlers=handlers) as box:
        await receive_signed(box, run_completed(files.url_for("/out/cat.png")))

        await box.runner.handle_due()

    assert notifier.seen == ["run:run_1:run.completed"]


# --- authentication ---------------------------------------------------------------------

TOKEN_SOURCE = ReceiveConfig(sources=(SourceConfig(name="runware", token="t0k"),))


async def test_a_token_source_accepts_its_token_without_a_signature(
    store: Store, clock: ManualClock, files: LoopbackReceiver
) -> None:
    async with inbox_client(store, clock, config=TOKEN_SOURCE) as box:
        response = await box.post(
            "runware", runware_result(files, "img-1"), params={"token": "t0k"}
        )

        event = await box.event(response.json()["event_id"])
    assert response.status_code == 200
    assert [r["scheme"] for r in event["receipts"]] == ["token"]


@pytest.mark.parametrize(
    "params",
    [
        {"token": "nope"},  # the wrong token
        {"token": "T0K"},  # the right one in the wrong case
        {"token": ""},  # an empty one
        {},  # none at all
    ],
)
async def test_a_token_source_refuses_a_wrong_or_missing_token(
    store: Store, clock: ManualClock, files: LoopbackReceiver, params: dict[str, str]
) -> None:
    async with inbox_client(store, clock, config=TOKEN_SOURCE) as box:
        response = await box.post("runware", runware_result(files, "img-1"), params=params)

        events = await box.events()
    assert response.status_code == 401
    assert events == []


STANDARD_ONLY = ReceiveConfig(
    sources=(SourceConfig(name="runflow", secrets=(SECRET,), require_standard=True),)
)


async def test_a_source_requiring_standard_webhooks_refuses_runflow_signature_alone(
    store: Store, clock: ManualClock, files: LoopbackReceiver
) -> None:
    body = orjson.dumps(run_completed(files.url_for("/out/cat.png")))
    headers = signed(body, SECRET, clock=clock, standard=False)
    async with inbox_client(store, clock, config=STANDARD_ONLY) as box:
        response = await box.post("runflow", body, headers)

        events = await box.events()
    assert response.status_code == 401
    assert "Standard Webhooks" in response.json()["message"]
    assert events == []


async def test_a_source_requiring_standard_webhooks_accepts_them(
    store: Store, clock: ManualClock, files: LoopbackReceiver
) -> None:
    body = orjson.dumps(run_completed(files.url_for("/out/cat.png")))
    headers = signed(body, SECRET, clock=clock, runflow=False)
    async with inbox_client(store, clock, config=STANDARD_ONLY) as box:
        response = await box.post("runflow", body, headers)

        event = await box.event(response.json()["event_id"])
    assert response.status_code == 200
    assert [r["scheme"] for r in event["receipts"]] == ["v1"]


async def test_a_standard_webhooks_timestamp_is_judged_by_the_receiver_s_clock(
    store: Store, files: LoopbackReceiver
) -> None:
    elsewhen = ManualClock(datetime(2020, 1, 1, tzinfo=UTC))
    body = orjson.dumps(run_completed(files.url_for("/out/cat.png")))
    async with inbox_client(store, elsewhen, config=SIGNED) as box:
        response = await box.post("runflow", body, signed(body, SECRET, clock=elsewhen))

    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    "source",
    [
        "has.a.dot",  # outside A-Z a-z 0-9 _ -
        "x" * 65,  # one character too long
        "sp%20ace",  # a space, percent-encoded in the path
        "%C3%A9t%C3%A9",  # non-ASCII letters
    ],
)
async def test_a_source_name_that_is_not_allowed_is_not_found(
    store: Store, clock: ManualClock, source: str
) -> None:
    body = orjson.dumps({"event": "x", "run_id": "r"})
    async with inbox_client(store, clock, config=SIGNED) as box:
        response = await box.post(source, body, signed(body, SECRET, clock=clock))

        events = await box.events()
    assert response.status_code == 404
    assert response.json()["code"] == "SOURCE_NOT_FOUND"
    assert events == []


@pytest.mark.parametrize(
    "headers",
    [
        {},  # no Authorization header
        {"Authorization": "Bearer rb_not_a_key"},  # a key this receiver never made
        {"Authorization": "Basic dXNlcjpwYXNz"},  # not a bearer token
    ],
)
async def test_the_inbox_api_needs_an_api_key(
    store: Store, clock: ManualClock, headers: dict[str, str]
) -> None:
    async with inbox_client(store, clock, config=SIGNED) as box:
        response = await box.client.get("/v1/inbox", headers=headers)

    assert response.status_code == 401


# --- where outputs are found --------------------------------------------------------------


async def test_a_headshots_callback_copies_each_of_its_image_urls(
    store: Store, clock: ManualClock, files: LoopbackReceiver
) -> None:
    urls = [files.url_for(f"/headshots/{n}.png") for n in range(60)]
    payload = {"event": "headshots.completed", "headshots_id": "hs_1", "image_urls": urls}
    async with inbox_client(store, clock, config=SIGNED) as box:
        event_id = await receive_signed(box, payload)

        made = await box.copier.copy_due()

        copies = await box.copies(event_id)
    assert made == 60
    assert sorted(c["source_url"] for c in copies) == sorted(urls)
    assert {c["path"] for c in copies} == {f"image_urls[{n}]" for n in range(60)}
    assert {c["state"] for c in copies} == {"copied"}
    assert len({c["stored_key"] for c in copies}) == 60


async def test_urls_under_metadata_are_never_copied(
    store: Store, clock: ManualClock, files: LoopbackReceiver
) -> None:
    elsewhere = files.url_for("/metadata/not-an-output.png")
    payload = run_completed(files.url_for("/out/cat.png")) | {
        "metadata": {
            "url": elsewhere,
            "imageURL": elsewhere,
            "image_urls": [elsewhere],
            "output": {"outputs": [{"url": elsewhere}]},
        }
    }
    async with inbox_client(store, clock, config=SIGNED) as box:
        event_id = await receive_signed(box, payload)
        await box.copier.copy_due()

        copies = await box.copies(event_id)
    assert [c["path"] for c in copies] == ["output.outputs[0].url"]
    assert [r.path for r in files.requests] == ["/out/cat.png"]


async def test_a_source_s_output_paths_add_copies(
    store: Store, clock: ManualClock, files: LoopbackReceiver
) -> None:
    source = SourceConfig(name="custom", secrets=(SECRET,), output_paths=("result.files[].href",))
    config = ReceiveConfig(global_secrets=(SECRET,), sources=(source,))
    payload = run_completed(files.url_for("/out/cat.png")) | {
        "result": {"files": [{"href": files.url_for(f"/extra/{n}.glb")} for n in range(2)]}
    }
    async with inbox_client(store, clock, config=config) as box:
        custom = await receive_signed(box, payload, source="custom", msg_id="msg_custom")
        default = await receive_signed(box, payload, source="other", msg_id="msg_other")

        custom_paths = {c["path"] for c in await box.copies(custom)}
        default_paths = {c["path"] for c in await box.copies(default)}
    assert custom_paths == {
        "output.outputs[0].url",
        "result.files[0].href",
        "result.files[1].href",
    }
    assert default_paths == {"output.outputs[0].url"}


# --- the inbox API ----------------------------------------------------------------------


async def test_the_inbox_lists_events_newest_first_a_page_at_a_time(
    store: Store, clock: ManualClock
) -> None:
    async with inbox_client(store, clock, config=SIGNED) as box:
        posted = []
        for n in range(5):
            posted.append(await receive_signed(box, {"event": "ping"}, msg_id=f"msg_{n}"))
            clock.advance(1)

        first = await box.page(limit=2)
        second = await box.page(limit=2, cursor=first["next"])
        third = await box.page(limit=2, cursor=second["next"])
    newest_first = posted[::-1]
    assert [e["id"] for e in first["items"]] == newest_first[:2]
    assert [e["id"] for e in second["items"]] == newest_first[2:4]
    assert [e["id"] for e in third["items"]] == newest_first[4:]
    assert third["next"] is None


async def test_one_callback_signed_either_way_is_one_event_copied_once(
    store: Store, clock: ManualClock, files: LoopbackReceiver
) -> None:
    payload = run_completed(files.url_for("/out/cat.png"))
    body = orjson.dumps(payload)
    async with inbox_client(store, clock, config=SIGNED) as box:
        with_id = await box.post("runflow", body, signed(body, SECRET, clock=clock))
        runflow_only = await box.post(
            "runflow", body, signed(body, SECRET, clock=clock, msg_id=None, standard=False)
        )
        await box.copier.copy_due()

        assert with_id.json()["duplicate"] is False
        assert runflow_only.json() == {**with_id.json(), "duplicate": True}
        assert len(await box.copies(with_id.json()["event_id"])) == 1
    assert len(files.requests) == 1
