"""``runback receive`` as a real process: from runback's own sender, from forged and
duplicated requests, and across a SIGKILL in the middle of copies."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from aiohttp import web

from runback.core.signing import generate_secret, signature_headers
from support.dashboard import login
from support.process import ServeProcess, cli
from support.receivers import LoopbackReceiver
from support.waiting import eventually, wait_for

SECRET = generate_secret()
HANDLED = "handled.log"


@pytest.fixture
def handlers_module(tmp_path: Path) -> Path:
    """A handlers module that appends each handled event's dedupe key to a file."""
    folder = tmp_path / "handlers"
    folder.mkdir()
    (folder / "e2e_handlers.py").write_text(
        "from pathlib import Path\n"
        "from runback.receiver.handlers import HandlerRegistry, ReceivedEvent\n"
        "handlers = HandlerRegistry()\n"
        "@handlers.on('*')\n"
        "def record(event: ReceivedEvent) -> None:\n"
        f"    with open({str(tmp_path / HANDLED)!r}, 'a') as log:\n"
        "        log.write(event.dedupe_key + '\\n')\n"
    )
    return folder


@pytest.fixture
def inbox_dir(tmp_path: Path) -> Path:
    return tmp_path / "inbox"


@pytest.fixture
def inbox_key(inbox_dir: Path) -> str:
    return cli("keys", "create", "--data-dir", str(inbox_dir)).stdout.strip()


def receiving(inbox_dir: Path, handlers_module: Path, *, secret: str) -> ServeProcess:
    """``runback receive`` verifying with ``secret``, with the e2e handlers module."""
    args = ("--secret", secret, "--handlers", "e2e_handlers", "--callback-allow", "127.0.0.0/8")
    env = {"PYTHONPATH": str(handlers_module), "RUNBACK_POLL_INTERVAL": "0.2"}
    return ServeProcess(inbox_dir, command="receive", args=args, env=env)


@pytest.fixture
def receiver(inbox_dir: Path, inbox_key: str, handlers_module: Path) -> Iterator[ServeProcess]:
    with receiving(inbox_dir, handlers_module, secret=SECRET) as process:
        yield process


@pytest.fixture
async def inbox(receiver: ServeProcess, inbox_key: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=receiver.url, headers={"Authorization": f"Bearer {inbox_key}"}, timeout=10
    ) as http:
        yield http


def signed(payload: dict[str, Any], *, msg_id: str = "msg_e2e") -> tuple[bytes, dict[str, str]]:
    body = orjson.dumps(payload)
    headers = signature_headers(
        body=body, msg_id=msg_id, timestamp=int(time.time()), current=SECRET, active=[SECRET]
    )
    return body, {**headers, "Content-Type": "application/json"}


async def _events(inbox: httpx.AsyncClient) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = (await inbox.get("/v1/inbox")).json()["items"]
    return items


async def _copied(inbox: httpx.AsyncClient, event_id: str) -> list[dict[str, Any]]:
    copies: list[dict[str, Any]] = (await inbox.get(f"/v1/inbox/{event_id}")).json()["copies"]
    return copies


class Files:
    """A loopback server of output files; counts each file's downloads."""

    def __init__(self, receiver: LoopbackReceiver, files: dict[str, bytes]) -> None:
        self.receiver = receiver
        self.files = files
        self.release = asyncio.Event()
        self.release.set()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        await self.release.wait()
        body = self.files.get(request.path.lstrip("/"))
        if body is None:
            return web.Response(status=404)
        return web.Response(body=body, content_type="image/png")

    def fetches(self, name: str) -> int:
        return sum(1 for r in self.receiver.requests if r.path == f"/{name}")

    def url(self, name: str) -> str:
        return self.receiver.url_for(f"/{name}")


@pytest.fixture
async def files() -> AsyncIterator[Files]:
    blobs = {f"out{n}.png": bytes([n]) * (1000 + n) for n in range(3)}
    async with LoopbackReceiver() as server:
        served = Files(server, blobs)
        server.handler = served.handle
        yield served
        served.release.set()


async def test_runbacks_sender_to_runbacks_receiver_copies_the_thumbnail(
    client: httpx.AsyncClient, inbox_dir: Path, inbox_key: str, handlers_module: Path
) -> None:
    secret = (await client.post("/v1/callback-secrets", json={"label": "e2e"})).json()
    with receiving(inbox_dir, handlers_module, secret=secret["plain_secret"]) as receiver:
        async with httpx.AsyncClient(
            base_url=receiver.url, headers={"Authorization": f"Bearer {inbox_key}"}
        ) as inbox:
            created = await client.post(
                "/v1/models/runback/thumbnail/runs",
                json={
                    "input": {"width": 32, "height": 24},
                    "callback_url": f"{receiver.url}/webhooks/runback",
                },
            )
            run_id = created.json()["id"]

            async def copied() -> bool:
                events = await _events(inbox)
                return bool(events) and all(
                    c["state"] == "copied" for c in await _copied(inbox, events[0]["id"])
                )

            await eventually(copied, timeout=30, what="the callback received and copied")
            [event] = await _events(inbox)
            [copy] = await _copied(inbox, event["id"])
            # Its dashboard takes the same key and shows the event with its copy.
            async with httpx.AsyncClient(base_url=receiver.url) as browser:
                await login(browser, inbox_key)
                page = (await browser.get(f"/dashboard/events/{event['id']}")).text

    assert (event["run_id"], event["event"], event["receipt_count"]) == (run_id, "run.completed", 1)
    [entry] = (await client.get(f"/v1/runs/{run_id}")).json()["output"]["outputs"]
    stored = (inbox_dir / "files" / copy["stored_key"]).read_bytes()
    assert hashlib.sha256(stored).hexdigest() == copy["sha256"] == entry["sha256"]
    assert copy["content_type"] == "image/png"
    assert copy["stored_key"] in page


async def test_a_hundred_concurrent_duplicates_are_one_event_one_handler_run_one_fetch_each(
    receiver: ServeProcess, inbox: httpx.AsyncClient, files: Files, tmp_path: Path
) -> None:
    payload = {
        "event": "run.completed",
        "run_id": "0193b7e4-8c1a-7d2e-9f3a-1b2c3d4e5f60",
        "status": "succeeded",
        "output": {"outputs": [{"type": "image", "url": files.url(n)} for n in files.files]},
    }
    body, headers = signed(payload)
    async with httpx.AsyncClient(base_url=receiver.url, timeout=30) as http:
        answers = await asyncio.gather(
            *(http.post("/webhooks/runback", content=body, headers=headers) for _ in range(100))
        )
    assert {a.status_code for a in answers} == {200}
    assert sum(not a.json()["duplicate"] for a in answers) == 1
    [event] = await _events(inbox)
    assert event["receipt_count"] == 100

    async def all_copied() -> bool:
        return all(c["state"] == "copied" for c in await _copied(inbox, event["id"]))

    await eventually(all_copied, timeout=30, what="every output copied")
    await wait_for(lambda: _handled(tmp_path) >= 1, timeout=30, what="the handler ran")
    [event] = await _events(inbox)
    assert event["handler"]["state"] in ("running", "succeeded")
    assert {name: files.fetches(name) for name in files.files} == dict.fromkeys(files.files, 1)
    assert _handled(tmp_path) == 1


def _handled(tmp_path: Path) -> int:
    log = tmp_path / HANDLED
    return len(log.read_text().splitlines()) if log.exists() else 0


def _forged(payload: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    body, headers = signed(payload)
    return body.replace(b"succeeded", b"failed"), headers


def _resigned(payload: dict[str, Any], **changes: Any) -> tuple[bytes, dict[str, str]]:
    body, headers = signed(payload)
    return body, headers | changes


def _other_secret(payload: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    body = orjson.dumps(payload)
    other = generate_secret()
    headers = signature_headers(
        body=body, msg_id="msg_x", timestamp=int(time.time()), current=other, active=[other]
    )
    return body, {**headers, "Content-Type": "application/json"}


PAYLOAD = {"event": "run.completed", "run_id": "r-1", "status": "succeeded", "output": {}}
BAD_REQUESTS = [
    # the body altered after signing
    pytest.param(_forged(PAYLOAD), 401, id="forged"),
    # a body cut short: its signature no longer matches
    pytest.param((signed(PAYLOAD)[0][:-5], signed(PAYLOAD)[1]), 401, id="truncated"),
    # the classic mistake: JSON parsed and serialised again, with other spacing
    pytest.param(
        (orjson.dumps(PAYLOAD, option=orjson.OPT_INDENT_2), signed(PAYLOAD)[1]),
        401,
        id="re-serialised",
    ),
    # no signature headers at all
    pytest.param((orjson.dumps(PAYLOAD), {"Content-Type": "application/json"}), 401, id="unsigned"),
    # signed with a secret the receiver does not hold
    pytest.param(_other_secret(PAYLOAD), 401, id="other-secret"),
    # a timestamp ten minutes old: a replayed request
    pytest.param(
        _resigned(PAYLOAD, **{"webhook-timestamp": str(int(time.time()) - 600)}), 401, id="stale"
    ),
    # a timestamp ten minutes ahead
    pytest.param(
        _resigned(PAYLOAD, **{"webhook-timestamp": str(int(time.time()) + 600)}), 401, id="future"
    ),
    # over the 5 MiB limit, refused before it is read whole
    pytest.param(signed({**PAYLOAD, "pad": "x" * (6 * 1024 * 1024)}), 413, id="oversized"),
    # not JSON by its content type
    pytest.param(_resigned(PAYLOAD, **{"Content-Type": "text/plain"}), 415, id="text/plain"),
]


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServeProcess, str]]:
    """One receiver for the tests that must leave it empty: (process, inbox key)."""
    folder = tmp_path_factory.mktemp("shared")
    inbox_dir = folder / "inbox"
    key = cli("keys", "create", "--data-dir", str(inbox_dir)).stdout.strip()
    args = ("--secret", SECRET)
    with ServeProcess(inbox_dir, command="receive", args=args) as process:
        yield process, key


@pytest.mark.parametrize(("request_", "status"), BAD_REQUESTS)
async def test_a_bad_request_gets_its_status_and_nothing_is_processed(
    shared: tuple[ServeProcess, str], request_: tuple[bytes, dict[str, str]], status: int
) -> None:
    process, key = shared
    body, headers = request_
    async with httpx.AsyncClient(base_url=process.url, timeout=30) as http:
        response = await http.post("/webhooks/runback", content=body, headers=headers)
        inbox = await http.get("/v1/inbox", headers={"Authorization": f"Bearer {key}"})

    assert response.status_code == status, response.text
    assert response.json()["message"]
    assert inbox.json()["items"] == []


async def test_malformed_json_with_a_good_signature_is_a_400_kept_as_rejected(
    shared: tuple[ServeProcess, str],
) -> None:
    process, key = shared
    body = b'{"event": "run.completed", '
    headers = signature_headers(
        body=body, msg_id="msg_bad", timestamp=int(time.time()), current=SECRET, active=[SECRET]
    )
    async with httpx.AsyncClient(base_url=process.url) as http:
        response = await http.post(
            "/webhooks/runback",
            content=body,
            headers={**headers, "Content-Type": "application/json"},
        )
        inbox = await http.get("/v1/inbox", headers={"Authorization": f"Bearer {key}"})

    assert response.status_code == 400
    assert inbox.json()["items"] == []


async def test_copies_in_flight_when_the_receiver_is_killed_complete_after_a_restart(
    receiver: ServeProcess, inbox: httpx.AsyncClient, files: Files
) -> None:
    files.release.clear()  # every download hangs until released
    payload = {
        "event": "headshots.completed",
        "headshots_id": "a1b2c3d4-e5f6-7890-abcd-ef1234567890",
        "image_urls": [files.url(n) for n in files.files],
    }
    body, headers = signed(payload, msg_id="msg_kill")
    async with httpx.AsyncClient(base_url=receiver.url) as http:
        assert (
            await http.post("/webhooks/runback", content=body, headers=headers)
        ).status_code == 200
    await wait_for(
        lambda: len(files.receiver.requests) == len(files.files), timeout=15, what="copies started"
    )

    receiver.kill()
    files.release.set()
    inbox.base_url = httpx.URL(receiver.start().url)

    [event] = await _events(inbox)

    async def all_copied() -> bool:
        return all(c["state"] == "copied" for c in await _copied(inbox, event["id"]))

    await eventually(all_copied, timeout=30, what="every copy completed after the restart")
    copies = await _copied(inbox, event["id"])
    assert {c["size"] for c in copies} == {len(b) for b in files.files.values()}
