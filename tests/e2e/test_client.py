"""``runback.AsyncClient`` and ``runback.Client`` against a real ``runback serve``: every
method, each through both clients, with the errors the server answers mapped to
``runback.errors``. One server for the module; each test its own runs."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from runback.client import AsyncClient, Client, DeliveryMessage, Run
from runback.core.states import RunStatus
from runback.errors import (
    NotFoundError,
    PermissionDeniedError,
    UnauthorizedError,
    ValidationFailedError,
    WaitTimeoutError,
)
from support.process import ServeProcess, cli
from support.scripted import Reply, ScriptedServer, in_turn, json_reply
from support.waiting import eventually, wait_for


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServeProcess, str]]:
    data_dir = tmp_path_factory.mktemp("client") / "data"
    made = cli("keys", "create", "--data-dir", str(data_dir))
    assert made.returncode == 0, made.stderr
    with ServeProcess(data_dir, env={"RUNBACK_EVENT_INTERVAL": "0.1"}) as process:
        yield process, made.stdout.strip()


@pytest.fixture(scope="module")
def receiver() -> Iterator[ScriptedServer]:
    """A callback receiver that takes everything."""
    with ScriptedServer(in_turn([], json_reply(200, {}))) as accepting:
        yield accepting


class Api:
    """One client of either flavor, called alike: each call answers what the method
    answers (an iterator read to its end), or raises what it raises."""

    def __init__(self, flavor: str, url: str, key: str, **options: Any) -> None:
        self.flavor = flavor
        self.sync = Client(url, key, **options) if flavor == "sync" else None
        self.aio = AsyncClient(url, key, **options)

    async def __call__(self, part: str, method: str, *args: Any, **kwargs: Any) -> Any:
        if self.sync is not None:
            answer = getattr(getattr(self.sync, part), method)(*args, **kwargs)
            return list(answer) if isinstance(answer, Iterator) else answer
        answer = getattr(getattr(self.aio, part), method)(*args, **kwargs)
        if isinstance(answer, AsyncIterator):
            return [item async for item in answer]
        return await answer

    async def close(self) -> None:
        if self.sync is not None:
            self.sync.close()
        await self.aio.aclose()


@pytest.fixture(params=["async", "sync"])
async def api(
    request: pytest.FixtureRequest, server: tuple[ServeProcess, str]
) -> AsyncIterator[Api]:
    process, key = server
    made = Api(str(request.param), process.url, key, timeout=10)
    yield made
    await made.close()


async def test_models_are_listed(api: Api) -> None:
    models = {model.name: model for model in await api("models", "list")}

    assert models["runback/echo"].is_async
    assert models["runback/sleep"].timeout is not None


async def test_a_run_is_created_read_waited_for_and_found(api: Api) -> None:
    ref = f"ref-{uuid.uuid4()}"
    made: Run = await api(
        "runs", "create", "runback/echo", {"prompt": "ünïcode"}, client_ref=ref, metadata={"a": 1}
    )
    ended: Run = await api("runs", "wait", made.id, timeout=30)
    got: Run = await api("runs", "get", made.id)

    assert made.status_code is RunStatus.QUEUED
    assert made.client_ref == ref
    assert ended.status_code is RunStatus.SUCCEEDED
    assert ended.output == {"prompt": "ünïcode"}
    assert got.metadata == {"a": 1}
    assert got.created_at.tzinfo is not None
    assert got.completed_at is not None
    assert got.completed_at >= got.created_at
    assert got.callback is None  # no callback_url
    assert [run.id for run in await api("runs", "list", client_ref=ref)] == [made.id]


async def test_the_list_walks_every_page_with_the_filters(api: Api) -> None:
    ref = f"ref-{uuid.uuid4()}"
    before = datetime.now(UTC) - timedelta(seconds=5)
    made = [
        (await api("runs", "create", "runback/echo", {"n": n}, client_ref=ref)).id for n in range(3)
    ]

    listed = await api("runs", "list", client_ref=ref, page_size=1, created_after=before)
    queued = await api("runs", "list", client_ref=ref, status=["failed"], model="runback/echo")

    assert [run.id for run in listed] == made[::-1]  # newest first
    assert queued == []


async def test_a_create_with_the_same_idempotency_key_answers_the_first_run(api: Api) -> None:
    key = f"key-{uuid.uuid4()}"
    first = await api("runs", "create", "runback/echo", {"n": 1}, idempotency_key=key)
    again = await api("runs", "create", "runback/echo", {"n": 1}, idempotency_key=key)

    assert again.id == first.id


async def test_a_running_run_is_cancelled(api: Api) -> None:
    made = await api("runs", "create", "runback/sleep", {"seconds": 60})

    cancelled = await api("runs", "cancel", made.id)
    ended = await api("runs", "wait", made.id, timeout=30)

    assert ended.status_code is RunStatus.CANCELED
    assert cancelled.id == made.id


async def test_wait_gives_up_at_its_timeout(api: Api) -> None:
    made = await api("runs", "create", "runback/sleep", {"seconds": 60})

    with pytest.raises(WaitTimeoutError):
        await api("runs", "wait", made.id, timeout=0.5)
    await api("runs", "cancel", made.id)


async def test_a_run_is_followed_event_by_event(api: Api) -> None:
    made = await api(
        "runs",
        "create",
        "runback/sleep",
        {"seconds": 0.6, "steps": 3},
        events=["start", "logs", "completed"],
    )

    events = await api("runs", "events", made.id)
    resumed = await api("runs", "events", made.id, after=events[0].sequence)

    names = [event.event for event in events]
    assert names[0] == "run.started"
    assert "run.logs" in names
    assert names[-1] == "run.completed"
    assert [e.sequence for e in events] == sorted({e.sequence for e in events})
    assert events[-1].data["output"] == {"slept": 0.6}
    assert resumed == events[1:]


async def test_wait_polls_when_told_not_to_stream(api: Api) -> None:
    made = await api("runs", "create", "runback/sleep", {"seconds": 0.3})

    ended = await api("runs", "wait", made.id, timeout=30, stream=False)

    assert ended.status_code is RunStatus.SUCCEEDED


async def test_a_batch_is_created_read_listed_and_cancelled(api: Api) -> None:
    made = await api(
        "batches",
        "create",
        "runback/echo",
        [{"n": n, "client_ref": f"item-{n}"} for n in range(3)],
        metadata={"b": 2},
    )
    for item in made.items:
        await api("runs", "wait", item.run_id, timeout=30)

    got = await api("batches", "get", made.id)
    items = await api("batches", "items", made.id, page_size=2)
    cancelled = await api("batches", "cancel", made.id)  # every item ended: nothing to do

    assert [item.client_ref for item in made.items] == ["item-0", "item-1", "item-2"]
    assert got.ended
    assert got.items_succeeded == 3
    assert got.metadata == {"b": 2}
    assert [item.output for item in items] == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert cancelled.status_code == got.status_code
    assert await api("batches", "deliveries", made.id) == []


async def test_a_batch_callback_is_listed_and_redelivered(
    api: Api, receiver: ScriptedServer
) -> None:
    made = await api(
        "batches", "create", "runback/echo", [{"n": 1}], callback_url=receiver.url + "/batch"
    )

    async def delivered() -> bool:
        found = await api("batches", "deliveries", made.id)
        return bool(found) and found[-1].status_code == "succeeded"

    await eventually(delivered, 30, what="the batch's callback delivered")
    again = await api("batches", "redeliver", made.id)

    assert again.batch_id == made.id
    assert not again.is_automatic


async def test_deliveries_are_listed_read_redelivered_and_recovered(
    api: Api, receiver: ScriptedServer
) -> None:
    made = await api(
        "runs",
        "create",
        "runback/echo",
        {"n": 1},
        callback_url=receiver.url + "/hook",
        events=["start", "completed"],
    )

    async def delivered() -> bool:
        found = await api("deliveries", "list", made.id)
        return len(found) == 2 and all(d.status_code == "succeeded" for d in found)

    await eventually(delivered, 30, what="both callbacks delivered")
    listed = await api("deliveries", "list", made.id)
    first = await api("deliveries", "get", listed[0].id)
    again = await api("deliveries", "redeliver", made.id)
    started = await api("deliveries", "redeliver", made.id, sequence=1)
    with pytest.raises(NotFoundError) as unknown:
        await api("deliveries", "redeliver", made.id, result_id=str(uuid.uuid4()))
    now = datetime.now(UTC)
    recovery = await api("deliveries", "recover", now - timedelta(hours=1), now)
    progress = await api("deliveries", "recovery", recovery.id)

    assert first.attempts[0].status_code == 200
    assert first.payload_bytes.startswith(b'{"event":"run.started"')
    assert first.webhook_id.startswith("msg_")
    assert again.run_id == made.id
    assert not again.is_automatic
    assert started.event_key == "event:1"
    assert unknown.value.code == "RESULT_NOT_FOUND"
    assert progress.id == recovery.id
    assert progress.from_ == recovery.from_


async def test_secrets_are_created_listed_promoted_and_disabled(api: Api) -> None:
    old = await api("secrets", "create", label="old")
    new = await api("secrets", "create", label="new")
    ed = await api("secrets", "create", type="ed25519", label="keys")

    promoted = await api("secrets", "promote", new.id)
    renamed = await api("secrets", "rename", new.id, "newest")
    disabled = await api("secrets", "disable", old.id)
    listed = {secret.id: secret for secret in await api("secrets", "list")}

    assert old.plain_secret is not None
    assert old.plain_secret.startswith("whsec_")
    assert ed.public_key is not None
    assert ed.public_key.startswith("whpk_")
    assert ed.plain_secret is None
    assert promoted.is_current
    assert renamed.label == "newest"
    assert disabled.disabled_at is not None
    assert listed[old.id].disabled_at is not None
    assert listed[new.id].plain_secret is None  # shown once, at creation
    assert (await api("secrets", "get", ed.id)).type == "ed25519"


async def test_an_unknown_run_is_a_not_found_error_with_its_code(api: Api) -> None:
    with pytest.raises(NotFoundError) as raised:
        await api("runs", "get", str(uuid.uuid4()))

    assert raised.value.status == 404
    assert raised.value.code == "RUN_NOT_FOUND"
    assert "there is no run" in raised.value.message


async def test_an_unknown_model_is_a_not_found_error(api: Api) -> None:
    with pytest.raises(NotFoundError) as raised:
        await api("runs", "create", "nobody/nothing", {})

    assert raised.value.code == "MODEL_UNAVAILABLE"


async def test_a_refused_field_is_named_in_the_errors(api: Api) -> None:
    with pytest.raises(ValidationFailedError) as raised:
        await api("runs", "create", "runback/echo", {}, callback_url="ftp://example.com/hook")

    assert raised.value.status == 422
    assert raised.value.code == "VALIDATION_ERROR"
    assert [error["field"] for error in raised.value.errors or []] == ["callback_url"]


async def test_a_bad_key_and_a_foreign_organization_are_refused(
    server: tuple[ServeProcess, str],
) -> None:
    process, key = server
    stranger = Api("async", process.url, "rb_not_a_key")
    outsider = Api("sync", process.url, key, organization_id=str(uuid.uuid4()))
    try:
        with pytest.raises(UnauthorizedError):
            await stranger("models", "list")
        with pytest.raises(PermissionDeniedError):
            await outsider("models", "list")
    finally:
        await stranger.close()
        await outsider.close()


def test_the_sync_client_is_a_context_manager(server: tuple[ServeProcess, str]) -> None:
    process, key = server
    with Client(process.url, key) as client:
        run = client.runs.create("runback/echo", {"x": 1})
        assert client.runs.wait(run.id, timeout=30).output == {"x": 1}
        first = next(client.runs.list(model="runback/echo", page_size=1))  # left unfinished
        assert first.model == "runback/echo"


EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
DOCS = Path(__file__).resolve().parents[2] / "docs"


@pytest.mark.parametrize("name", ["client_sync.py", "client_async.py"])
def test_an_example_of_the_client_page_runs(name: str, server: tuple[ServeProcess, str]) -> None:
    process, key = server
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / name)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "RUNBACK_URL": process.url, "RUNBACK_KEY": key},
        check=False,
    )

    assert done.returncode == 0, done.stderr
    last = done.stdout.splitlines()
    if name == "client_sync.py":
        assert last[0] == "succeeded {'hello': 'world'}"
        assert last[-1].startswith("404 RUN_NOT_FOUND there is no run no-such-run")
    else:
        assert last[0].split()[:2] == ["1", "run.started"]
        assert last[-1].startswith("succeeded {'slept': 1} ")
    assert (EXAMPLES / name).read_text() in (DOCS / "client.md").read_text()  # shown verbatim


async def test_a_redelivery_while_one_is_in_flight_is_the_contract_s_422_conflict(
    api: Api,
) -> None:
    release = threading.Event()
    with ScriptedServer(in_turn([], Reply(hold=release))) as holding:
        try:
            made = await api("runs", "create", "runback/echo", {}, callback_url=holding.url)
            await api("runs", "wait", made.id, timeout=30)
            await wait_for(lambda: len(holding.seen) == 1, 30, what="the attempt held")
            with pytest.raises(ValidationFailedError) as in_flight:
                await api("deliveries", "redeliver", made.id)
        finally:
            release.set()

    assert in_flight.value.code == "CONFLICT"
    assert in_flight.value.status == 422


async def _first_delivered(api: Api, **filters: Any) -> DeliveryMessage:
    """The first message of the deliveries' stream (which never ends by itself)."""
    if api.sync is not None:
        for message in api.sync.deliveries.stream(**filters):
            return message
    stream = api.aio.deliveries.stream(**filters)
    try:
        async for message in stream:
            return message
    finally:
        await stream.aclose()
    raise AssertionError("the stream ended")


@pytest.mark.timeout(60)
async def test_deliveries_are_followed_as_made_and_one_is_read_back(
    api: Api, receiver: ScriptedServer
) -> None:
    prefix = f"{receiver.url}/listen-{uuid.uuid4()}"
    since = datetime.now(UTC) - timedelta(seconds=1)
    first = await api("runs", "create", "runback/echo", {"n": 1}, callback_url=f"{prefix}?t=a")
    second = await api("runs", "create", "runback/echo", {"n": 2}, callback_url=f"{prefix}?t=b")

    message = await _first_delivered(api, url_prefix=prefix, since=since)
    resumed = await _first_delivered(api, url_prefix=prefix, last_event_id=message.cursor)
    stored = await api("deliveries", "get", message.id)
    again = await api("deliveries", "message", message.id)

    assert (message.run_id, resumed.run_id) == (first.id, second.id)
    assert message.callback_url == f"{prefix}?t=a"
    assert message.body_bytes == stored.payload_bytes
    assert message.webhook_id == stored.webhook_id
    assert {name.lower() for name in message.headers} >= {"webhook-id", "webhook-timestamp"}
    assert (again.id, again.body) == (message.id, message.body)
    with pytest.raises(NotFoundError):
        await api("deliveries", "message", str(uuid.uuid4()))
