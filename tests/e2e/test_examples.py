"""Every example in the docs is a file, and it runs."""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from runback.core.signing import generate_secret, signature_headers
from support.process import ServeProcess, cli
from support.receivers import LoopbackReceiver
from support.waiting import eventually, wait_for

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


async def test_the_first_run_example_ends_with_a_succeeded_run_and_a_callback(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    key = cli("keys", "create", "--data-dir", str(data_dir)).stdout.strip()
    with ServeProcess(data_dir) as server:
        async with LoopbackReceiver() as receiver:
            process = await asyncio.create_subprocess_exec(
                str(EXAMPLES / "first_run.sh"),
                receiver.url_for("/hook"),
                env={**os.environ, "RUNBACK_URL": server.url, "RUNBACK_KEY": key},
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            out, err = await asyncio.wait_for(process.communicate(), timeout=60)
            assert process.returncode == 0, err.decode()
            await wait_for(lambda: len(receiver.requests) == 1, timeout=15, what="the callback")

    final = json.loads(out.decode().splitlines()[-1])
    assert final["status_code"] == "succeeded"
    assert final["output"] == {"hello": "world"}
    assert json.loads(receiver.requests[0].body)["run_id"] == final["id"]


async def test_the_example_models_module_is_served_and_both_models_run(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    key = cli("keys", "create", "--data-dir", str(data_dir)).stdout.strip()
    env = {"PYTHONPATH": str(EXAMPLES), "RUNBACK_MODELS": "acme_models"}
    with ServeProcess(data_dir, env=env) as server:
        async with httpx.AsyncClient(
            base_url=server.url, headers={"Authorization": f"Bearer {key}"}
        ) as client:
            listed = (await client.get("/v1/models")).json()["items"]
            names = {m["name"]: m for m in listed}
            assert names["acme/greet"]["input_schema"]["properties"]["times"]["maximum"] == 10
            assert names["acme/count"]["is_async"] is False

            refused = await client.post(
                "/v1/models/acme/greet/runs", json={"input": {"name": "", "times": 11}}
            )
            assert [e["field"] for e in refused.json()["errors"]] == ["input.name", "input.times"]

            greet = await _finished(client, "acme/greet", {"name": "Ada", "times": 2})
            count = await _finished(client, "acme/count", {"text": "one two three"})

    assert greet["output"]["greeting"] == "Hello, Ada! Hello, Ada!"
    [entry] = greet["output"]["outputs"]
    assert (entry["content_type"], entry["size"]) == ("text/plain", 23)
    assert count["output"] == {"words": 3}


async def _finished(client: httpx.AsyncClient, model: str, input: dict[str, Any]) -> Any:
    run_id = (await client.post(f"/v1/models/{model}/runs", json={"input": input})).json()["id"]
    run: dict[str, Any] = {}

    async def ended() -> bool:
        nonlocal run
        run = (await client.get(f"/v1/runs/{run_id}")).json()
        return run["status_code"] not in ("queued", "dispatching", "running")

    await eventually(ended, timeout=20, what=f"{model} ends")
    return run


async def test_the_fastapi_receiver_example_verifies_and_dedupes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    secret = generate_secret()
    monkeypatch.setenv("RUNBACK_SECRET", secret)
    monkeypatch.syspath_prepend(str(EXAMPLES))
    example = importlib.import_module("receiver_fastapi")
    example = importlib.reload(example)  # read the secret set above
    body = orjson.dumps({"event": "run.completed", "run_id": "r-1", "status": "succeeded"})
    headers = {
        **signature_headers(
            body=body, msg_id="msg_1", timestamp=int(time.time()), current=secret, active=[secret]
        ),
        "Content-Type": "application/json",
    }
    transport = httpx.ASGITransport(app=example.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://example.test") as http:
        first = await http.post("/webhooks/runback", content=body, headers=headers)
        again = await http.post("/webhooks/runback", content=body, headers=headers)
        forged = await http.post("/webhooks/runback", content=body + b" ", headers=headers)

    assert first.json() == {"received": True, "duplicate": False}
    assert again.json() == {"received": True, "duplicate": True}
    assert (forged.status_code, forged.json()["code"]) == (401, "INVALID_SIGNATURE")


async def test_the_fastapi_receiver_example_without_a_secret_says_which_variable_to_set(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("RUNBACK_SECRET", raising=False)
    monkeypatch.syspath_prepend(str(EXAMPLES))
    example = importlib.reload(importlib.import_module("receiver_fastapi"))
    assert "RUNBACK_SECRET" in capsys.readouterr().err  # said at start

    body = orjson.dumps({"event": "run.completed", "run_id": "r-1", "status": "succeeded"})
    transport = httpx.ASGITransport(app=example.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://example.test") as http:
        answer = await http.post(
            "/webhooks/runback", content=body, headers={"Content-Type": "application/json"}
        )

    assert answer.status_code == 401
    assert "RUNBACK_SECRET" in answer.json()["detail"]


async def test_the_inbox_handlers_example_runs_once_per_event(tmp_path: Path) -> None:
    inbox_dir = tmp_path / "inbox"
    key = cli("keys", "create", "--data-dir", str(inbox_dir)).stdout.strip()
    secret = generate_secret()
    log = tmp_path / "events.jsonl"
    env = {"PYTHONPATH": str(EXAMPLES), "INBOX_LOG": str(log), "RUNBACK_POLL_INTERVAL": "0.2"}
    args = ("--secret", secret, "--handlers", "inbox_handlers")
    body = orjson.dumps({"event": "run.completed", "run_id": "r-9", "status": "succeeded"})
    headers = {
        **signature_headers(
            body=body, msg_id="msg_9", timestamp=int(time.time()), current=secret, active=[secret]
        ),
        "Content-Type": "application/json",
    }
    with ServeProcess(inbox_dir, command="receive", args=args, env=env) as receiver:
        async with httpx.AsyncClient(base_url=receiver.url) as http:
            for _ in range(3):
                assert (
                    await http.post("/webhooks/runback", content=body, headers=headers)
                ).status_code == 200

            async def handled() -> bool:
                inbox = await http.get("/v1/inbox", headers={"Authorization": f"Bearer {key}"})
                [event] = inbox.json()["items"]
                return bool(event["handler"]["state"] == "succeeded")

            await eventually(handled, timeout=20, what="the handler ran")

    assert [json.loads(line)["run_id"] for line in log.read_text().splitlines()] == ["r-9"]
