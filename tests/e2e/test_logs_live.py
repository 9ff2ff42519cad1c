"""``runback serve``'s log lines, as a log collector reads them: one JSON object per line,
the ids of the work under way on each, and no key, secret or token in any."""

from __future__ import annotations

import base64
import json
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web

from runback.core.signing import generate_secret, signature_headers
from support.process import ServeProcess, cli
from support.receivers import LoopbackReceiver
from support.waiting import eventually

TOKEN = "tok3nTOKENtok3nTOKEN"
MASTER_KEY = "k1:" + base64.b64encode(b"m" * 32).decode()


@dataclass
class Logged:
    server: ServeProcess
    key: str
    client: httpx.AsyncClient
    receiver: LoopbackReceiver

    def lines(self) -> list[dict[str, Any]]:
        assert self.server.errors is not None
        text = self.server.errors.read_text()
        return [_parsed(line) for line in text.splitlines()]


def _parsed(line: str) -> dict[str, Any]:
    try:
        parsed: dict[str, Any] = json.loads(line)
    except ValueError:
        raise AssertionError(f"a log line that is not JSON: {line!r}") from None
    assert {"time", "level", "logger", "message"} <= parsed.keys(), line
    assert parsed["time"].endswith("Z"), line
    return parsed


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServeProcess, str]]:
    data_dir = tmp_path_factory.mktemp("logs") / "data"
    env = {"RUNBACK_MASTER_KEYS": MASTER_KEY}
    made = cli("keys", "create", "--data-dir", str(data_dir), env=env)
    assert made.returncode == 0, made.stderr
    server = ServeProcess(
        data_dir,
        env={**env, "RUNBACK_RETRY_DELAYS": "250ms,250ms,250ms"},
        args=("--callback-allow", "127.0.0.0/8", "--access-log"),
        errors=data_dir.parent / "stderr.log",
    )
    with server:
        yield server, made.stdout.strip()


@pytest.fixture
async def logged(served: tuple[ServeProcess, str]) -> AsyncIterator[Logged]:
    server, key = served
    failures = iter([500])

    async def fails_once(_request: web.Request) -> web.StreamResponse:
        return web.Response(status=next(failures, 200))

    async with (
        LoopbackReceiver(fails_once) as receiver,
        httpx.AsyncClient(
            base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=10
        ) as client,
    ):
        yield Logged(server, key, client, receiver)


async def _delivered(logged: Logged, run_id: str) -> None:
    async def succeeded() -> bool:
        found = (await logged.client.get(f"/v1/runs/{run_id}/callback")).json()
        return bool(found) and found[0]["status_code"] == "succeeded"

    await eventually(succeeded, timeout=15, what="the callback, retried once, succeeds")


async def test_a_run_whose_callback_failed_once_leaves_json_lines_naming_its_ids(
    logged: Logged,
) -> None:
    submitted = await logged.client.post(
        "/v1/models/runback/echo/runs",
        json={"input": {"n": 1}, "callback_url": logged.receiver.url_for("/hook")},
        headers={"X-Request-Id": "client-req-42"},
    )
    assert submitted.status_code == 201, submitted.text
    assert submitted.headers["X-Request-Id"] == "client-req-42"
    run_id = submitted.json()["id"]
    await _delivered(logged, run_id)

    lines = logged.lines()
    [failed] = [line for line in lines if "callback attempt 1 failed" in line["message"]]
    assert failed["run_id"] == run_id
    assert f"to {logged.receiver.url_for('/hook')}," in failed["message"]
    assert failed["attempt"] == 1
    [delivery] = (await logged.client.get(f"/v1/runs/{run_id}/callback")).json()
    assert failed["delivery_id"] == delivery["id"]
    [access] = [
        line
        for line in lines
        if line["logger"] == "uvicorn.access" and line.get("request_id") == "client-req-42"
    ]
    assert access["run_id"] == run_id
    assert '"POST /v1/models/runback/echo/runs HTTP/1.1" 201' in access["message"]


async def test_a_request_id_that_is_not_sane_is_replaced(logged: Logged) -> None:
    # A space (a forged field in a text line) and too long.
    answered = await logged.client.get("/v1/runs", headers={"X-Request-Id": "a b" + "x" * 200})
    assert answered.status_code == 200
    replaced = answered.headers["X-Request-Id"]
    assert replaced.isalnum()
    assert len(replaced) == 32

    async def logged_with_it() -> bool:
        return any(line.get("request_id") == replaced for line in logged.lines())

    await eventually(logged_with_it, what="the access line carries the new id")


async def test_no_key_secret_or_token_reaches_the_logs(logged: Logged) -> None:
    hmac = (await logged.client.post("/v1/callback-secrets", json={"label": "l"})).json()
    plain = hmac["plain_secret"]
    made = await logged.client.post("/v1/callback-secrets", json={"type": "ed25519"})
    assert made.status_code == 201, made.text
    submitted = await logged.client.post(
        "/v1/models/runback/echo/runs",
        json={
            "input": {"n": 2},
            "callback_url": logged.receiver.url_for(f"/hook?token={TOKEN}&b=1"),
        },
    )
    run_id = submitted.json()["id"]
    await _delivered(logged, run_id)
    # Secrets where they do not belong: in a query string and in a path, which the access
    # log logs; a callback URL with its token, refused.
    await logged.client.get(f"/v1/runs?api_key={logged.key}&token={TOKEN}")
    await logged.client.get(f"/v1/callback-secrets/{plain}")
    await logged.client.post(
        "/v1/models/runback/echo/runs",
        json={"input": {}, "callback_url": f"http://10.1.2.3/h?token={TOKEN}"},
    )

    private_keys = _private_keys(logged.server.data_dir)
    text = logged.server.errors.read_text() if logged.server.errors else ""
    for secret in (logged.key, plain, TOKEN, MASTER_KEY, MASTER_KEY[3:], *private_keys):
        assert secret not in text, f"{secret[:6]}... appears in the logs"
    assert "whsk_" not in text
    assert f"/v1/runs?{_MASKED}" in text  # the access lines were logged, masked


_MASKED = "***"


def _private_keys(data_dir: Path) -> list[str]:
    """The secrets as stored (sealed): not even these may be logged."""
    with sqlite3.connect(data_dir / "runback.db") as db:
        rows = db.execute("SELECT secret FROM callback_secrets").fetchall()
    return [row[0] for row in rows]


async def test_a_callback_received_is_logged_with_its_event_and_run_ids(
    tmp_path: Path,
) -> None:
    secret = generate_secret()
    body = json.dumps({"event": "run.completed", "run_id": "r-logs", "status": "succeeded"})
    headers = dict(
        signature_headers(
            body=body.encode(),
            msg_id="msg_logs",
            timestamp=int(time.time()),
            current=secret,
            active=[secret],
        )
    )
    inbox = tmp_path / "inbox"
    process = ServeProcess(
        inbox,
        command="receive",
        args=("--secret", secret),
        env={"RUNBACK_ACCESS_LOG": "true"},
        errors=tmp_path / "stderr.log",
    )
    with process:
        async with httpx.AsyncClient(base_url=process.url) as client:
            received = await client.post(
                "/webhooks/logs?token=tok3n",
                content=body,
                headers={**headers, "Content-Type": "application/json"},
            )
        assert received.status_code == 200, received.text
        event_id = received.json()["event_id"]

        def logged() -> list[dict[str, Any]]:
            text = (tmp_path / "stderr.log").read_text()
            return [_parsed(line) for line in text.splitlines()]

        async def arrival_logged() -> bool:
            return any(line["logger"] == "uvicorn.access" for line in logged())

        await eventually(arrival_logged, what="the arrival's access line")

    [access] = [line for line in logged() if line["logger"] == "uvicorn.access"]
    assert access["event_id"] == event_id
    assert access["run_id"] == "r-logs"
    assert access["request_id"] == received.headers["X-Request-Id"]
    assert "/webhooks/logs?***" in access["message"]
    text = (tmp_path / "stderr.log").read_text()
    assert secret not in text
    assert "tok3n" not in text


@pytest.mark.parametrize("command", ["serve", "api", "worker", "receive"])
def test_every_server_command_takes_log_format_and_names_a_bad_one(command: str) -> None:
    refused = cli(command, "--log-format", "xml", env={"RUNBACK_PUBLIC_URL": "http://x"})

    assert refused.returncode == 2, refused.stderr
    assert refused.stderr.startswith("runback: --log-format ")
    assert "'json' or 'text'" in refused.stderr
